"""Kernels copied into Keras's layout while the port traces the graphs: used only when exactly what a write needs;
and checked for finite values as they are copied, so that the port's check reads them only when not known."""

from __future__ import annotations

import itertools
import threading

import keras
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from models import SMALL, fresh, torch_model

from bnport.adapters.keras.writes import commit
from bnport.adapters.torch import compat as torch_compat
from bnport.adapters.torch.early_kernels import EarlyKernels
from bnport.errors import SpecError
from bnport.workflows.porting import port, prepared


@st.composite
def kernels(draw):
    """A Conv1d/2d/3d or Linear with random sizes and a float dtype, and the Keras layout of its weight."""
    dims = draw(st.integers(0, 3))
    dtype = draw(st.sampled_from([torch.float32, torch.float64, torch.float16]))
    cin, cout = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    if dims == 0:
        module = torch.nn.Linear(cin, cout)
    else:
        conv = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[dims - 1]
        module = conv(cin, cout, tuple(draw(st.lists(st.integers(1, 4), min_size=dims, max_size=dims))))
    return module.to(dtype), (*range(2, dims + 2), 1, 0)


@settings(max_examples=60, deadline=None)
@given(kernels())
def test_the_copy_is_the_keras_layout_view_bit_for_bit(case):
    module, axes = case
    weight = module.weight.detach().numpy()
    early = EarlyKernels(module)
    view = np.transpose(weight, axes)
    for other in itertools.permutations(range(weight.ndim)):  # another layout (depthwise, ...): not this copy
        seen = np.transpose(weight, other)
        if (seen.shape, seen.strides) != (view.shape, view.strides):
            assert early.claim(seen) is None
    assert early.claim(np.transpose(weight.copy(), axes)) is None  # same values elsewhere in memory: not its view
    copy = early.claim(view)
    assert copy is not None and early.claim(view) is None  # claimed once
    early.wait()
    got = copy.numpy()
    assert got.dtype == view.dtype and np.array_equal(got, view) and got.flags.c_contiguous
    assert copy.data_ptr() % 64 == 0 and not np.shares_memory(got, weight)


@pytest.mark.parametrize("module", [
    torch.nn.Conv2d(4, 4, 3, groups=2),  # grouped: another Keras layout
    torch.nn.Conv2d(4, 4, 3, groups=4),  # depthwise
    torch.nn.ConvTranspose2d(4, 3, 3),
    torch.nn.Linear(4, 3).to(torch.bfloat16),  # numpy has no bfloat16
    torch.nn.BatchNorm2d(4),
])
def test_layers_of_another_layout_are_not_copied(module):
    early = EarlyKernels(module)
    early.wait()
    assert not early._ready and early.claim(np.transpose(module.weight.detach().float().numpy())) is None


def test_at_most_limit_bytes_are_copied_ahead():
    model = torch.nn.Sequential(*(torch.nn.Linear(32, 32) for _ in range(4)))  # 4 KiB each
    early = EarlyKernels(model, limit=3 * 32 * 32 * 4)
    assert len(early._ready) == 3
    early.wait()


@pytest.mark.parametrize("name", SMALL)
def test_a_port_with_early_copies_writes_what_one_without_writes(name):
    src = torch_model(name)
    with_early, without = fresh(name, "keras"), fresh(name, "keras")
    ready = prepared(src, with_early)
    commit(ready.writes, early=ready.early)
    commit(prepared(src, without).writes, early=None)
    for a, b in zip(with_early.weights, without.weights, strict=True):
        got, want = keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value)
        assert got.dtype == want.dtype and np.array_equal(got, want), a.path
        assert np.array_equal(keras.ops.convert_to_numpy(keras.ops.negative(a.value)), -want)  # a kernel reads it
    plain = sum(1 for m in src.modules() if isinstance(m, torch.nn.Linear)
                or (isinstance(m, torch.nn.Conv2d | torch.nn.Conv1d | torch.nn.Conv3d) and m.groups == 1))
    flattened = 1 if name == "mlp" else 0  # the Dense after a Flatten takes permuted rows: its own gather
    assert ready.early.used == plain - flattened > 0


