"""Framework-neutral weights of the layers around BatchNorm (numpy only).

Arrays are held in PyTorch's convention (conv weight (O, I/groups, *k), transposed conv (I, O/groups, *k),
linear (O, I)); each adapter converts with the named permutations of :mod:`bnport.core.layout`. BatchNorm keeps
its own richer spec, :class:`bnport.core.spec.BatchNormSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from bnport.core.spec import BatchNormSpec, dtype_name
from bnport.errors import IncompatibleLayerError


@dataclass(frozen=True, eq=False)
class LayerSpec:
    """One layer's weights in PyTorch's convention, plus the settings that must agree across frameworks.

    Attributes:
        kind: a kind's name (:mod:`bnport.core.kinds`: built-in, or a user's registered pair).
        arrays: ``weight`` and, when present, ``bias``; may be views of framework memory (read them while
            porting, do not keep them) or, for a destination read for its shapes only, arrays of no memory.
        attrs: settings: ``groups``, ``stride``, ``dilation`` (convolutions), ``epsilon`` (norms),
            ``num_groups`` (GroupNorm).
    """

    kind: str
    arrays: Mapping[str, np.ndarray]
    attrs: Mapping[str, object] = field(default_factory=dict)


AnySpec = LayerSpec | BatchNormSpec


@dataclass
class Write:
    """What writing one layer will set, checked but not yet done (each adapter's ``prepare`` makes it, its
    ``commit`` does it): attributes (epsilon, momentum) and each framework variable with its new value."""

    layer: object
    settings: dict[str, object] = field(default_factory=dict)
    values: list[tuple[object, np.ndarray]] = field(default_factory=list)


def signature(spec: AnySpec) -> tuple:
    """What must be equal for two layers to be the same layer: kind, weight shapes, groups."""
    if isinstance(spec, BatchNormSpec):
        return ("batchnorm", spec.channels)
    shapes = tuple(sorted((k, tuple(v.shape)) for k, v in spec.arrays.items() if k != "bias"))
    return (spec.kind, shapes, spec.attrs.get("groups", 1), spec.attrs.get("channels"))


def describe(spec: AnySpec) -> str:
    """A short text of kind and shapes, for messages and tables."""
    if isinstance(spec, BatchNormSpec):
        return f"batchnorm({spec.channels})"
    shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in spec.arrays.items())
    groups = spec.attrs.get("groups", 1)
    return f"{spec.kind}({shapes}{f', groups={groups}' if groups != 1 else ''})"


def tensors_of(spec: AnySpec) -> Mapping[str, np.ndarray]:
    """The arrays a spec holds, by name."""
    return spec.arrays() if isinstance(spec, BatchNormSpec) else spec.arrays


def dtype_of(spec: AnySpec) -> str | None:
    """The parameter dtype of a spec (None for a layer without parameters)."""
    if isinstance(spec, BatchNormSpec):
        return spec.dtype
    return next((dtype_name(v) for v in tensors_of(spec).values()), None)


#: relative rounding of a cast to each floating dtype (half the spacing of its numbers at 1)
ROUNDING = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": 2.0**-24, "float64": 2.0**-53}


def cast(spec: AnySpec, dtype: str) -> AnySpec:
    """``spec`` with its arrays in ``dtype`` (a destination keeps its own dtype); integer arrays unchanged."""
    if isinstance(spec, BatchNormSpec):
        return spec.replace(dtype=dtype, **{k: v.astype(dtype) for k, v in spec.arrays().items()})
    arrays = {k: v.astype(dtype) if v.dtype.kind == "f" or v.dtype.name == "bfloat16" else v
              for k, v in spec.arrays.items()}
    return LayerSpec(spec.kind, arrays, spec.attrs)


def cast_is_exact(src: str, dst: str) -> bool:
    """Whether every value of ``src`` is a value of ``dst`` (float16 and bfloat16 into float32 or float64)."""
    return src == dst or dst == "float64" or (dst == "float32" and src in ("float16", "bfloat16"))


def settings_conflicts(src: AnySpec, src_values: AnySpec | Callable[[], AnySpec], dst: AnySpec,
                       sides: tuple[str, str] = ("source", "destination")) -> list[str]:
    """Settings that differ between two layers of the same signature and would change the output.

    ``src_values`` is ``src`` with its values (a destination read for its shapes only holds none), or a function
    returning it, called only when a value decides: a bias is a conflict only when it is not zero. ``sides`` names
    the two frameworks in messages. BatchNorm epsilon and momentum are not listed: the port carries the source's
    values; nor is the dtype: the destination keeps its own (:func:`cast`).
    """
    out = []
    if isinstance(src, BatchNormSpec) or isinstance(dst, BatchNormSpec):
        return out
    for key in ("stride", "dilation"):
        a, b = src.attrs.get(key), dst.attrs.get(key)
        if a is not None and b is not None and tuple(a) != tuple(b):
            out.append(f"{key} {tuple(a)} ({sides[0]}) vs {tuple(b)} ({sides[1]})")
    if "bias" not in src.arrays or "bias" in dst.arrays:
        return out
    bias = (src_values() if callable(src_values) else src_values).arrays.get("bias")
    if bias is not None and np.any(bias != 0):
        out.append(f"the {sides[0]} layer adds a bias (not all zero) that the {sides[1]} layer has no room for "
                   f"(build it with a bias)")
    return out


def check_shape(name: str, what: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
    """Raise IncompatibleLayerError naming the layer, the tensor and both shapes when they differ."""
    if tuple(got) != tuple(want):
        raise IncompatibleLayerError(
            f"layer '{name}': {what} has shape {tuple(want)} but the source gives {tuple(got)}"
        )


def check_droppable(name: str, key: str, value: np.ndarray | None) -> None:
    """A destination without room for ``key`` may drop it only when it is the identity (ones or zeros)."""
    identity = 1.0 if key in ("weight", "gamma") else 0.0
    if value is not None and np.any(value != identity):
        raise IncompatibleLayerError(
            f"layer '{name}' has no {key} but the source's {key} is not all {identity:g}; build it with one"
        )
