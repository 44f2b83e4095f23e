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


# Kernels, as views where numpy can (the framework copies once when it takes the array). PyTorch keeps
# (out, in/groups, *k) for convolutions, (in, out/groups, *k) for transposed convolutions and (out, in) for
# Linear; Keras keeps (*k, in/groups, out), (*k, out, in), (*k, in, multiplier) for depthwise convolutions and
# (in, out) for Dense.


def conv_to_keras(w: np.ndarray) -> np.ndarray:
    """PyTorch conv weight (O, I/g, *k) -> Keras Conv kernel (*k, I/g, O)."""
    r = w.ndim - 2
    return np.transpose(w, (*range(2, 2 + r), 1, 0))


def conv_to_torch(k: np.ndarray) -> np.ndarray:
    """Keras Conv kernel (*k, I/g, O) -> PyTorch conv weight (O, I/g, *k): the inverse of conv_to_keras."""
    r = k.ndim - 2
    return np.transpose(k, (r + 1, r, *range(r)))


# A transposed convolution's weight is (I, O/groups, *k) in PyTorch and (*k, O, I) in Keras: the same axis
# movement as a convolution's (the first two axes swap their meaning in both frameworks alike).
conv_transpose_to_keras = conv_to_keras
conv_transpose_to_torch = conv_to_torch


def depthwise_to_keras(w: np.ndarray, channels: int) -> np.ndarray:
    """PyTorch depthwise weight (C*M, 1, *k), output channel c*M + m -> Keras depthwise kernel (*k, C, M)."""
    r = w.ndim - 2
    grouped = w.reshape(channels, w.shape[0] // channels, *w.shape[2:])
    return np.transpose(grouped, (*range(2, 2 + r), 0, 1))


def depthwise_to_torch(k: np.ndarray) -> np.ndarray:
    """Keras depthwise kernel (*k, C, M) -> PyTorch depthwise weight (C*M, 1, *k)."""
    r = k.ndim - 2
    c, m = k.shape[r], k.shape[r + 1]
    moved = np.transpose(k, (r, r + 1, *range(r)))
    return moved.reshape(c * m, 1, *k.shape[:r])


def dense_to_keras(w: np.ndarray, flatten_from: tuple[int, ...] | None = None) -> np.ndarray:
    """PyTorch Linear weight (O, I) -> Keras Dense kernel (I, O).

    ``flatten_from`` is the channels-last feature-map shape (*spatial, C) that a Flatten turned into the
    Dense input: PyTorch flattened it as (C, *spatial), Keras as (*spatial, C), so rows are permuted too.
    """
    if flatten_from is None:
        return w.T
    *spatial, c = flatten_from
    out = w.shape[0]
    chw = w.reshape(out, c, *spatial)
    hwc = np.transpose(chw, (*range(2, 2 + len(spatial)), 1, 0))
    return hwc.reshape(-1, out)


def dense_to_torch(k: np.ndarray, flatten_from: tuple[int, ...] | None = None) -> np.ndarray:
    """Keras Dense kernel (I, O) -> PyTorch Linear weight (O, I): the inverse of dense_to_keras."""
    if flatten_from is None:
        return k.T
    *spatial, c = flatten_from
    out = k.shape[1]
    hwc = k.reshape(*spatial, c, out)
    r = len(spatial)
    chw = np.transpose(hwc, (r + 1, r, *range(r)))
    return chw.reshape(out, -1)
