"""Element-wise comparison of two arrays against a per-element tolerance (numpy only)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Comparison:
    """How far ``actual`` is from ``expected``.

    Attributes:
        name: what was compared, e.g. ``"keras vs reference"``.
        ok: every element within its tolerance, shapes equal, non-finite values in the same places.
        max_abs: largest ``|actual - expected|``.
        max_rel: largest ``|actual - expected| / |expected|`` over the elements whose ``expected`` is not zero
            (relative error is undefined at an exact zero, which activations such as ReLU produce everywhere);
            NaN when every expected element is zero.
        worst_index: index of the element that used the largest share of its tolerance (channels-first).
        worst_actual: that element's value in ``actual``.
        worst_expected: that element's value in ``expected``.
        worst_tolerance: that element's tolerance.
        detail: why the comparison failed before any element was compared (e.g. shapes), else "".
    """

    name: str
    ok: bool
    max_abs: float
    max_rel: float
    worst_index: tuple[int, ...]
    worst_actual: float
    worst_expected: float
    worst_tolerance: float
    detail: str = ""

    def __str__(self) -> str:
        if self.detail:
            return f"{self.name}: FAILED ({self.detail})"
        verdict = "ok" if self.ok else "FAILED"
        return (
            f"{self.name}: {verdict}  max abs {self.max_abs:.3g}  max rel {self.max_rel:.3g}  "
            f"worst at {list(self.worst_index)}: {self.worst_actual:.9g} vs {self.worst_expected:.9g} "
            f"(tolerance {self.worst_tolerance:.3g})"
        )


#: elements per block of the finite path: its two float64 buffers (256 KiB each) stay in cache, reused
BLOCK = 1 << 15


def compare(name: str, actual: np.ndarray, expected: np.ndarray, tolerance: np.ndarray | float) -> Comparison:
    """Compare two arrays element by element; ``tolerance`` broadcasts against them. Either array may be a view in
    any layout (a transposed Keras output): nothing is copied on the way."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        nan = float("nan")
        return Comparison(name, False, nan, nan, (), nan, nan, nan,
                          f"shape {actual.shape} vs expected {expected.shape}")
    if np.ndim(tolerance) == 0 and actual.ndim and actual.size:
        finite = _compare_finite(name, actual, expected, float(tolerance))
        if finite is not None:
            return finite
    return _compare_any(name, actual, expected, tolerance)


def _blocks(shape: tuple[int, ...], block: int):
    """Index tuples that cover ``shape`` (at least one axis) in C order, each at most ``block`` elements: the
    leading axes one index at a time, then the last axis at which the rest no longer fits, sliced in steps."""
    inner = 1
    axis = len(shape) - 1
    while axis > 0 and inner * shape[axis] <= block:
        inner *= shape[axis]
        axis -= 1
    step = max(1, block // inner)
    for lead in np.ndindex(*shape[:axis]):
        for start in range(0, shape[axis], step):
            yield (*lead, slice(start, min(start + step, shape[axis])))


def _compare_finite(name: str, actual: np.ndarray, expected: np.ndarray, tol: float,
                    block: int | None = None) -> Comparison | None:
    """:func:`compare` for one tolerance, block by block in float64 (exact differences of float32 values) into two
    reused buffers: the worst element is the largest difference. The blocks follow ``actual``'s memory order, so a
    transposed view (a Keras output read channels-first) is read as it lies, and each block of the other array is
    small enough to be read from cache. ``None`` when an element is not finite (a NaN or an infinity on either
    side): :func:`_compare_any` then decides."""
    block = block or BLOCK
    order = sorted(range(actual.ndim), key=lambda axis: -abs(actual.strides[axis]))  # stable: C order on ties
    actual, expected = actual.transpose(order), expected.transpose(order)
    diff_buffer, magnitude_buffer = np.empty(block), np.empty(block)
    max_abs, max_rel, worst, any_nonzero = -1.0, 0.0, (), False
    for index in _blocks(actual.shape, block):
        a, e = actual[index], expected[index]
        diff, magnitude = diff_buffer[:a.size].reshape(a.shape), magnitude_buffer[:a.size].reshape(a.shape)
        np.subtract(a, e, out=diff, dtype=np.float64)
        np.abs(diff, out=diff)
        at = int(np.argmax(diff))
        here = float(diff.flat[at])
        if not np.isfinite(here):  # argmax stops at a NaN; an infinite difference is the largest
            return None
        if here > max_abs:
            *lead, part = index
            within = np.unravel_index(at, a.shape)
            max_abs, worst = here, (*lead, part.start + int(within[0]), *(int(i) for i in within[1:]))
        np.abs(e, out=magnitude, dtype=np.float64)
        nonzero = magnitude != 0
        if nonzero.any():
            any_nonzero = True
            np.divide(diff, magnitude, out=diff, where=nonzero)
            max_rel = max(max_rel, float(diff.max(where=nonzero, initial=0.0)))
    at = [0] * actual.ndim
    for axis, i in zip(order, worst, strict=True):
        at[axis] = int(i)
    return Comparison(
        name=name,
        ok=max_abs <= tol,
        max_abs=max_abs,
        max_rel=max_rel if any_nonzero else float("nan"),
        worst_index=tuple(at),
        worst_actual=float(actual[worst]),
        worst_expected=float(expected[worst]),
        worst_tolerance=tol,
    )


def _max_rel(diff: np.ndarray, magnitude: np.ndarray) -> float:
    """Largest ``diff / magnitude`` over the elements of non-zero magnitude (NaN if there are none); overwrites
    ``diff``. An infinite ``diff`` (a NaN or an infinity on one side only) stays infinite."""
    nonzero = magnitude != 0
    if not nonzero.any():
        return float("nan")
    np.divide(diff, magnitude, out=diff, where=nonzero)
    return float(diff.max(where=nonzero, initial=0.0))


def _compare_any(name: str, actual: np.ndarray, expected: np.ndarray, tolerance: np.ndarray | float) -> Comparison:
    """:func:`compare` for any arrays: non-finite values, a tolerance per element."""
    a = actual.astype(np.float64)
    e = expected.astype(np.float64)
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), e.shape)
    same_nonfinite = (np.isnan(a) & np.isnan(e)) | (np.isinf(a) & (a == e))
    diff = np.where(same_nonfinite, 0.0, np.abs(a - e))
    diff = np.where(np.isnan(diff), np.inf, diff)
    if diff.size == 0:
        return Comparison(name, True, 0.0, 0.0, (), 0.0, 0.0, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(diff == 0, 0.0, diff / tol)
    worst = np.unravel_index(int(np.argmax(share)), share.shape)
    return Comparison(
        name=name,
        ok=bool(np.all(diff <= tol)),
        max_abs=float(diff.max()),
        max_rel=_max_rel(diff.copy(), np.abs(np.nan_to_num(e))),
        worst_index=tuple(int(i) for i in worst),
        worst_actual=float(a[worst]),
        worst_expected=float(e[worst]),
        worst_tolerance=float(tol[worst]),
    )
