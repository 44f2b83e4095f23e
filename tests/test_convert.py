"""File to file, both directions, every fixture architecture and file format; failures leave nothing behind."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from models import FIXTURES, architectures, readable_by_this_keras, sample
from test_port_models import run_keras, run_torch

from bnport import BnportWarning, CheckpointError, UsageError
from bnport.adapters.loading import keras_model, torch_model
from bnport.adapters.torch.graph import graph as torch_graph
from bnport.core.tolerance import output_depth, tolerance
from bnport.io.factories import load_factory
from bnport.workflows.conversion import convert

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)

ARCH = FIXTURES / "architectures.py"
FILES = architectures.FILES
KERAS_OUT = {"resnet": ".keras", "mobilenet": ".weights.h5", "conv1d": ".weights.h5", "conv3d": ".keras",
             "mlp": ".h5"}
TORCH_OUT = {"resnet": ".safetensors", "mobilenet": ".pt", "conv1d": ".safetensors", "conv3d": ".pth", "mlp": ".pt"}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refs(name):
    return f"{ARCH}:torch_{name}", f"{ARCH}:keras_{name}"


def assert_close(t, k, name):
    x = sample(name)
    yt, yk = run_torch(t, x), run_keras(k, x)
    tol = tolerance(output_depth(torch_graph(t)), yt)
    assert float(np.max(np.abs(yt - yk))) <= tol


def no_leftovers(folder: Path) -> None:
    assert not [p for p in folder.iterdir() if p.name.startswith(".bnport-tmp-")]


@pytest.mark.parametrize("name", list(FILES))
def test_torch_file_to_keras_file(name, tmp_path):
    src = FIXTURES / FILES[name][0]
    before = sha(src)
    dst = tmp_path / f"{name}{KERAS_OUT[name]}"
    t_ref, k_ref = refs(name)
    report = convert(src, dst, torch_model=t_ref, keras_model=k_ref)
    assert sha(src) == before and dst.is_file() and report.port.direction == "PyTorch -> Keras"
    loaded = keras_model(str(dst)) if dst.name.endswith(".keras") else keras_model(k_ref, dst)
    assert_close(torch_model(t_ref, src), loaded, name)
    no_leftovers(tmp_path)


@pytest.mark.parametrize("name", list(FILES))
def test_keras_file_to_torch_file(name, tmp_path):
    src = FIXTURES / FILES[name][1]
    _needs_readable(src)
    before = sha(src)
    dst = tmp_path / f"{name}{TORCH_OUT[name]}"
    t_ref, k_ref = refs(name)
    convert(src, dst, torch_model=t_ref, keras_model=None if src.name.endswith(".keras") else k_ref)
    assert sha(src) == before
    source = keras_model(str(src)) if src.name.endswith(".keras") else keras_model(k_ref, src)
    assert_close(torch_model(t_ref, dst), source, name)
    no_leftovers(tmp_path)


def test_existing_destination_needs_force(tmp_path):
    dst = tmp_path / "out.weights.h5"
    dst.write_bytes(b"keep me")
    t_ref, k_ref = refs("mlp")
    with pytest.raises(CheckpointError, match="exists; pass --force"):
        convert(FIXTURES / "mlp.pt", dst, torch_model=t_ref, keras_model=k_ref)
    assert dst.read_bytes() == b"keep me"
    convert(FIXTURES / "mlp.pt", dst, torch_model=t_ref, keras_model=k_ref, force=True)
    assert dst.read_bytes() != b"keep me"


def test_bad_destinations(tmp_path):
    t_ref, k_ref = refs("mlp")
    src = FIXTURES / "mlp.pt"
    (tmp_path / "d.keras").mkdir()
    with pytest.raises(CheckpointError, match="is a directory"):
        convert(src, tmp_path / "d.keras", torch_model=t_ref, keras_model=k_ref)
    with pytest.raises(CheckpointError, match="does not exist"):
        convert(src, tmp_path / "no" / "x.keras", torch_model=t_ref, keras_model=k_ref)
    with pytest.raises(CheckpointError, match=r"could not write /proc/mlp\.keras"):
        convert(src, Path("/proc/mlp.keras"), torch_model=t_ref, keras_model=k_ref)
    with pytest.raises(UsageError, match="both torch files"):
        convert(src, tmp_path / "x.pt", torch_model=t_ref)


def test_destination_is_the_source(tmp_path):
    src = tmp_path / "m.keras"
    src.write_bytes((FIXTURES / "mlp.keras").read_bytes())
    link = tmp_path / "same.pt"  # the same file under a PyTorch name
    os.link(src, link)
    with pytest.raises(CheckpointError, match="is the source file"):
        convert(src, link, torch_model=refs("mlp")[0], force=True)


def test_missing_unexpected_and_misshaped_keys_are_listed_at_once(tmp_path, torch):
    state = torch.load(FIXTURES / "mlp.pt", weights_only=True)
    state.pop("1.running_var")
    state["extra.weight"] = torch.zeros(2)
    state["7.weight"] = torch.zeros(3, 15)
    bad = tmp_path / "bad.pt"
    torch.save(state, bad)
    dst = tmp_path / "out.keras"
    with pytest.raises(CheckpointError) as info:
        convert(bad, dst, torch_model=refs("mlp")[0], keras_model=refs("mlp")[1])
    text = str(info.value)
    assert "missing keys: 1.running_var" in text and "unexpected keys: extra.weight" in text
    assert "7.weight: file (3, 15) vs model (3, 16)" in text
    assert not dst.exists()
    no_leftovers(tmp_path)


def test_weights_only_destination_refuses_a_definition_with_another_epsilon(tmp_path):
    models = FIXTURES / "models.py"
    dst = tmp_path / "bn.weights.h5"
    with pytest.raises(CheckpointError) as info, pytest.warns(BnportWarning, match="momentum=None"):
        convert(FIXTURES / "bn_layers.pt", dst, torch_model=f"{models}:torch_bn_layers",
                keras_model=f"{models}:keras_bn_layers")
    assert "bn1d: epsilon 1e-05 in the source, 0.001 in the definition" in str(info.value)
    assert "write a .keras file" in str(info.value) and not dst.exists()
    with pytest.warns(BnportWarning, match="momentum=None"):
        report = convert(FIXTURES / "bn_layers.pt", tmp_path / "bn.keras", torch_model=f"{models}:torch_bn_layers",
                         keras_model=f"{models}:keras_bn_layers")
    assert report.port.tensors == 12


def _needs_readable(path) -> None:
    if str(path).endswith(".keras") and not readable_by_this_keras(path):
        pytest.skip(f"{path.name} was written by a newer Keras than this one, which cannot read it")


def test_momentum_the_file_cannot_hold_is_noted(tmp_path):
    _needs_readable(FIXTURES / "mlp.keras")
    defs = tmp_path / "defs.py"
    defs.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(FIXTURES)!r})\n"
        "import architectures\n\n"
        "def torch_mlp():\n"
        "    model = architectures.torch_mlp()\n"
        "    model[1].momentum = 0.3\n"
        "    return model\n"
    )
    report = convert(FIXTURES / "mlp.keras", tmp_path / "m.pt", torch_model=f"{defs}:torch_mlp")
    assert len(report.notes) == 1
    assert report.notes[0].startswith("1: momentum 0.1 (PyTorch convention) in the source but 0.3")
    assert (tmp_path / "m.pt").is_file()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bnport", *args], capture_output=True, text=True, timeout=300)


def test_cli_convert_and_exit_codes(tmp_path):
    t_ref, k_ref = refs("conv1d")
    dst = tmp_path / "c.keras"
    ok = cli("convert", str(FIXTURES / "conv1d.pth"), str(dst), "--torch-model", t_ref, "--keras-model", k_ref)
    assert ok.returncode == 0, ok.stderr
    assert "ported 7 layers" in ok.stdout and dst.is_file()
    again = cli("convert", str(FIXTURES / "conv1d.pth"), str(dst), "--torch-model", t_ref, "--keras-model", k_ref)
    assert again.returncode == 2 and "exists; pass --force" in again.stderr and "Traceback" not in again.stderr
    assert again.stderr.count("\n") == 1


def test_cli_inspect(tmp_path):
    _needs_readable(FIXTURES / "mlp.keras")
    out = cli("inspect", str(FIXTURES / "resnet.pt"))
    assert out.returncode == 0 and "13 weight-holding layers, 6 BatchNorm" in out.stdout
    assert "eps not stored in a state dict" in out.stdout and "trained statistics" in out.stdout
    out = cli("inspect", str(FIXTURES / "mlp.keras"), "--json")
    assert out.returncode == 0 and '"kind": "batchnorm"' in out.stdout and "eps 1e-05" in out.stdout
    for f in ("conv1d.h5", "resnet.weights.h5", "mobilenet.safetensors"):
        out = cli("inspect", str(FIXTURES / f))
        assert out.returncode == 0 and "BatchNorm" in out.stdout, f


def h5_datasets(path: Path) -> dict[str, np.ndarray]:
    import h5py

    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_model_objects_are_used_as_they_are_and_give_the_files_factories_give(tmp_path, torch):
    """Many files, one pair of models: each conversion loads its file into the source object and ports it into
    the destination object, whose file is the one a conversion from factories writes."""
    t_ref, k_ref = refs("resnet")
    t_obj, k_obj = architectures.torch_resnet(), architectures.keras_resnet()
    srcs = [FIXTURES / "resnet.pt", tmp_path / "other.pt"]
    other = torch_model(t_ref, srcs[0])
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    torch.save(other.state_dict(), srcs[1])
    for src in srcs:
        by_objects, by_factories = tmp_path / f"{src.stem}.objects.weights.h5", tmp_path / f"{src.stem}.weights.h5"
        convert(src, by_objects, torch_model=t_obj, keras_model=k_obj)
        convert(src, by_factories, torch_model=t_ref, keras_model=k_ref)
        got, want = h5_datasets(by_objects), h5_datasets(by_factories)
        assert got.keys() == want.keys() and all(np.array_equal(got[n], want[n]) for n in want)
        loaded = torch_model(t_ref, src)
        assert all(torch.equal(t_obj.state_dict()[k], v) for k, v in loaded.state_dict().items())  # got src
        assert_close(loaded, k_obj, "resnet")  # the Keras object holds the port

    k_back = tmp_path / "back.weights.h5"
    k_obj.save_weights(k_back)
    t_dst = architectures.torch_resnet()
    convert(k_back, tmp_path / "back.pt", torch_model=t_dst, keras_model=architectures.keras_resnet())
    assert_close(t_dst, k_obj, "resnet")
    saved = torch.load(tmp_path / "back.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in t_dst.state_dict().items())


def test_a_refused_conversion_leaves_the_given_model_as_it_was(tmp_path):
    models = FIXTURES / "models.py"
    k_obj = load_factory(f"{models}:keras_bn_layers")()
    before = [np.array(v) for v in k_obj.weights]
    eps = [layer.epsilon for layer in k_obj.layers if hasattr(layer, "epsilon")]
    with pytest.raises(CheckpointError, match="epsilon 1e-05 in the source"), pytest.warns(BnportWarning):
        convert(FIXTURES / "bn_layers.pt", tmp_path / "bn.weights.h5", torch_model=f"{models}:torch_bn_layers",
                keras_model=k_obj)
    assert all(np.array_equal(np.array(v), b) for v, b in zip(k_obj.weights, before, strict=True))
    assert [layer.epsilon for layer in k_obj.layers if hasattr(layer, "epsilon")] == eps
    assert list(tmp_path.iterdir()) == []


def test_a_model_object_of_the_wrong_kind_is_a_usage_error_and_a_path_is_a_file(tmp_path):
    _needs_readable(FIXTURES / "mlp.keras")
    t_ref, k_ref = refs("mlp")
    with pytest.raises(UsageError, match=r"the keras_model given is a list, not a keras\.Model"):
        convert(FIXTURES / "mlp.pt", tmp_path / "m.weights.h5", torch_model=t_ref, keras_model=[])
    with pytest.raises(UsageError, match=r"the torch_model given is a dict, not a torch\.nn\.Module"):
        convert(FIXTURES / "mlp.pt", tmp_path / "m.weights.h5", torch_model={}, keras_model=k_ref)
    assert list(tmp_path.iterdir()) == []
    convert(FIXTURES / "mlp.pt", tmp_path / "m.weights.h5", torch_model=t_ref, keras_model=FIXTURES / "mlp.keras")
    assert (tmp_path / "m.weights.h5").is_file()  # a path is a file to load, not a model object
