"""What a user meets when something is wrong: through the CLI, exit code 2, one line, no traceback, the true cause.

Most cases call ``bnport.cli.main.main`` in this process (the CLI's own code path, without a second start-up);
the factory case runs a real ``bnport`` process to show that no traceback reaches the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bnport.cli.main import main

pytestmark = pytest.mark.backends

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
ARCH = FIXTURES / "architectures.py"
RESNET = ["--torch-model", f"{ARCH}:torch_resnet", "--keras-model", f"{ARCH}:keras_resnet"]

FACTORIES = '''
def broken():
    raise RuntimeError("needs cfg.yaml, which is not there")

def number():
    return 3

def tiny_torch():
    import torch
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))

def tiny_keras():
    import keras
    x = keras.Input((None, None, 3))
    return keras.Model(x, keras.layers.BatchNormalization(epsilon=1e-5)(keras.layers.Conv2D(4, 3)(x)))
'''


@pytest.fixture
def factories(tmp_path):
    path = tmp_path / "factories.py"
    path.write_text(FACTORIES)
    return path


def error_of(argv: list[str], capsys) -> tuple[str, str]:
    """Run the CLI expecting exit 2 with one error line and no traceback; return (stdout, the error line)."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.startswith("bnport")]
    assert len(lines) == 1, err
    return out, lines[0]


def test_a_truncated_or_empty_checkpoint_says_so(tmp_path, capsys, torch):
    legacy = tmp_path / "legacy.pt"
    torch.save({"weight": torch.zeros(1000, 100)}, legacy, _use_new_zipfile_serialization=False)
    data = legacy.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:300])  # inside the pickle: torch's weights-only loader calls it an unsupported global
    _, line = error_of(["inspect", str(cut)], capsys)
    assert "ends early (300 bytes): the file is truncated" in line and "refused" not in line
    zipped = tmp_path / "zipped.pt"
    torch.save({"weight": torch.zeros(1000, 100)}, zipped)
    cut.write_bytes(zipped.read_bytes()[:200_000])
    assert "the file is truncated" in error_of(["inspect", str(cut)], capsys)[1]
    cut.write_bytes(b"")
    assert "is empty (0 bytes)" in error_of(["inspect", str(cut)], capsys)[1]
    cut.write_bytes(b"plain text, not a checkpoint\n")
    _, line = error_of(["inspect", str(cut)], capsys)
    assert "is not a PyTorch checkpoint: torch.save writes a zip archive or a pickle" in line


def test_a_directory_as_destination_is_named_with_a_file_to_give(tmp_path, capsys):
    _, line = error_of(["convert", str(FIXTURES / "resnet.pt"), str(tmp_path), *RESNET], capsys)
    assert f"{tmp_path} is a directory: give the file to write in it, e.g. {tmp_path / 'resnet.weights.h5'}" in line


def test_report_paths_are_checked_before_the_verification(tmp_path, capsys):
    weights = ["--torch-weights", str(FIXTURES / "resnet.pt")]
    out, line = error_of(["verify", *RESNET, *weights, "--html", str(tmp_path)], capsys)
    assert out == "" and "--html: the destination" in line and "is a directory" in line  # nothing ran
    out, line = error_of(["verify", *RESNET, *weights, "--json", str(tmp_path / "no" / "r.json")], capsys)
    assert out == "" and "--json: the destination folder" in line and "does not exist" in line


def test_every_report_file_option_is_checked_before_the_work():
    from bnport.cli.main import REPORT_FILES, build_parser

    for name, command in build_parser().commands.items():
        files = {a.dest for a in command._actions if a.metavar == "FILE" and "write" in a.help}  # its outputs
        assert files == set(REPORT_FILES.get(name, ())), name


def test_a_keras_error_over_several_lines_is_given_whole(capsys):
    _, line = error_of(["verify", "--torch-model", f"{ARCH}:torch_mlp", "--keras-model", f"{ARCH}:keras_mlp",
                        "--keras-weights", str(FIXTURES / "resnet.weights.h5")], capsys)
    # Keras says which object and why on the lines after "Example error message for object <Conv2D ...>:"
    assert "Example error message for object <Conv2D name=conv" in line
    assert "Layer 'conv' expected 2 variables, but received 1" in line


