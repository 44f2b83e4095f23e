"""Layout permutations are exact inverses of each other (hypothesis over ranks and shapes)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bnport.core import layout


@given(hnp.arrays(np.float32, hnp.array_shapes(min_dims=2, max_dims=5, max_side=5)))
def test_channels_last_then_first_is_identity(x):
    back = layout.to_channels_first(layout.to_channels_last(x))
    assert back.shape == x.shape and back.tobytes() == x.tobytes()


@given(st.integers(2, 5))
def test_axes_are_inverse_permutations(ndim):
    fwd, inv = layout.to_channels_last_axes(ndim), layout.to_channels_first_axes(ndim)
    assert tuple(np.array(fwd)[list(inv)]) == tuple(range(ndim))


def test_channels_move_to_the_end():
    x = np.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    y = layout.to_channels_last(x)
    assert y.shape == (2, 4, 5, 3) and y[1, 2, 3, 0] == x[1, 0, 2, 3]


small_side = st.integers(1, 4)


@given(r=st.integers(1, 3), o=small_side, i=small_side, data=st.data())
def test_conv_kernel_permutations_are_inverse(r, o, i, data):
    k = data.draw(st.tuples(*[small_side] * r))
    w = np.arange(o * i * int(np.prod(k)), dtype=np.float32).reshape(o, i, *k)
    keras_k = layout.conv_to_keras(w)
    assert keras_k.shape == (*k, i, o)
    assert np.array_equal(layout.conv_to_torch(keras_k), w)
    idx = tuple(data.draw(st.integers(0, s - 1)) for s in k)
    assert keras_k[(*idx, i - 1, o - 1)] == w[(o - 1, i - 1, *idx)]  # no axis swapped, H and W included
    t = layout.conv_transpose_to_keras(w)
    assert np.array_equal(layout.conv_transpose_to_torch(t), w)


@given(r=st.integers(1, 2), c=small_side, m=small_side, data=st.data())
def test_depthwise_permutations_are_inverse(r, c, m, data):
    k = data.draw(st.tuples(*[small_side] * r))
    w = np.arange(c * m * int(np.prod(k)), dtype=np.float32).reshape(c * m, 1, *k)
    keras_k = layout.depthwise_to_keras(w, c)
    assert keras_k.shape == (*k, c, m)
    assert np.array_equal(layout.depthwise_to_torch(keras_k), w)
    ci, mi = c - 1, m - 1
    assert keras_k[(*([0] * r), ci, mi)] == w[(ci * m + mi, 0, *([0] * r))]


@given(o=small_side, shape=st.lists(small_side, min_size=1, max_size=3))
def test_dense_after_flatten_permutation_is_inverse_and_correct(o, shape):
    n = int(np.prod(shape))
    w = np.arange(o * n, dtype=np.float32).reshape(o, n)
    k = layout.dense_to_keras(w, tuple(shape))
    assert np.array_equal(layout.dense_to_torch(k, tuple(shape)), w)
    # the same feature map flattened each framework's way meets the same weights
    fmap_cl = np.random.default_rng(0).standard_normal(shape)  # (*spatial, C)
    fmap_cf = np.moveaxis(fmap_cl, -1, 0)  # (C, *spatial)
    assert np.allclose(fmap_cl.reshape(-1) @ k, w @ fmap_cf.reshape(-1))
    assert np.array_equal(layout.dense_to_keras(w), w.T)
