"""What makes two paired models compute different things although every weight fits (no framework).

Some differences are in the definitions, not in the weights: a stride-2 convolution padded ``(0, 1)`` in Keras
and ``(1, 1)`` in PyTorch, or Keras preprocessing layers (``Rescaling``, ``Normalization``) in front of a model
whose PyTorch twin expects inputs already preprocessed. A port cannot fix them, and they are known before
anything runs, so :func:`bnport.plan` lists them, :func:`bnport.port` refuses them unless ``strict=False``, and
:func:`bnport.verify` names them where the outputs part.
"""

from __future__ import annotations

from dataclasses import dataclass

from bnport.core import padding as pad
from bnport.core.graph import Graph, Node


@dataclass(frozen=True)
class Difference:
    """One difference between the definitions of a pair, before the pair's own weights come in.

    Attributes:
        torch_name, keras_name: the pair whose input differs.
        code: ``padding`` (zero padding on different sides), ``same-padding`` (the same, with Keras
            ``padding="same"``) or ``preprocessing`` (Keras transforms the input first).
        message: what differs, with the numbers, and what would make the two agree.
    """

    torch_name: str
    keras_name: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


def differences(tg: Graph, kg: Graph, pairs) -> list[Difference]:
    """Every :class:`Difference` of the given pairs (``Pair`` objects), in PyTorch execution order."""
    out = []
    for p in pairs:
        t, k = tg.nodes[p.torch_name], kg.nodes[p.keras_name]
        same_settings = t.spec.attrs.get("stride") == k.spec.attrs.get("stride") if hasattr(t.spec, "attrs") else True
        out += (_padding(t, k) if same_settings else []) + _preprocessing(t, k)  # another stride conflicts already
    return out


def _padding(t: Node, k: Node) -> list[Difference]:
    if t.padding is None or k.padding is None:
        return []
    weight = t.spec.arrays.get("weight") if hasattr(t.spec, "arrays") else None
    if weight is None or weight.ndim < 3:
        return []
    kernel = tuple(weight.shape[2:])
    stride = tuple(t.spec.attrs.get("stride") or (1,) * len(kernel))
    dilation = tuple(t.spec.attrs.get("dilation") or (1,) * len(kernel))
    sizes = k.input_sizes
    t_sides = t.padding.sides(sizes, kernel, stride, dilation)
    k_sides = k.padding.sides(sizes, kernel, stride, dilation)
    if t_sides is None or k_sides is None or t_sides == k_sides:
        return []
    size = "" if sizes is None or None in sizes else f"{'x'.join(map(str, sizes))} "
    code = "same-padding" if k.padding.same and not t.padding.same else "padding"
    fix = _padding_fix(t_sides, k_sides, len(kernel))
    return [Difference(
        t.name, k.name, code,
        f"the {size}input of PyTorch {t.name} is zero-padded {pad.text(t_sides)} ({t.padding.how}) but that of "
        f"Keras {k.name} {pad.text(k_sides)} ({k.padding.how}), (before, after) per spatial axis: the same "
        f"weights compute a shifted output. {fix}",
    )]


def _padding_fix(t_sides: pad.Sides, k_sides: pad.Sides, rank: int) -> str:
    keras_pad = tuple(t_sides) if rank > 1 else t_sides[0]
    torch_pad = tuple(v for b, a in reversed(k_sides) for v in (b, a))
    return (f"To agree, pad the Keras input with ZeroPadding{rank}D({keras_pad}) and use padding='valid', as "
            f"PyTorch does, or pad the PyTorch input with F.pad(x, {torch_pad}) and padding=0 (timm's Conv2dSame "
            "pads the TensorFlow way)")


def _preprocessing(t: Node, k: Node) -> list[Difference]:
    if not k.preprocessing or t.preprocessing:
        return []
    steps = "; ".join(k.preprocessing)
    return [Difference(
        t.name, k.name, "preprocessing",
        f"the Keras model transforms its input before {k.name} ({steps}) while PyTorch {t.name} takes the input as "
        "it is: on the same input the two compute different things. PyTorch models leave preprocessing to the data "
        "pipeline: build the Keras model without it (keras.applications' include_preprocessing=False where it "
        "exists), or feed the PyTorch model the preprocessed input",
    )]
