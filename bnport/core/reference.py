"""BatchNorm maths in plain numpy: an oracle independent of both frameworks.

Computed in float64 so that the oracle's own rounding is negligible next to float32 results.
"""

from __future__ import annotations

import numpy as np

from bnport.core.spec import BatchNormSpec


def _per_channel(vector: np.ndarray | None, default: float, ndim: int, axis: int) -> np.ndarray:
    shape = [1] * ndim
    shape[axis] = -1
    if vector is None:
        return np.asarray(default, dtype=np.float64)
    return np.asarray(vector, dtype=np.float64).reshape(shape)


def batchnorm(
    x: np.ndarray,
    spec: BatchNormSpec,
    *,
    channel_axis: int = 1,
    training: bool = False,
) -> np.ndarray:
    """Apply the layer described by ``spec`` to ``x`` in float64.

    Inference uses the running statistics; ``training=True`` (or a spec without running statistics)
    uses the biased statistics of the batch, as both frameworks do in their forward pass.
    """
    x64 = np.asarray(x, dtype=np.float64)
    axis = channel_axis % x64.ndim
    if training or not spec.track_running_stats:
        reduce = tuple(i for i in range(x64.ndim) if i != axis)
        mean = x64.mean(axis=reduce, keepdims=True)
        var = x64.var(axis=reduce, keepdims=True)
    else:
        mean = _per_channel(spec.running_mean, 0.0, x64.ndim, axis)
        var = _per_channel(spec.running_var, 1.0, x64.ndim, axis)
    gamma = _per_channel(spec.gamma, 1.0, x64.ndim, axis)
    beta = _per_channel(spec.beta, 0.0, x64.ndim, axis)
    return gamma * (x64 - mean) / np.sqrt(var + float(spec.epsilon)) + beta


def float32_error_bound(x: np.ndarray, spec: BatchNormSpec, *, channel_axis: int = 1) -> np.ndarray:
    """Per-element bound on how far two correct float32 BatchNorm implementations may differ.

    Derivation. An implementation computes ``y = s * x + t`` in some order, with
    ``s = gamma / sqrt(var + eps)`` and ``t = beta - mean * s`` (folded, as exporters and fused kernels
    do) or ``gamma * (x - mean) / sqrt(var + eps) + beta`` (unfolded). Each path has at most 6 roundings
    (add, sqrt, divide, multiply, subtract, add), each with relative error at most u = 2**-24 of the
    magnitude it touches; the largest intermediate magnitude is at most
    ``m = |s| * (|x| + |mean|) + |beta|``. One implementation is within ``6 u m`` of the exact value
    (first order), so two are within ``12 u m``; bnport allows ``16 u m`` (= 2**-20 m, about 9.5e-7 m) to
    cover a second-order term and a reciprocal square root computed with one extra rounding. A tiny absolute
    floor (the smallest normal float32) keeps an exact zero from demanding exact equality.
    """
    x64 = np.abs(np.asarray(x, dtype=np.float64))
    axis = channel_axis % x64.ndim
    if spec.track_running_stats:
        mean = np.abs(_per_channel(spec.running_mean, 0.0, x64.ndim, axis))
        var = _per_channel(spec.running_var, 1.0, x64.ndim, axis)
    else:
        reduce = tuple(i for i in range(x64.ndim) if i != axis)
        mean = np.abs(np.asarray(x, dtype=np.float64).mean(axis=reduce, keepdims=True))
        var = np.asarray(x, dtype=np.float64).var(axis=reduce, keepdims=True)
    s = np.abs(_per_channel(spec.gamma, 1.0, x64.ndim, axis)) / np.sqrt(np.abs(var) + float(spec.epsilon))
    magnitude = s * (x64 + mean) + np.abs(_per_channel(spec.beta, 0.0, x64.ndim, axis))
    return 2.0**-20 * magnitude + float(np.finfo(np.float32).tiny)
