"""The README's code runs as written: each ``python`` block in a fresh interpreter, the shell block's commands
through the real CLI, in a scratch folder that holds the repository's fixtures (as a clone's root does)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import terminal_stderr

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.S | re.M)


@pytest.fixture
def clone_root(tmp_path):
    (tmp_path / "fixtures").symlink_to(ROOT / "fixtures")
    return tmp_path


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_the_readme_has_the_blocks_these_tests_run():
    assert len(blocks("python")) == 2 and len(blocks("sh")) >= 2


def test_the_python_api_block_runs_and_explains_the_training_mode(clone_root):
    code = blocks("python")[0]
    (clone_root / "api.py").write_text(code)
    done = run([sys.executable, "api.py"], clone_root)
    assert done.returncode == 0, done.stderr
    assert "[train-mode]" in done.stdout and "[epsilon] epsilon differs: PyTorch 1e-05, Keras 0.001" in done.stdout
    assert "was not built: explained as built for the PyTorch layer's input" in done.stdout


def test_the_migration_block_runs_ports_verifies_and_converts(clone_root):
    (clone_root / "migrate.py").write_text(blocks("python")[1])
    done = run([sys.executable, "migrate.py"], clone_root)
    assert done.returncode == 0, done.stderr
    assert "ported 13 layers (32 tensors, 20.8 KiB) PyTorch -> Keras" in done.stdout
    assert "training mode" not in done.stderr  # the snippet puts the model in eval mode before it is compared
    assert (clone_root / "out" / "resnet.keras").is_file() and (clone_root / "out" / "resnet.weights.h5").is_file()


def test_the_command_line_block_runs(clone_root):
    script = next(b for b in blocks("sh") if "bnport convert" in b)
    commands = [shlex.split(c.split("#")[0]) for c in script.replace("\\\n", " ").splitlines() if c.strip()]
    commands = [c for c in commands if c]
    assert [c[1] for c in commands] == ["convert", "inspect", "verify"]
    (clone_root / "out").mkdir()
    for command in commands:
        done = run([sys.executable, "-m", "bnport", *command[1:]], clone_root)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
    assert (clone_root / "out" / "report.html").is_file() and (clone_root / "out" / "report.xml").is_file()


def test_every_option_the_readme_names_exists():
    from bnport.cli.main import build_parser

    commands = build_parser().commands
    named = set(re.findall(r"(--[a-z][a-z-]+)", README)) - {"--help", "--version", "--force-reinstall"}
    known = {o for p in commands.values() for o in p.option_names}
    assert named <= known, named - known


def test_quiet_turns_the_progress_bar_off(monkeypatch, tmp_path):
    import torch

    from bnport.cli.main import main
    from bnport.io.factories import build

    arch = ROOT / "fixtures" / "architectures.py"
    checkpoint = tmp_path / "resnet50.pt"  # 107 weight-holding layers: enough for a bar (20 or more)
    torch.save(build(f"{arch}:torch_resnet50").state_dict(), checkpoint)
    argv = ["convert", str(checkpoint), "", "--torch-model", f"{arch}:torch_resnet50",
            "--keras-model", f"{arch}:keras_resnet50"]
    for quiet, dst in ((False, "a.weights.h5"), (True, "b.weights.h5")):
        term = terminal_stderr(monkeypatch)
        argv[2] = str(tmp_path / dst)
        assert main(argv + (["--quiet"] if quiet else [])) == 0
        assert ("porting [" in term.getvalue()) is not quiet


def test_verify_says_its_stages_on_a_terminal_unless_quiet(monkeypatch):
    from bnport.cli.main import main

    arch = ROOT / "fixtures" / "architectures.py"
    argv = ["verify", "--torch-model", f"{arch}:torch_resnet", "--torch-weights", str(ROOT / "fixtures" / "resnet.pt"),
            "--keras-model", f"{arch}:keras_resnet", "--keras-weights", str(ROOT / "fixtures" / "resnet.weights.h5")]
    for quiet in (False, True):
        term = terminal_stderr(monkeypatch)
        main(argv + (["--quiet"] if quiet else []))
        shown = term.getvalue()
        if quiet:
            assert shown == ""
        else:
            for stage in ("exporting the PyTorch model to ONNX", "exporting the Keras model to ONNX",
                          "running both graphs in onnxruntime", "comparing 13 layer pairs and the outputs"):
                assert f"\r\x1b[K  verify: {stage} ..." in shown
            assert shown.endswith("\r\x1b[K")  # the line is cleared before the report is printed
