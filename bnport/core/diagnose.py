"""Why one ported pair of layers diverges: weights, layout mistakes, padding, BatchNorm settings (numpy only)."""

from __future__ import annotations

import numpy as np

from bnport.core import findings as fnd
from bnport.core import kinds
from bnport.core.findings import Finding
from bnport.core.layers import ROUNDING, LayerSpec, cast
from bnport.core.pairing import Plan
from bnport.core.samples import batchnorm_inputs
from bnport.core.spec import BatchNormSpec


def diagnose_pair(p: Plan, torch_name: str, keras_name: str) -> list[Finding]:
    """Findings for one pair from its two states; an ``upstream`` finding when the pair itself agrees."""
    t = p.torch_graph.nodes[torch_name]
    k = p.keras_graph.nodes[keras_name]
    t_spec, k_spec = t.values(), k.values()
    if isinstance(t_spec, BatchNormSpec):
        found = _batchnorm(t_spec, k_spec, torch_name, keras_name)
    else:
        found = _weights(t_spec, k_spec, torch_name, keras_name, k.flatten_from)
        if k.input_sizes is None or None in k.input_sizes:  # else bnport.core.differences has decided it exactly
            found += _padding(t_spec, k_spec)
    if not found:
        found.append(Finding(
            "upstream",
            f"the weights and settings of {torch_name} and {keras_name} agree: the difference enters before this "
            "pair, in weightless operations (padding, pooling, upsampling, flatten, activations) feeding it",
        ))
    return found


def _batchnorm(t: BatchNormSpec, k: BatchNormSpec, tn: str, kn: str) -> list[Finding]:
    if t.dtype != k.dtype:  # compare as the coarser side holds them (a half-precision model against float32)
        coarse = min((t.dtype, k.dtype), key=lambda d: -ROUNDING.get(d, 0.0))
        t, k = cast(t, coarse), cast(k, coarse)
    ndim = (t.input_ndims or k.input_ndims or (4,))[-1]
    x = batchnorm_inputs(t, ndim)
    sides = fnd.Side(t, False, f"PyTorch {tn}"), fnd.Side(k, False, f"Keras {kn}")
    return [f for f in fnd.diagnose(x, *sides) if f.code not in ("momentum", "fresh-stats")]


def _weights(t: LayerSpec, k: LayerSpec, tn: str, kn: str, flatten_from) -> list[Finding]:
    out = []
    for key, tv in t.arrays.items():
        kv = k.arrays.get(key)
        if kv is not None and tv.dtype != kv.dtype:  # compare as the coarser side holds them
            coarse = tv.dtype if tv.dtype.itemsize < kv.dtype.itemsize else kv.dtype
            tv, kv = tv.astype(coarse), kv.astype(coarse)
        if kv is None or tv.shape != kv.shape or np.array_equal(tv, kv):
            continue
        kind = kinds.get(t.kind)
        explained = kind.explain_weight(key, tv, kv, tn, kn, flatten_from) if kind and kind.explain_weight else None
        if explained is not None:
            out.append(explained)
        else:
            gap = np.abs(tv.astype(np.float64) - kv.astype(np.float64))
            out.append(Finding("weights", f"{key} differs between PyTorch {tn} and Keras {kn} in "
                                          f"{int(np.count_nonzero(gap))} of {gap.size} values (max {gap.max():.4g})"))
    t_eps, k_eps = t.attrs.get("epsilon"), k.attrs.get("epsilon")
    if t_eps is not None and k_eps is not None and t_eps != k_eps:
        out.append(Finding("epsilon", f"epsilon differs: PyTorch {t_eps:g}, Keras {k_eps:g}"))
    return out


def _padding(t: LayerSpec, k: LayerSpec) -> list[Finding]:
    kind = kinds.get(t.kind)
    return list(kind.explain_settings(t, k)) if kind and kind.explain_settings else []
