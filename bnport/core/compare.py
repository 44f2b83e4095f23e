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


def compare(name: str, actual: np.ndarray, expected: np.ndarray, tolerance: np.ndarray | float) -> Comparison:
    """Compare two arrays element by element; ``tolerance`` broadcasts against them."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        nan = float("nan")
        return Comparison(name, False, nan, nan, (), nan, nan, nan,
                          f"shape {actual.shape} vs expected {expected.shape}")
    if np.ndim(tolerance) == 0 and actual.size and _finite(actual) and _finite(expected):
        return _compare_finite(name, actual, expected, float(tolerance))
    return _compare_any(name, actual, expected, tolerance)


def _finite(x: np.ndarray) -> bool:
    """Whether every element is finite: one summing pass for float32 and narrower (their float64 sum cannot
    overflow, and a NaN or an infinity makes it non-finite), ``isfinite`` otherwise."""
    if x.dtype.kind == "f" and x.dtype.itemsize <= 4:
        return bool(np.isfinite(np.sum(x, dtype=np.float64)))
    return bool(np.isfinite(x).all()) if x.dtype.kind in "fc" else True


def _compare_finite(name: str, actual: np.ndarray, expected: np.ndarray, tol: float) -> Comparison:
    """:func:`compare` for finite arrays and one tolerance: the worst element is the largest difference."""
    diff = np.subtract(actual, expected, dtype=np.float64)  # exact for float32 inputs
    np.abs(diff, out=diff)
    worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
    max_abs = float(diff[worst])
    return Comparison(
        name=name,
        ok=max_abs <= tol,
        max_abs=max_abs,
        max_rel=_max_rel(diff, np.abs(expected).astype(np.float64)),
        worst_index=tuple(int(i) for i in worst),
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
