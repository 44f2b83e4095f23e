"""Axis permutations between PyTorch's channels-first and Keras's channels-last layouts (numpy only).

Each permutation is data with a named inverse; tests check every pair composes to the identity.
"""

from __future__ import annotations

import numpy as np


def to_channels_last_axes(ndim: int) -> tuple[int, ...]:
    """Axes that take an (N, C, *spatial) array to (N, *spatial, C)."""
    return (0, *range(2, ndim), 1) if ndim > 2 else tuple(range(ndim))


def to_channels_first_axes(ndim: int) -> tuple[int, ...]:
    """Axes that take an (N, *spatial, C) array to (N, C, *spatial): the inverse of the above."""
    return (0, ndim - 1, *range(1, ndim - 1)) if ndim > 2 else tuple(range(ndim))


def to_channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, *spatial) -> (N, *spatial, C), contiguous."""
    return np.ascontiguousarray(np.transpose(x, to_channels_last_axes(x.ndim)))


def to_channels_first(x: np.ndarray) -> np.ndarray:
    """(N, *spatial, C) -> (N, C, *spatial), contiguous."""
    return np.ascontiguousarray(np.transpose(x, to_channels_first_axes(x.ndim)))
