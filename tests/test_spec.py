"""The neutral BatchNorm spec: validation, momentum convention, flags (no framework involved)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bnport import BatchNormSpec, SpecError
from bnport.core.spec import dtype_name, invert_momentum


def spec(**kw):
    c = kw.pop("channels", 3)
    base = dict(channels=c, epsilon=1e-5, momentum=0.9, dtype="float32",
                running_mean=np.zeros(c, np.float32), running_var=np.ones(c, np.float32))
    base.update(kw)
    return BatchNormSpec(**base)


def test_valid_spec_flags():
    s = spec(gamma=np.ones(3, np.float32))
    assert s.scale and not s.center and s.track_running_stats and s.fresh_stats
    assert s.torch_momentum == 0.1


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"channels": 0}, "channels must be positive"),
        ({"epsilon": 0.0}, "epsilon must be finite and > 0"),
        ({"epsilon": float("nan")}, "epsilon must be finite"),
        ({"momentum": 1.5}, "momentum must lie in [0, 1]"),
        ({"dtype": "int32"}, "dtype must be one of"),
        ({"gamma": np.ones(4, np.float32)}, "gamma must have shape (3,)"),
        ({"beta": np.ones(3, np.float64)}, "beta must have the spec's dtype float32"),
        ({"running_var": None}, "running_mean and running_var must both be given"),
        ({"num_batches_tracked": -1}, "num_batches_tracked must be an int >= 0"),
        ({"input_ndims": (1,)}, "input_ndims must be None or ranks from 2 to 5"),
        ({"gamma": [1.0, 1.0, 1.0]}, "gamma must be a numpy array"),
    ],
)
def test_invalid_spec_is_a_clear_error(changes, fragment):
    with pytest.raises(SpecError) as info:
        spec(**changes)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_no_stats_no_affine_is_valid():
    s = BatchNormSpec(channels=5, epsilon=1e-5, momentum=None, dtype="float32")
    assert not s.track_running_stats and not s.fresh_stats and s.torch_momentum is None
    assert s.arrays() == {}


@given(st.decimals(min_value=0, max_value=1, places=12))
def test_decimal_momenta_survive_a_round_trip(m):
    m = float(m)
    assert invert_momentum(invert_momentum(m)) == m


@given(st.floats(min_value=0.0, max_value=1.0))
def test_inverted_momentum_is_one_minus_within_rounding(m):
    assert abs(invert_momentum(m) - (1.0 - m)) <= 6.2e-16


def test_default_momenta_map_to_each_other():
    assert invert_momentum(0.1) == 0.9 and invert_momentum(0.9) == 0.1
    assert invert_momentum(0.99) == 0.01 and invert_momentum(0.01) == 0.99


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", ">f4", "int64", "bool", "bfloat16"])
def test_dtype_names_are_numpys_names_for_every_byte_order_and_call(dtype):
    if dtype == "bfloat16":
        import ml_dtypes

        dtype = ml_dtypes.bfloat16
    array = np.zeros(3, dtype)
    for _ in range(2):  # the second read is the remembered one
        assert dtype_name(array) == array.dtype.name
    assert dtype_name(np.zeros(3, "<f4")) == dtype_name(np.zeros(3, ">f4")) == "float32"
