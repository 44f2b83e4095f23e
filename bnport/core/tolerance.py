"""How far two correct float32 runs of the same network may drift apart, from its structure (no framework).

A dot product of length K rounded in float32 is off by about ``sqrt(K) * u`` relative (u = 2**-24, errors
of random sign); a BatchNorm, activation or addition adds a few roundings more. Errors made in one layer
travel on through the layers after it, so the budget of a layer's output is the sum of those terms along the
longest path from the input to it (the *depth*), times 2 for two implementations, times the output's
magnitude:

    tolerance(layer) = 2 * u * sum over the longest path of (sqrt(K_l) + 4) * max |output|

With u = 2**-24 this is about 1.2e-7 per unit of path length. Measured on every layer of ResNet-50 ported
either way (PyTorch vs Keras through ONNX Runtime, both float32) the largest difference used 31% of it; a
real porting error (a wrong epsilon, a swapped axis) is orders of magnitude larger.
"""

from __future__ import annotations

import math

import numpy as np

from bnport.core import kinds
from bnport.core.graph import Graph
from bnport.core.layers import LayerSpec

U = 2.0**-24
OPS_PER_LAYER = 4


def reduction_length(spec) -> int:
    """K: how many products a single output element of the layer sums (1 for per-channel layers)."""
    if not isinstance(spec, LayerSpec):
        return 1
    kind = kinds.get(spec.kind)
    return int(kind.reduction(spec)) if kind is not None and kind.reduction is not None else 1


def depths(graph: Graph) -> dict[str, float]:
    """Each layer's accumulated ``sum(sqrt(K) + 4)`` along the longest path from the inputs."""
    out: dict[str, float] = {}
    for name, node in graph.nodes.items():
        before = max((out.get(p, 0.0) for p in node.preds), default=0.0)
        out[name] = before + math.sqrt(reduction_length(node.spec)) + OPS_PER_LAYER
    return out


def output_depth(graph: Graph) -> float:
    """The depth of the deepest layer feeding a model output."""
    d = depths(graph)
    return max((d.get(n, 0.0) for slot in graph.outputs for n in slot), default=0.0) + OPS_PER_LAYER


def tolerance(depth: float, reference: np.ndarray, unit: float = U) -> float:
    """The absolute tolerance for an output at ``depth`` whose values are ``reference``.

    ``unit`` is the relative rounding of the coarsest precision involved: ``U`` (float32) when both models hold and
    compute float32; a model holding or computing float16 rounds by 2**-11 and bfloat16 by 2**-8 (each weight
    and activation once), so the same sum over the path, with that unit, bounds the difference. Computing in
    float32 does not take that rounding back: it is in the values.
    """
    scale = float(np.max(np.abs(reference))) if np.size(reference) else 0.0
    return 2.0 * unit * depth * scale + float(np.finfo(np.float32).tiny)