def test_if_copying_fails_the_writes_gather_as_usual(monkeypatch):
    def broken(copies, views):
        copies[0].fill_(123.0)  # a half-made copy must not be used
        raise RuntimeError("simulated failure in the worker")

    monkeypatch.setattr(torch, "_foreach_copy_", broken)
    src, dst, want = torch_model("resnet"), fresh("resnet", "keras"), fresh("resnet", "keras")
    ready = prepared(src, dst)
    commit(ready.writes, early=ready.early)
    assert ready.early.used > 0 and not ready.early.wait()
    commit(prepared(src, want).writes, early=None)
    for a, b in zip(dst.weights, want.weights, strict=True):
        assert np.array_equal(keras.ops.convert_to_numpy(a.value), keras.ops.convert_to_numpy(b.value)), a.path


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_early_copies_of_other_float_dtypes_are_adopted_exactly(dtype):
    src = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(4, 2)).to(getattr(torch, dtype)).eval()
    with torch.no_grad():
        for p in src.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    inp = keras.Input((5, 5, 3), dtype=dtype)
    x = keras.layers.Conv2D(4, 3, dtype=dtype)(inp)
    x = keras.layers.BatchNormalization(dtype=dtype)(x)
    out = keras.layers.Dense(2, dtype=dtype)(keras.layers.GlobalAveragePooling2D(dtype=dtype)(x))
    dst = keras.Model(inp, out)
    ready = prepared(src, dst)
    commit(ready.writes, early=ready.early)
    assert ready.early.used == 2  # the conv kernel and the Linear weight
    kernel = keras.ops.convert_to_numpy(dst.layers[1].kernel.value)
    assert kernel.dtype == np.dtype(dtype)
    assert np.array_equal(kernel, np.transpose(src[0].weight.detach().numpy(), (2, 3, 1, 0)))
    dense = keras.ops.convert_to_numpy(dst.layers[-1].kernel.value)
    assert np.array_equal(dense, src[4].weight.detach().numpy().T)
    assert np.array_equal(keras.ops.convert_to_numpy(keras.ops.negative(dst.layers[1].kernel.value)), -kernel)


@settings(max_examples=80, deadline=None)
@given(st.sampled_from([torch.float16, torch.float32, torch.float64]), st.integers(1, 70_000), st.data())
def test_a_norm_is_finite_exactly_when_every_value_is(dtype, size, data):
    values = torch.randn(size, generator=torch.Generator().manual_seed(size)).to(dtype)
    bad = data.draw(st.sampled_from([None, float("nan"), float("inf"), float("-inf")]))
    if bad is not None:
        values[data.draw(st.integers(0, size - 1))] = bad
    (norm,) = torch_compat.norms([values])
    assert bool(norm.isfinite()) == (bad is None)


def test_a_norm_too_large_for_its_dtype_is_only_not_known_finite():
    (norm,) = torch_compat.norms([torch.full((4,), 3e38)])  # finite values whose squares overflow
    assert not norm.isfinite()  # the exact check then reads them: finite, so no problem is reported


def test_nothing_is_known_finite_while_the_copies_are_being_made(monkeypatch):
    started, release = threading.Event(), threading.Event()

    def slow(copies, views):
        started.set()
        release.wait(10)
        torch_compat.copy_all(copies, views, fast=False)

    monkeypatch.setattr(torch, "_foreach_copy_", slow)
    src = torch_model("mlp")
    early = EarlyKernels(src)
    started.wait(10)
    assert early.known_finite() is None  # not waited for: the caller reads the values
    release.set()
    early.wait()
    assert early.known_finite()(src[0].weight.detach().numpy())


def test_kernels_checked_as_they_are_copied_are_known_finite_and_only_they():
    src = torch_model("mlp")
    early = EarlyKernels(src)
    conv = src[0].weight.detach().numpy()
    early.wait()  # before, nothing is known yet
    finite = early.known_finite()
    assert finite(conv) and finite(src[7].weight.detach().numpy())
    assert not finite(conv.copy())  # the same values elsewhere: not known
    assert not finite(src[1].weight.detach().numpy())  # a BatchNorm vector: not copied, not known
    with torch.no_grad():
        src[0].weight.view(-1)[-1] = float("nan")
    early = EarlyKernels(src)
    early.wait()
    assert not early.known_finite()(conv)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", ["0", "4", "7"])  # a conv kernel, the Linear after the Flatten, the last Linear
@pytest.mark.parametrize("norms", [True, False])
def test_a_non_finite_kernel_is_refused_whether_or_not_norms_are_known(where, value, norms, monkeypatch):
    if not norms:
        monkeypatch.delattr(torch, "_foreach_norm")
    src, dst = torch_model("mlp"), fresh("mlp", "keras")
    ready = prepared(src, dst)
    ready.early.wait()
    assert ready.early.known_finite()(src[int(where)].weight.detach().numpy()) == norms
    with torch.no_grad():
        src[int(where)].weight.view(-1)[-1] = value
    before = [np.array(keras.ops.convert_to_numpy(v.value)) for v in dst.weights]
    with pytest.raises(SpecError, match=f"{where}: weight has 1 non-finite value"):
        port(src, dst)
    assert all(np.array_equal(a, keras.ops.convert_to_numpy(v.value)) for a, v in zip(before, dst.weights,
                                                                                        strict=True))
