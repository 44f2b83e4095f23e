"""Writing a port: every layer checked before the first write; Keras kernels gathered once, adopted by TensorFlow.

TensorFlow adopts the gathered buffer as the variable's memory, so these tests run real TensorFlow kernels on
the written variables (an unaligned buffer aborts the process there), compare every value bit for bit, and
check that the destination never shares memory with the source.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from models import SMALL, fresh, keras_model, torch_model

from bnport.adapters.keras.writes import _gathered, commit
from bnport.core.layers import Write
from bnport.errors import IncompatibleLayerError
from bnport.workflows.porting import port

DTYPES = ("float32", "float64", "float16", "int32")


@st.composite
def views(draw):
    """A strided view (transposed, sliced or reversed) of a random array, with a dtype."""
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=1, max_size=4)))
    base = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(shape) * 100
    view = base.astype(dtype)
    view = np.transpose(view, draw(st.permutations(range(len(shape)))))
    if draw(st.booleans()):
        view = view[..., ::-1]
    return view


@given(st.lists(views(), min_size=1, max_size=6), st.integers(1, 4))
def test_commit_writes_every_view_exactly_into_aligned_memory(values, threads):
    variables = [keras.Variable(np.zeros(v.shape, v.dtype), dtype=v.dtype.name) for v in values]
    commit([Write(None, {}, list(zip(variables, values, strict=True)))], threads=threads)
    for variable, value in zip(variables, values, strict=True):
        got = keras.ops.convert_to_numpy(variable.value)
        assert got.dtype == value.dtype and np.array_equal(got, value)
        # a TensorFlow kernel reading the variable's buffer (Eigen checks its alignment, aborting if wrong)
        assert np.array_equal(keras.ops.convert_to_numpy(keras.ops.negative(variable.value)), -value)


@given(views(), st.integers(0, 63))
def test_gathered_copies_are_aligned_whatever_the_allocator_returns(value, _):
    out = _gathered(value)
    assert out.ctypes.data % 64 == 0 and out.flags.c_contiguous and np.array_equal(out, value)
    assert not np.shares_memory(out, value)


@pytest.mark.parametrize("name", SMALL)
def test_ported_keras_model_shares_no_memory_with_the_source(name, torch):
    src, dst = torch_model(name), fresh(name, "keras")
    port(src, dst)
    before = [keras.ops.convert_to_numpy(v.value).copy() for v in dst.weights]
    with torch.no_grad():
        for tensor in src.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(1.0)
    after = [keras.ops.convert_to_numpy(v.value) for v in dst.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_a_problem_found_while_writing_leaves_the_keras_model_untouched():
    """A Keras BatchNorm built with scale=False cannot hold a trained gamma: the plan pairs it (shapes agree),
    the write refuses it, after four other layers were checked."""
    config = fresh("mlp", "keras").get_config()
    next(c for c in config["layers"] if c["config"].get("name") == "fc1_bn")["config"]["scale"] = False
    dst = keras.Sequential.from_config(config)
    before = [keras.ops.convert_to_numpy(v.value).copy() for v in dst.weights]
    with pytest.raises(IncompatibleLayerError, match=r"fc1_bn.*scale=False"):
        port(torch_model("mlp"), dst)
    after = [keras.ops.convert_to_numpy(v.value) for v in dst.weights]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))


def test_a_problem_found_while_writing_leaves_the_torch_model_untouched(torch):
    """A Linear without bias cannot take a Keras Dense's non-zero bias: found when writing the last layer."""
    src, dst = keras_model("mlp"), fresh("mlp", "torch")
    dst[7] = torch.nn.Linear(16, 3, bias=False)
    before = {k: v.clone() for k, v in dst.state_dict().items()}
    with pytest.raises(IncompatibleLayerError, match="bias"):
        port(src, dst)
    after = dst.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
