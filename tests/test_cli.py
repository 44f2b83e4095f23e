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


FACTORIES_WITH_EXIT_HANDLER = """
import atexit, sys
sys.path.insert(0, {fixtures!r})
import architectures

def leave_mark():
    with open({mark!r}, "w") as f:
        f.write("ran")

atexit.register(leave_mark)  # a library's exit handler, registered after the command line started


class Witness:  # freed in the interpreter's teardown, which the command line skips
    def __del__(self, path={torn!r}, write=open):
        with write(path, "w") as f:
            f.write("torn down")


witness = Witness()

def torch_model():
    return architectures.torch_resnet()

def keras_model():
    return architectures.keras_resnet()
"""


def test_the_command_line_ends_after_every_exit_handler_with_its_output_and_code_intact(tmp_path):
    """``bnport`` ends its process without the interpreter's teardown (bnport/cli/process.py), but only after the
    exit handlers the libraries it imported registered, its piped output complete and its exit code kept; an
    in-process ``main()`` leaves the host's collector as it was."""
    mark, torn, factories = tmp_path / "handler-ran", tmp_path / "torn-down", tmp_path / "factories.py"
    factories.write_text(FACTORIES_WITH_EXIT_HANDLER.format(fixtures=str(FIXTURES), mark=str(mark), torn=str(torn)))
    dst = tmp_path / "resnet.weights.h5"
    done = bnport("convert", str(FIXTURES / "resnet.pt"), str(dst), "--torch-model", f"{factories}:torch_model",
                  "--keras-model", f"{factories}:keras_model", "--verify", "--quiet")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.rstrip().splitlines()[-1].startswith("ok: ") and dst.is_file()
    assert mark.read_text() == "ran" and not torn.exists()
    mark.unlink()
    refused = bnport("convert", str(FIXTURES / "resnet.pt"), str(dst), "--torch-model", f"{factories}:torch_model",
                     "--keras-model", f"{factories}:keras_model")  # exists, no --force
    assert refused.returncode == 2 and "bnport: error:" in refused.stderr and "Traceback" not in refused.stderr
    code = ("import gc, sys\nfrom bnport.cli.main import main\n"
            f"rc = main(['explain', '--torch-model', {str(MODELS)!r} + ':torch_bn_layers', '--torch-weights', "
            f"{str(FIXTURES / 'bn_layers.pt')!r}, '--keras-model', {str(FIXTURES / 'bn_layers_naive.keras')!r}])\n"
            "print('RC', rc, 'FROZEN', gc.get_freeze_count(), 'ENABLED', gc.isenabled())\n")
    inside = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "RC 0 FROZEN 0 ENABLED True" in inside.stdout, inside.stdout + inside.stderr[-2000:]