def test_a_factory_that_raises_gives_its_own_message_and_line_not_a_traceback(factories):
    env = dict(os.environ)
    done = subprocess.run([sys.executable, "-m", "bnport", "convert", str(FIXTURES / "resnet.pt"), "x.keras",
                           "--torch-model", f"{factories}:broken", "--keras-model", f"{ARCH}:keras_resnet"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=factories.parent)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert (f"bnport: error: factory '{factories}:broken' failed: RuntimeError: needs cfg.yaml, which is not there "
            f"({factories}:3)") in done.stderr


def test_a_factory_returning_something_else_is_named_with_an_article(factories, capsys):
    _, line = error_of(["convert", str(FIXTURES / "resnet.pt"), "x.keras", "--torch-model", f"{factories}:number",
                        "--keras-model", f"{ARCH}:keras_resnet"], capsys)
    assert "returned an int (3), not a torch.nn.Module" in line


def test_a_mistyped_option_gets_the_closest_one(capsys):
    _, line = error_of(["convert", "a.pt", "b.keras", "--forse"], capsys)
    assert line == "bnport convert: error: unknown option --forse; did you mean --force?"
    _, line = error_of(["verify", "--jsno", "r.json"], capsys)
    assert line.endswith("unknown option --jsno; did you mean --json?")


def test_unmatched_layers_show_the_shapes_that_stopped_the_pairing(tmp_path, capsys):
    argv = ["convert", str(FIXTURES / "resnet.pt"), str(tmp_path / "x.keras"), "--torch-model",
            f"{ARCH}:torch_resnet", "--keras-model", f"{ARCH}:keras_mlp"]
    try:
        assert main(argv) == 2
    finally:
        err = capsys.readouterr().err
    assert "unmatched PyTorch layer: fc (dense(weight[5, 16], bias[5]))" in err
    assert "unmatched Keras layer: fc1 (dense(weight[16, 120], bias[16]))" in err
    assert "unmatched Keras layer: fc1_bn (batchnorm(16))" in err


def test_a_single_problem_is_one_problem(torch, keras):
    from bnport.core.pairing import PlanError
    from bnport.workflows.porting import port

    t = torch.nn.Sequential(torch.nn.Linear(3, 4))
    x = keras.Input((3,))
    k = keras.Model(x, keras.layers.Dense(4)(keras.layers.Dense(3)(x)))
    with pytest.raises(PlanError, match=r"\(1 pair found, 1 problem\)"):
        port(t, k)


def test_verify_without_weights_says_which_model_keeps_its_factory_weights(tmp_path, capsys):
    code = main(["verify", *RESNET, "--keras-weights", str(FIXTURES / "resnet.weights.h5"), "--json",
                 str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert code in (0, 1)
    said = f"no --torch-weights: the PyTorch model has the weights its factory '{ARCH}:torch_resnet' gives it"
    assert said in out and any(said in n for n in json.loads((tmp_path / "r.json").read_text())["notes"])
    assert "no --keras-weights" not in out


@pytest.mark.parametrize("option, file, belongs", [
    ("--keras-model", FIXTURES / "resnet.weights.h5", "--keras-weights"),
    ("--torch-model", FIXTURES / "resnet.pt", "--torch-weights"),
])
def test_a_weights_file_given_as_the_model_points_to_its_option(option, file, belongs, capsys):
    argv = ["verify", *RESNET]
    argv[argv.index(option) + 1] = str(file)
    _, line = error_of(argv, capsys)
    assert f"{file} is a" in line and f"weights file, not a model definition: pass it as {belongs}" in line


def test_inputs_the_model_cannot_take_are_said_to_be_the_inputs(factories, capsys):
    _, line = error_of(["verify", "--torch-model", f"{factories}:tiny_torch", "--keras-model",
                        f"{factories}:tiny_keras", "--input-shape", "1,3,2,2"], capsys)
    assert "the PyTorch model Sequential cannot run on inputs of shape [1, 3, 2, 2] (channels-first)" in line
    assert "Kernel size can't be greater than actual input size" in line and "torch.onnx.export" not in line


def test_outputs_only_and_port_sizes_read_as_what_happened(tmp_path, capsys):
    ported = tmp_path / "resnet.keras"
    assert main(["convert", str(FIXTURES / "resnet.pt"), str(ported), *RESNET]) == 0
    assert "ported 13 layers (32 tensors, 20.8 KiB) PyTorch -> Keras" in capsys.readouterr().out
    assert main(["verify", "--torch-model", f"{ARCH}:torch_resnet", "--torch-weights", str(FIXTURES / "resnet.pt"),
                 "--keras-model", str(ported), "--no-per-layer"]) == 0
    out = capsys.readouterr().out
    assert "ok: 1 output within tolerance (outputs only: no layer compared one by one)" in out
    assert "0 layers" not in out
