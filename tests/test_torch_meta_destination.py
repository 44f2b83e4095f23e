"""Conversions into PyTorch build the destination on the meta device and save the ported values directly."""

from __future__ import annotations

import numpy as np
import pytest
from models import FIXTURES, built_by, factory_module

from bnport.adapters.loading import on_meta
from bnport.adapters.torch.batchnorm import tensor_view
from bnport.io.factories import load_factory
from bnport.workflows.conversion import convert

FACTORIES = '''
import torch


def plain():
    BUILT.append(architectures.torch_mlp())
    return BUILT[-1]


def extra():  # one more Linear than the Keras MLP: left out with strict=False, kept as the definition made it
    BUILT.append(torch.nn.Sequential(*architectures.torch_mlp(), torch.nn.Linear(3, 2)))
    BUILT[-1][1].momentum = 0.3  # not what the source has: the file cannot hold it, so the report notes it
    return BUILT[-1]


def needs_values():  # reads a value while building: impossible on the meta device
    model = plain()
    assert float(model[0].weight.abs().sum().item()) >= 0
    return model
'''


@pytest.fixture
def factories(tmp_path):
    return factory_module(tmp_path, FACTORIES)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_destination_never_gets_memory_and_the_file_is_what_a_port_writes(suffix, factories, tmp_path, torch):
    dst, reference = tmp_path / f"meta{suffix}", tmp_path / f"reference{suffix}"
    convert(FIXTURES / "mlp.keras", dst, torch_model=factories("plain"))
    (model,) = built_by(factories("plain"))
    assert all(t.is_meta for t in (*model.parameters(), *model.buffers()))  # built once, never filled

    given = load_factory(f"{FIXTURES / 'architectures.py'}:torch_mlp")()
    convert(FIXTURES / "mlp.keras", reference, torch_model=given)  # a model object: ported in place, then saved
    got, want = read(dst), read(reference)
    assert list(got) == list(want) and len(want) == 16  # same keys, same order
    for key in want:
        assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key
    if suffix == ".safetensors":
        assert dst.read_bytes() == reference.read_bytes()


def read(path):
    from bnport.adapters.torch.files import read_state_dict

    return read_state_dict(path)


def test_an_entry_the_port_does_not_fill_comes_from_a_real_build(factories, tmp_path, torch):
    dst = tmp_path / "extra.pt"
    report = convert(FIXTURES / "mlp.keras", dst, torch_model=factories("extra"), strict=False)
    assert report.port.unmatched_dst == ["8"]
    assert [n[:36] for n in report.notes] == ["1: momentum 0.1 (PyTorch convention)"]  # kept through the rebuild
    first, second = built_by(factories("extra"))
    assert on_meta(first) and not on_meta(second)  # tried on meta, then built for real and ported again
    state = read(dst)
    assert torch.equal(state["8.weight"], second[8].weight.detach()) and torch.isfinite(state["8.weight"]).all()
    assert torch.equal(state["7.weight"], second[7].weight.detach())


def test_a_factory_that_needs_values_is_built_normally(factories, tmp_path):
    convert(FIXTURES / "mlp.keras", tmp_path / "m.pt", torch_model=factories("needs_values"))
    built = built_by(factories("needs_values"))
    assert len(built) == 2 and not on_meta(built[-1])


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "int64"])
def test_a_meta_tensor_reads_as_zeros_that_take_no_memory(dtype, torch):
    tensor = torch.empty((3, 4, 5), dtype=getattr(torch, dtype), device="meta")
    view = tensor_view(tensor)
    assert view.shape == (3, 4, 5) and view.dtype.name == dtype and view.strides == (0, 0, 0)
    assert not view.flags.writeable and not np.any(view.astype("float64"))
