"""Layout permutations are exact inverses of each other (hypothesis over ranks and shapes)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bnport import layout


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
