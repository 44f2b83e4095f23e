"""Sanity of stored BatchNorm statistics and weights (numpy only)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bnport.core.layers import AnySpec, tensors_of
from bnport.core.spec import BatchNormSpec


def problems(spec: AnySpec, known_finite: Callable[[np.ndarray], bool] | None = None) -> list[str]:
    """What is impossible in a layer's stored numbers: non-finite values, negative variance.

    ``known_finite(array)`` is True for an array already known to hold finite values only, which is then not
    read again (a port checks its source's kernels as it copies them: :mod:`bnport.adapters.torch.early_kernels`).
    """
    out = []
    for key, value in tensors_of(spec).items():
        if known_finite is not None and known_finite(value):
            continue
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            out.append(f"{key} has {bad} non-finite value{'s' if bad > 1 else ''}")
    if isinstance(spec, BatchNormSpec) and spec.running_var is not None:
        negative = int(np.count_nonzero(spec.running_var < 0))
        if negative:
            out.append(f"running_var has {negative} negative value{'s' if negative > 1 else ''} "
                       f"(min {float(np.nanmin(spec.running_var)):.4g})")
    return out


def summary(spec: BatchNormSpec) -> str:
    """One line: channels, epsilon, momentum, fresh or trained statistics, and any problem."""
    parts = [f"{spec.channels} channels", f"eps {spec.epsilon:g}"]
    if spec.momentum is not None:
        parts.append(f"momentum {spec.torch_momentum:g} (PyTorch) = {spec.momentum:g} (Keras)")
    if not spec.track_running_stats:
        parts.append("no running statistics")
    elif spec.fresh_stats:
        parts.append("FRESH statistics (mean 0, var 1: never trained)")
    else:
        var = spec.running_var.astype(np.float64)
        parts.append(f"trained statistics (var {np.nanmin(var):.3g}..{np.nanmax(var):.3g})")
    parts += [p.upper() for p in problems(spec)]
    return ", ".join(parts)
