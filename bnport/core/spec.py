"""The framework-neutral description of one BatchNorm layer (numpy only).

Conventions, stated once and used everywhere in bnport:

* The layer normalizes one channel axis; the spec holds per-channel vectors only, so it has no layout.
  Where the channel axis sits is a property of each framework's layer, not of the spec.
* ``momentum`` follows ONNX and Keras: ``moving = momentum * moving + (1 - momentum) * batch``.
  PyTorch's momentum is the complement (``torch = 1 - keras``); ``None`` is PyTorch's cumulative average.
* ``epsilon`` is the source's own value, carried exactly (never a framework default).
* ``running_var`` is what the source stored. PyTorch stores the unbiased (N - 1) batch variance, Keras the
  biased one; bnport copies the stored numbers as they are, which makes inference identical and only lets
  further training drift (by a factor N / (N - 1) on each update's batch term).
* Eval output: ``gamma * (x - running_mean) / sqrt(running_var + epsilon) + beta``, with ``gamma = 1`` when
  ``gamma`` is None (no scale) and ``beta = 0`` when ``beta`` is None (no center).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from bnport.errors import SpecError

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
_VECTORS = ("gamma", "beta", "running_mean", "running_var")
_NAMES: dict[np.dtype, str] = {}


def dtype_name(array: np.ndarray) -> str:
    """``array.dtype.name``, remembered per dtype: numpy composes the name anew on every read, and a port reads
    it of every array several times (docs/performance.md)."""
    dtype = array.dtype
    name = _NAMES.get(dtype)
    if name is None:
        name = _NAMES[dtype] = dtype.name  # a race writes the same value twice
    return name


def invert_momentum(momentum: float) -> float:
    """Return ``1 - momentum``, the other framework's meaning of the same update.

    The result is rounded to 15 decimal places so that decimal momenta survive a round trip
    (``1 - (1 - 0.1)`` is ``0.09999999999999998`` in binary floating point; bnport returns ``0.1``).
    The subtraction's own error is below 1.2e-16 and the rounding adds at most 5e-16: far below the
    float32 resolution of any statistics update.
    """
    return round(1.0 - float(momentum), 15)


@dataclass(frozen=True, eq=False, kw_only=True)
class BatchNormSpec:
    """One BatchNorm layer's state and settings, independent of framework and layout.

    Attributes:
        channels: number of normalized channels (C).
        epsilon: the variance epsilon, exactly as the source used it.
        momentum: ONNX/Keras convention (fraction of the old statistic kept); None for PyTorch's cumulative
            moving average (``momentum=None``), which has no Keras equivalent.
        dtype: numpy name of the parameter dtype, e.g. ``"float32"``.
        gamma: scale, shape (C,), or None when the layer has no scale.
        beta: offset, shape (C,), or None when the layer has no center.
        running_mean: shape (C,), or None when running statistics are not tracked.
        running_var: shape (C,), or None when running statistics are not tracked.
        num_batches_tracked: PyTorch's update counter, or None when the source has none (Keras).
        input_ndims: input ranks (including batch and channel axes) the source layer accepts, e.g. ``(4,)``
            for BatchNorm2d and ``(2, 3)`` for BatchNorm1d; None when the source does not fix it.
    """

    channels: int
    epsilon: float
    momentum: float | None
    dtype: str
    gamma: np.ndarray | None = None
    beta: np.ndarray | None = None
    running_mean: np.ndarray | None = None
    running_var: np.ndarray | None = None
    num_batches_tracked: int | None = None
    input_ndims: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        self._check_scalars()
        for name in _VECTORS:
            self._check_vector(name)
        if (self.running_mean is None) != (self.running_var is None):
            raise SpecError(
                "running_mean and running_var must both be given or both be None. "
                f"Received: running_mean={_describe(self.running_mean)}, "
                f"running_var={_describe(self.running_var)}"
            )

    def _check_scalars(self) -> None:
        if isinstance(self.channels, bool) or not isinstance(self.channels, (int, np.integer)):
            raise SpecError(f"channels must be an int. Received: channels={self.channels!r}")
        if self.channels <= 0:
            raise SpecError(f"channels must be positive. Received: channels={self.channels}")
        eps = float(self.epsilon)
        if not (math.isfinite(eps) and eps > 0.0):
            raise SpecError(f"epsilon must be finite and > 0. Received: epsilon={self.epsilon!r}")
        if self.momentum is not None and not (0.0 <= float(self.momentum) <= 1.0):
            raise SpecError(f"momentum must lie in [0, 1]. Received: momentum={self.momentum!r}")
        if self.dtype not in _FLOAT_DTYPES:
            raise SpecError(f"dtype must be one of {_FLOAT_DTYPES}. Received: dtype={self.dtype!r}")
        n = self.num_batches_tracked
        if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0):
            raise SpecError(f"num_batches_tracked must be an int >= 0 or None. Received: {n!r}")
        nd = self.input_ndims
        if nd is not None and (not nd or any(not isinstance(d, int) or not 2 <= d <= 5 for d in nd)):
            raise SpecError(f"input_ndims must be None or ranks from 2 to 5. Received: input_ndims={nd!r}")

    def _check_vector(self, name: str) -> None:
        value = getattr(self, name)
        if value is None:
            return
        if not isinstance(value, np.ndarray):
            raise SpecError(f"{name} must be a numpy array. Received: {name}={type(value).__name__}")
        if value.shape != (self.channels,):
            raise SpecError(
                f"{name} must have shape ({self.channels},) to match channels={self.channels}. "
                f"Received: {name}.shape={value.shape}"
            )
        if dtype_name(value) != self.dtype:
            raise SpecError(
                f"{name} must have the spec's dtype {self.dtype}. Received: {name}.dtype={value.dtype}"
            )

    @property
    def scale(self) -> bool:
        """Whether the layer multiplies by gamma (Keras ``scale``)."""
        return self.gamma is not None

    @property
    def center(self) -> bool:
        """Whether the layer adds beta (Keras ``center``)."""
        return self.beta is not None

    @property
    def track_running_stats(self) -> bool:
        """Whether the layer keeps running statistics (PyTorch ``track_running_stats``)."""
        return self.running_mean is not None

    @property
    def torch_momentum(self) -> float | None:
        """Momentum in PyTorch's convention (``1 - momentum``), None for a cumulative average."""
        return None if self.momentum is None else invert_momentum(self.momentum)

    @property
    def fresh_stats(self) -> bool:
        """True when the running statistics were never trained (mean all 0, variance all 1)."""
        if not self.track_running_stats:
            return False
        return bool(np.all(self.running_mean == 0) and np.all(self.running_var == 1))

    def replace(self, **changes: object) -> BatchNormSpec:
        """Return a copy with some fields changed (validated like a new spec)."""
        return dataclasses.replace(self, **changes)

    def arrays(self) -> dict[str, np.ndarray]:
        """The vectors this spec holds, by field name (absent ones left out)."""
        return {n: getattr(self, n) for n in _VECTORS if getattr(self, n) is not None}


def _describe(value: object) -> str:
    return "None" if value is None else f"array{getattr(value, 'shape', '?')}"
