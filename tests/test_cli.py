"""The command line: fast --help without frameworks, exit codes, explain and demo on the bundled fixture."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
MODELS = FIXTURES / "models.py"

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)


def script_env(script: str) -> dict[str, str]:
    """The environment one of scripts/ exports before it runs bnport (its ``export NAME=VALUE`` lines)."""
    lines = (ROOT / "scripts" / script).read_text().splitlines()
    pairs = [line.split()[1].split("=", 1) for line in lines if line.startswith("export ")]
    return dict(os.environ, **dict(pairs))


def bnport(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = env or dict(os.environ)
    return subprocess.run([sys.executable, "-m", "bnport", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


PROBE = """
import sys
from bnport.cli.main import main
try:
    main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "tensorflow", "keras", "onnx", "onnxruntime", "numpy")
               if sys.modules.get(m) is not None)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["demo", "--help"], ["explain", "--help"]])
def test_help_and_version_import_no_framework(argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv)], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert "HEAVY=\n" in out.stdout


def test_importing_bnport_imports_no_framework():
    code = ("import sys, bnport; print(sorted(m for m in ('torch', 'tensorflow', 'keras') "
            "if sys.modules.get(m) is not None))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"})
    assert out.stdout.strip() == "[]", out.stderr
    assert out.stderr == ""  # no TensorFlow start-up lines: importing bnport starts no framework


def test_version_and_no_command():
    assert bnport("--version").stdout.startswith("bnport ")
    assert bnport().returncode == 2


def test_explain_on_the_bundled_fixture():
    out = bnport("explain", "--torch-model", f"{MODELS}:torch_bn_layers", "--torch-weights",
                 str(FIXTURES / "bn_layers.pt"), "--keras-model", str(FIXTURES / "bn_layers_naive.keras"))
    assert out.returncode == 0, out.stderr
    assert "bn1d (PyTorch BatchNorm1d) <-> bn1d (Keras)" in out.stdout
    assert "[epsilon] epsilon differs: PyTorch 1e-05, Keras 0.001" in out.stdout
    assert "[momentum]" in out.stdout and "Traceback" not in out.stderr


def test_explain_bad_input_exits_2_without_traceback(tmp_path):
    out = bnport("explain", "--torch-model", f"{MODELS}:torch_bn_layers", "--torch-weights",
                 str(tmp_path / "missing.pt"), "--keras-model", str(FIXTURES / "bn_layers_naive.keras"))
    assert out.returncode == 2
    assert "checkpoint not found" in out.stderr and "Traceback" not in out.stderr
    out = bnport("explain", "--torch-model", "no_such_module:f", "--keras-model", "x.keras")
    assert out.returncode == 2 and "cannot import module 'no_such_module'" in out.stderr


def test_demo_converts_verifies_and_explains(tmp_path):
    out = bnport("demo", "--out", str(tmp_path / "out"), env=script_env("demo"))  # as scripts/demo runs it
    assert out.returncode == 0, out.stderr + out.stdout
    for chatter in ("cuInit", "oneDNN", "cudart_stub", "absl::InitializeLog"):  # TensorFlow's start-up lines
        assert chatter not in out.stderr, out.stderr
    assert (tmp_path / "out" / "resnet.keras").is_file()
    assert (tmp_path / "out" / "resnet-verify.html").is_file() and (tmp_path / "out" / "resnet-verify.json").is_file()
    assert "ok: 13 layers and 1 output within tolerance" in out.stdout
    assert "[epsilon] epsilon differs: PyTorch 2e-05, Keras 0.001" in out.stdout
    assert "ok: the converted file computes what the PyTorch checkpoint computes" in out.stdout
