"""BatchNorm state mapping with real torch modules and real Keras 3 layers, both directions, every flag."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import JAX_32_BIT, assert_bits_equal, keras_bn, keras_tensors, numpy, torch_bn, torch_tensors
from hypothesis import assume, given
from hypothesis import strategies as st

import bnport
from bnport import (
    BnportWarning,
    IncompatibleLayerError,
    UnsupportedLayerError,
    from_keras,
    from_torch,
    to_keras,
    to_torch,
)
from bnport.core.layout import to_channels_first, to_channels_last
from bnport.core.reference import batchnorm, float32_error_bound
from bnport.core.samples import batchnorm_inputs

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)

ndims = st.sampled_from([2, 3, 4, 5])
channels = st.integers(1, 48)
epsilons = st.floats(1e-8, 0.1)
torch_momenta = st.one_of(st.none(), st.floats(0.0, 1.0))
dtypes = st.sampled_from(["float32", "float64"])


@given(ndim=ndims, c=channels, eps=epsilons, m=torch_momenta, affine=st.booleans(), seed=st.integers(0, 99),
       dtype=dtypes, nbt=st.integers(0, 10**6))
def test_torch_keras_torch_is_bit_exact(ndim, c, eps, m, affine, seed, dtype, nbt):
    src = torch_bn(ndim, c, eps=eps, momentum=m, affine=affine, seed=seed, dtype=dtype, nbt=nbt)
    spec = from_torch(src)
    assert spec.epsilon == eps and spec.num_batches_tracked == nbt
    if dtype == "float64" and JAX_32_BIT:  # Keras would keep float32 values: refused, not rounded
        with pytest.raises(IncompatibleLayerError, match="64-bit mode"), warnings.catch_warnings():
            warnings.simplefilter("ignore", BnportWarning)
            to_keras(spec, input_ndim=ndim)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BnportWarning)
        k = to_keras(spec, input_ndim=ndim)
    assert k.epsilon == eps and k.input_spec.ndim == ndim and k.center == affine and k.scale == affine
    back = to_torch(from_keras(k), type(src)(c, affine=affine, dtype=src.running_mean.dtype))
    # every tensor but the counter, which Keras does not keep (reset to 0, stated in to_torch)
    a, b = torch_tensors(src), torch_tensors(back)
    assert b.pop("num_batches_tracked") == 0
    a.pop("num_batches_tracked")
    assert_bits_equal(a, b)
    assert back.eps == eps and not back.training
    if m is not None:
        assert k.momentum == pytest.approx(1 - m, abs=6.2e-16) and back.momentum == pytest.approx(m, abs=1.3e-15)


keras_momenta = st.decimals(0, 1, places=12).map(float)  # settings, carried to 15 decimal places


@given(ndim=ndims, c=channels, eps=epsilons, km=keras_momenta, center=st.booleans(), scale=st.booleans(),
       first=st.booleans(), seed=st.integers(0, 99), dtype=dtypes)
def test_keras_torch_keras_is_bit_exact(ndim, c, eps, km, center, scale, first, seed, dtype):
    assume(not (dtype == "float64" and JAX_32_BIT))  # no float64 Keras layer exists there (see helpers.JAX_32_BIT)
    src = keras_bn(ndim, c, eps=eps, momentum=km, center=center, scale=scale, channels_first=first,
                   seed=seed, dtype=dtype)
    t = to_torch(from_keras(src))
    assert t.affine == (center or scale) and t.eps == eps and int(t.num_batches_tracked) == 0
    assert t.momentum == round(1 - km, 15)
    fmt = "channels_first" if first else "channels_last"
    fresh = to_keras(from_torch(t), data_format=fmt, input_ndim=ndim)
    filled = to_keras(from_torch(t), keras_bn(ndim, c, center=center, scale=scale, channels_first=first,
                                              seed=seed + 1, dtype=dtype))
    assert fresh.momentum == km and filled.momentum == km and fresh.epsilon == eps
    assert_bits_equal(keras_tensors(src), keras_tensors(filled))
    # a new layer is affine whenever torch is: missing gamma/beta come back as ones/zeros, nothing else moves
    got = keras_tensors(fresh)
    for name, value in keras_tensors(src).items():
        assert got[name].tobytes() == value.tobytes()
    if not scale and center:
        assert np.all(got["gamma"] == 1)
    if scale and not center:
        assert np.all(got["beta"] == 0)


@given(ndim=ndims, c=st.integers(1, 16), eps=epsilons, affine=st.booleans(), seed=st.integers(0, 99))
def test_ported_keras_layer_computes_the_torch_output(ndim, c, eps, affine, seed, torch):
    src = torch_bn(ndim, c, eps=eps, affine=affine, seed=seed)
    k = to_keras(from_torch(src), input_ndim=ndim)
    spec = from_torch(src)
    x = batchnorm_inputs(spec, ndim, seed=seed)
    y_torch = src(torch.from_numpy(x)).detach().numpy()
    y_keras = to_channels_first(numpy(k(to_channels_last(x), training=False)))
    bound = float32_error_bound(x, spec)
    oracle = batchnorm(x, spec)
    assert np.all(np.abs(y_torch - oracle) <= bound)
    assert np.all(np.abs(y_keras - oracle) <= bound)
    assert np.all(np.abs(y_keras - y_torch) <= bound)


def test_sync_batchnorm_reads_and_needs_a_rank_to_rebuild(torch):
    sync = torch.nn.SyncBatchNorm(6, eps=3e-4, momentum=0.2)
    spec = from_torch(sync)
    assert spec.input_ndims is None and spec.epsilon == 3e-4 and spec.momentum == 0.8
    with pytest.raises(IncompatibleLayerError, match="pass input_ndim"):
        to_torch(spec)
    assert isinstance(to_torch(spec, input_ndim=4), torch.nn.BatchNorm2d)
    assert to_keras(spec, input_ndim=4).input_spec.ndim == 4
    filled = to_torch(from_torch(torch_bn(4, 6, eps=2e-5)), torch.nn.SyncBatchNorm(6))
    assert filled.eps == 2e-5


def test_batchnorm1d_needs_a_rank_for_keras(torch):
    spec = from_torch(torch_bn(3, 5))
    assert spec.input_ndims == (2, 3)
    with pytest.raises(IncompatibleLayerError, match=r"\(N, C\) and \(N, C, L\).*input_ndim=2"):
        to_keras(spec)
    assert to_keras(spec, input_ndim=2).input_spec.ndim == 2
    assert to_keras(spec, input_ndim=3).input_spec.ndim == 3
    with pytest.raises(IncompatibleLayerError, match="rank"):
        to_keras(spec, input_ndim=4)
    unbuilt = bnport.to_keras(spec, __import__("keras").layers.BatchNormalization(), input_ndim=3)
    assert unbuilt.input_spec.ndim == 3 and unbuilt.epsilon == 1e-5


def test_momentum_none_warns_and_continues_the_average():
    spec = from_torch(torch_bn(4, 3, momentum=None, nbt=9))
    with pytest.warns(BnportWarning, match=r"momentum=None.*n/\(n\+1\).*num_batches_tracked=9"):
        k = to_keras(spec)
    assert k.momentum == 0.9


def test_untracked_stats_cannot_go_to_keras_but_round_trip_in_torch(torch):
    src = torch_bn(4, 3, track=False)
    spec = from_torch(src)
    assert not spec.track_running_stats and spec.num_batches_tracked is None
    with pytest.raises(UnsupportedLayerError, match=r"track_running_stats=False.*batch.*even in eval"):
        to_keras(spec)
    back = to_torch(spec)
    assert not back.track_running_stats and back.running_mean is None
    assert_bits_equal(torch_tensors(src), torch_tensors(back))


def test_torch_to_torch_keeps_num_batches_tracked(torch):
    src = torch_bn(5, 4, nbt=1234)
    back = to_torch(from_torch(src))
    assert isinstance(back, torch.nn.BatchNorm3d) and int(back.num_batches_tracked) == 1234
    assert_bits_equal(torch_tensors(src), torch_tensors(back))


def test_from_torch_copies_and_ignores_training_flag(torch):
    m = torch.nn.BatchNorm2d(3).train()
    spec = from_torch(m)
    m(torch.randn(4, 3, 2, 2) + 5)
    assert spec.fresh_stats and m.training


@pytest.mark.parametrize("axis", [2, -2])
def test_keras_axis_that_is_not_a_channel_axis_is_refused(keras, axis):
    layer = keras.layers.BatchNormalization(axis=axis)
    layer.build((None, 4, 5, 6))
    with pytest.raises(UnsupportedLayerError, match=rf"normalizes axis {axis} of a rank-4 input.*axis -1"):
        from_keras(layer)


def test_keras_positive_last_axis_is_channels_last(keras):
    layer = keras.layers.BatchNormalization(axis=3)
    layer.build((None, 4, 5, 6))
    assert from_keras(layer).channels == 6


def test_unbuilt_keras_layer_is_a_clear_error(keras):
    with pytest.raises(IncompatibleLayerError, match="not built"):
        from_keras(keras.layers.BatchNormalization())


def test_keras_renorm_is_refused(keras):
    import inspect

    if "renorm" not in inspect.signature(keras.layers.BatchNormalization).parameters:
        pytest.skip(f"Keras {keras.__version__} has no BatchNormalization renorm")
    layer = keras.layers.BatchNormalization(renorm=True)
    layer.build((None, 3))
    with pytest.raises(UnsupportedLayerError, match="renorm"):
        from_keras(layer)


def test_wrong_layer_types_are_refused(torch, keras):
    with pytest.raises(UnsupportedLayerError, match=r"Received: torch\.nn\.modules\.linear\.Linear"):
        from_torch(torch.nn.Linear(2, 2))
    with pytest.raises(UnsupportedLayerError, match=r"keras\.layers\.BatchNormalization"):
        from_keras(keras.layers.Dense(2))
    with pytest.raises(UnsupportedLayerError, match="lazy module"):
        from_torch(torch.nn.LazyBatchNorm2d())


def test_filling_checks_size_rank_flags_and_dtype(torch, keras):
    spec = from_torch(torch_bn(4, 8))
    with pytest.raises(IncompatibleLayerError, match="num_features=7 but the source has 8"):
        to_torch(spec, torch.nn.BatchNorm2d(7))
    with pytest.raises(IncompatibleLayerError, match=r"rank \(5,\) but the source layer takes rank \(4,\)"):
        to_torch(spec, torch.nn.BatchNorm3d(8))
    with pytest.raises(IncompatibleLayerError, match="affine=False but the source's gamma"):
        to_torch(spec, torch.nn.BatchNorm2d(8, affine=False))
    with pytest.raises(IncompatibleLayerError, match="track_running_stats=False"):
        to_torch(spec, torch.nn.BatchNorm2d(8, track_running_stats=False))
    with pytest.raises(IncompatibleLayerError, match="holds float64 but the source is float32"):
        to_torch(spec, torch.nn.BatchNorm2d(8, dtype=torch.float64))
    with pytest.raises(IncompatibleLayerError, match="normalizes 9 channels but the source has 8"):
        to_keras(spec, keras_bn(4, 9))
    with pytest.raises(IncompatibleLayerError, match="built for rank-3 inputs"):
        to_keras(spec, keras_bn(3, 8))
    with pytest.raises(IncompatibleLayerError, match="center=False but the source's beta"):
        to_keras(spec, keras_bn(4, 8, center=False))
    with pytest.raises(IncompatibleLayerError, match="holds float64 but the source is float32"):
        to_keras(spec, keras_bn(4, 8, dtype="float64"))
    with pytest.raises(IncompatibleLayerError, match="data_format must be"):
        to_keras(spec, data_format="NHWC")


def test_identity_gamma_beta_fit_a_non_affine_target(torch):
    spec = from_keras(keras_bn(4, 3, center=False, scale=False))
    plain = to_torch(spec, torch.nn.BatchNorm2d(3, affine=False))
    assert plain.weight is None and plain.eps == 1e-3
    ones = spec.replace(gamma=np.ones(3, np.float32))
    assert to_torch(ones, torch.nn.BatchNorm2d(3, affine=False)).weight is None
