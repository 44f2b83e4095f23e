"""Checkpoints as hubs and training scripts ship them (fixtures/hub/, written by scripts/make_fixtures.py).

Every form holds the fixture ResNet's tensors; what each must load to is read here straight from the plain
``hub/folder/model.safetensors`` with safetensors itself.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from models import FIXTURES, architectures

from bnport.adapters import loading
from bnport.errors import CheckpointError

HUB = FIXTURES / "hub"
RESNET = f"{FIXTURES / 'architectures.py'}:torch_resnet"
TIED = f"{FIXTURES / 'models.py'}:torch_tied"


@pytest.fixture(scope="module")
def plain():
    from safetensors.torch import load_file

    return load_file(str(HUB / "folder" / "model.safetensors"))


def _loaded(path, key=None):
    notes: list[str] = []
    model = loading.torch_model(RESNET, path, key=key, notes=notes)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, notes


def _same(a, b):
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k].numpy(), b[k].numpy()), k


@pytest.mark.parametrize(("form", "note"), [
    ("sharded/model.safetensors.index.json", "read 38 tensors from 2 shards listed in model.safetensors.index.json"),
    ("sharded_bin/pytorch_model.bin.index.json", "from 2 shards listed in pytorch_model.bin.index.json"),
    ("folder", "read model.safetensors from the folder"),
    ("ddp_compiled.pt", "removed the key prefix 'module._orig_mod.'"),
    ("lightning.ckpt", "removed the key prefix 'model.'"),
    ("ema.pt", "also holds an EMA copy under 'state_dict_ema', not used"),
])
def test_every_form_loads_the_same_tensors(form, note, plain):
    state, notes = _loaded(HUB / form)
    _same(state, plain)
    assert any(note in n for n in notes), notes


def test_the_ema_copy_is_used_when_asked_for(plain):
    import torch

    ema = torch.load(HUB / "ema.pt", weights_only=True)["state_dict_ema"]
    state, notes = _loaded(HUB / "ema.pt", key="state_dict_ema")
    _same(state, ema)
    assert not np.array_equal(state["conv1.weight"].numpy(), plain["conv1.weight"].numpy())
    assert notes == ["used the state dict under 'state_dict_ema' of ema.pt"]
    with pytest.raises(CheckpointError, match=r"ema\.pt has no entry 'model_ema'\. Its entries: 'state_dict', "):
        _loaded(HUB / "ema.pt", key="model_ema")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_checkpoints_load_into_the_float32_model_exactly(dtype, plain):
    import torch

    state, notes = _loaded(HUB / f"resnet_{dtype}.safetensors")
    want = {k: v.to(getattr(torch, dtype)).to(v.dtype) if v.is_floating_point() else v for k, v in plain.items()}
    _same(state, want)  # the model's float32, holding exactly the half values
    assert any(f"stored as {dtype}, cast to the model's float32 exactly" in n for n in notes), notes


def test_a_tied_tensor_stored_once_fills_both_names():
    from safetensors.torch import load_file

    stored = load_file(str(HUB / "tied.safetensors"))
    assert "head.weight" not in stored
    notes: list[str] = []
    model = loading.torch_model(TIED, HUB / "tied.safetensors", notes=notes)
    assert model.head.weight is model.embed.weight
    assert np.array_equal(model.head.weight.detach().numpy(), stored["embed.weight"].numpy())
    assert any("head.weight from embed.weight" in n for n in notes), notes


def test_tied_names_holding_different_values_are_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(HUB / "tied.safetensors"))
    state["head.weight"] = state["embed.weight"] + 1
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(CheckpointError, match=r"the model ties embed\.weight, head\.weight \(one tensor\), but the "
                                              r"checkpoint holds different values for embed\.weight, head\.weight"):
        loading.torch_model(TIED, tmp_path / "broken.safetensors")


def test_a_tied_model_writes_a_safetensors_file(tmp_path):
    """safetensors refuses tensors that share memory: bnport stores each name with its own copy."""
    from safetensors.torch import load_file

    from bnport.adapters.torch.files import write_state_dict

    model = loading.torch_model(TIED, HUB / "tied.safetensors")
    write_state_dict(model.state_dict(), tmp_path / "tied.safetensors")
    back = load_file(str(tmp_path / "tied.safetensors"))
    assert np.array_equal(back["head.weight"].numpy(), back["embed.weight"].numpy())


@pytest.mark.parametrize(("change", "message"), [
    (lambda index, folder: index["weight_map"].update({"extra.weight": "model-00001-of-00002.safetensors"}),
     r"shard model-00001-of-00002\.safetensors does not hold what model\.safetensors\.index\.json says: missing "
     r"extra\.weight"),
    (lambda index, folder: index["weight_map"].pop("conv1.weight"),
     r"not in the index: conv1\.weight"),
    (lambda index, folder: index["weight_map"].update({"conv1.weight": "../elsewhere.safetensors"}),
     r"names the shard '\.\./elsewhere\.safetensors', outside its folder"),
    (lambda index, folder: (folder / "model-00002-of-00002.safetensors").unlink(),
     r"checkpoint not found: .*model-00002-of-00002\.safetensors"),
])
def test_a_shard_index_that_does_not_match_its_shards_is_refused(tmp_path, change, message):
    folder = tmp_path / "sharded"
    shutil.copytree(HUB / "sharded", folder)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    change(index, folder)
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match=message):
        loading.torch_model(RESNET, folder / "model.safetensors.index.json")


@pytest.mark.parametrize("form", ["sharded/model.safetensors.index.json", "folder"])
def test_the_cli_converts_a_hub_checkpoint(form, tmp_path, plain):
    """File to file from a shard index or a hub folder: the Keras file computes what the plain weights compute."""
    import torch

    dst = tmp_path / "resnet.weights.h5"
    done = subprocess.run(
        [sys.executable, "-m", "bnport", "convert", str(HUB / form), str(dst), "--torch-model", RESNET,
         "--keras-model", f"{FIXTURES / 'architectures.py'}:keras_resnet"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: read" in done.stdout
    k = architectures.keras_resnet()
    k.load_weights(dst)
    t = architectures.torch_resnet()
    t.load_state_dict(plain)
    x = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype("float32")
    with torch.no_grad():
        want = t.eval()(torch.from_numpy(x)).numpy()
    got = np.asarray(k(np.moveaxis(x, 1, -1)))
    assert np.max(np.abs(got - want)) <= 2.0**-13 * np.max(np.abs(want))


@pytest.mark.parametrize("form", ["sharded_bin/pytorch_model.bin.index.json", "folder"])
def test_inspect_reads_a_hub_checkpoint_without_keras(form):
    code = ("import sys; from bnport.cli.main import main; rc = main(['inspect', sys.argv[1]]); "
            "assert 'keras' not in sys.modules and 'tensorflow' not in sys.modules; sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, str(HUB / form)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "13 weight-holding layers, 6 BatchNorm" in done.stdout
