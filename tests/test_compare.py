"""The element-wise comparison: its fast path for finite arrays and one tolerance agrees with the general one."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bnport.core import compare as compare_module
from bnport.core.compare import _compare_any, compare


@st.composite
def pairs(draw, nonfinite: bool = False):
    """(actual, expected, tolerance): float arrays of one dtype, maybe transposed views, close or not."""
    dtype = draw(st.sampled_from(["float16", "float32", "float64"]))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1e-6, 1.0, 1e3]))
    expected = (rng.standard_normal(shape) * scale).astype(dtype)
    noise = draw(st.sampled_from([0.0, 1e-7, 1e-3, 1.0]))
    actual = (expected + rng.standard_normal(shape) * noise * scale).astype(dtype)
    if nonfinite:
        flat = actual.reshape(-1)
        flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if draw(st.booleans()) and len(shape) > 1:
        axes = draw(st.permutations(range(len(shape))))
        actual, expected = np.transpose(actual, axes), np.transpose(expected, axes)
    tol = draw(st.sampled_from([float(np.finfo(np.float32).tiny), 1e-6, 1e-3, 1.0])) * scale
    return actual, expected, tol


@settings(max_examples=300, deadline=None)
@given(pairs())
def test_fast_path_agrees_with_the_general_comparison(case):
    actual, expected, tol = case
    fast, general = compare("x", actual, expected, tol), _compare_any("x", actual, expected, tol)
    assert (fast.ok, fast.max_abs, fast.worst_tolerance) == (general.ok, general.max_abs, general.worst_tolerance)
    assert np.array_equal(fast.max_rel, general.max_rel, equal_nan=True)
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    # the worst element is one of largest share of its tolerance (ties may pick another such element)
    assert diff[fast.worst_index] / tol == diff[general.worst_index] / tol == fast.max_abs / tol
    assert (fast.worst_actual, fast.worst_expected) == (float(actual[fast.worst_index]),
                                                        float(expected[fast.worst_index]))


@settings(max_examples=300, deadline=None)
@given(pairs(), st.integers(1, 40))
def test_the_blocks_of_the_fast_path_find_what_one_pass_finds(case, block):
    """Blocks as small as one element, in the memory order of ``actual``: the same verdict and maxima as a single
    pass over the whole array, and a worst element of the largest difference."""
    actual, expected, tol = case
    fast, general = compare_module._compare_finite("x", actual, expected, tol, block), _compare_any(
        "x", actual, expected, tol)
    assert (fast.ok, fast.max_abs, fast.worst_tolerance) == (general.ok, general.max_abs, general.worst_tolerance)
    assert np.array_equal(fast.max_rel, general.max_rel, equal_nan=True)
    diff = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    assert diff[fast.worst_index] == diff.max()
    assert (fast.worst_actual, fast.worst_expected) == (float(actual[fast.worst_index]),
                                                        float(expected[fast.worst_index]))


def test_blocks_cover_every_element_once_in_c_order():
    for shape, block in [((2, 64, 7, 7), 100), ((3,), 1), ((5, 300), 128), ((4, 4), 16), ((1, 1, 1), 5)]:
        seen = np.zeros(shape, int)
        order = np.arange(np.prod(shape)).reshape(shape)
        last = -1
        for index in compare_module._blocks(shape, block):
            assert seen[index].size <= block
            seen[index] += 1
            assert order[index].min() == last + 1  # each block starts where the last ended
            last = order[index].max()
        assert (seen == 1).all(), shape


@settings(max_examples=100, deadline=None)
@given(pairs(nonfinite=True))
def test_non_finite_values_take_the_general_path(case):
    actual, expected, tol = case
    assert repr(compare("x", actual, expected, tol)) == repr(_compare_any("x", actual, expected, tol))  # nan == nan
    assert not compare("x", actual, expected, tol).ok  # a NaN or infinity only in actual never passes


@settings(max_examples=200, deadline=None)
@given(pairs(), st.floats(0.0, 1.0))
def test_max_rel_is_taken_over_the_non_zero_references(case, zero_share):
    """Relative error is undefined where the reference is an exact zero (ReLU outputs): those elements are left
    out of max rel (they are still compared absolutely); NaN when every reference element is zero."""
    actual, expected, tol = case
    expected = np.where(np.random.default_rng(0).random(expected.shape) < zero_share, 0, expected).astype(
        expected.dtype)
    a, e = actual.astype(np.float64), expected.astype(np.float64)
    nonzero = e != 0
    want = float(np.max(np.abs(a - e)[nonzero] / np.abs(e[nonzero]))) if nonzero.any() else float("nan")
    for result in (compare("x", actual, expected, tol), _compare_any("x", actual, expected, tol)):
        assert np.array_equal(result.max_rel, want, equal_nan=True)
        assert result.max_abs == float(np.max(np.abs(a - e)))


def test_max_rel_of_a_relu_output_is_not_the_float32_range():
    # the report of a diverging ReLU'd BatchNorm read 4.22e+38: a difference over the float32 tiny floor
    actual, expected = np.array([0.5, 1e-7, 2.0], np.float32), np.array([0.5, 0.0, 1.0], np.float32)
    assert compare("x", actual, expected, 1e-6).max_rel == 1.0
    assert np.isnan(compare("x", np.ones(3, np.float32), np.zeros(3, np.float32), 1e-6).max_rel)
