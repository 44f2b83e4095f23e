"""check_layer: real torch export, real tf2onnx export, real onnxruntime sessions, ONNX reference node."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import JAX_32_BIT, keras_bn, torch_bn
from hypothesis import given, settings
from hypothesis import strategies as st

from bnport import IncompatibleLayerError, UnsupportedLayerError, check_layer, from_torch, to_keras

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)


@pytest.mark.parametrize("ndim", [2, 3, 4, 5])
@pytest.mark.parametrize("affine", [True, False])
def test_ported_layer_passes_every_rank(ndim, affine):
    t = torch_bn(ndim, 6, eps=3e-4, momentum=0.05, affine=affine, seed=ndim)
    k = to_keras(from_torch(t), input_ndim=ndim)
    result = check_layer(t, k)
    assert result.ok, str(result)
    assert result.input_shape[:2] == (2, 6) and len(result.input_shape) == ndim
    assert [c.name for c in result.comparisons] == ["pytorch vs reference", "keras vs reference", "keras vs pytorch"]
    assert result.max_abs <= 1e-5 and result.findings == ()


def test_channels_first_keras_layer_is_fed_channels_first():
    t = torch_bn(4, 5, eps=1e-5, seed=3)
    k = to_keras(from_torch(t), data_format="channels_first")
    assert k.axis == 1
    assert check_layer(t, k).ok


def test_float64_layers_pass():
    t = torch_bn(4, 3, dtype="float64", seed=4)
    if JAX_32_BIT:  # Keras on JAX would hold the values as float32: refused (see helpers.JAX_32_BIT)
        with pytest.raises(IncompatibleLayerError, match="64-bit mode"):
            to_keras(from_torch(t))
        return
    assert check_layer(t, to_keras(from_torch(t))).ok


@settings(max_examples=6)
@given(c=st.integers(1, 40), eps=st.floats(1e-7, 1e-1), seed=st.integers(0, 1000))
def test_random_ported_layers_pass(c, eps, seed):
    t = torch_bn(4, c, eps=eps, seed=seed)
    assert check_layer(t, to_keras(from_torch(t)), seed=seed).ok


def test_default_epsilon_keras_layer_fails_and_is_explained():
    t = torch_bn(4, 8, eps=1e-5, seed=1)
    naive = keras_bn(4, 8, eps=1e-3, momentum=0.9, seed=1)  # same weights, Keras default epsilon
    result = check_layer(t, naive)
    assert not result.ok
    keras_vs_ref = result.comparisons[1]
    assert not keras_vs_ref.ok and result.comparisons[0].ok
    assert result.max_abs > 1e-4
    assert [f.code for f in result.findings] == ["epsilon"]
    # the worst element really is where the outputs differ most relative to tolerance
    assert len(result.worst_index) == 4 and "FAILED" in str(result)


def test_user_inputs_are_used_and_checked():
    t = torch_bn(4, 3, seed=2)
    k = to_keras(from_torch(t))
    x = np.full((1, 3, 2, 2), 7.0, np.float32)
    assert check_layer(t, k, x).input_shape == (1, 3, 2, 2)
    with pytest.raises(IncompatibleLayerError, match=r"channels-first \(N, C, ...\) with C=3.*\(1, 2, 2, 3\)"):
        check_layer(t, k, np.zeros((1, 2, 2, 3), np.float32))


def test_training_mode_module_is_exported_in_eval_and_left_in_training():
    t = torch_bn(4, 4, seed=5).train()
    k = to_keras(from_torch(t))
    assert check_layer(t, k).ok
    assert t.training


def test_untracked_stats_cannot_be_checked():
    t = torch_bn(4, 4, track=False)
    with pytest.raises(UnsupportedLayerError, match="track_running_stats=False"):
        check_layer(t, keras_bn(4, 4))


def test_rank_mismatch_is_refused():
    with pytest.raises(IncompatibleLayerError, match="built for rank 3"):
        check_layer(torch_bn(4, 4), keras_bn(3, 4))
