"""How much zero padding a convolution's input gets on each side, in either framework (standard library only).

PyTorch pads symmetrically (``padding=1``: one row above and one below); TensorFlow's ``padding="same"`` pads a
total of ``max((ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)`` and puts the odd one at the bottom/right, so a
stride-2 3x3 convolution of an even-sized input is padded ``(0, 1)`` in Keras and ``(1, 1)`` in PyTorch: the
same weights then compute a shifted output. keras.applications' MobileNetV2 and EfficientNet reach the same
``(0, 1)`` with ``ZeroPadding2D(correct_pad(...))`` before a ``"valid"`` convolution; timm's ``Conv2dSame`` pads
the TensorFlow way in PyTorch. :class:`Padding` describes all of these so the two sides can be compared before
anything runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Sides = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class Padding:
    """The zero padding a convolution's input gets, per spatial axis.

    Attributes:
        explicit: (before, after) added by zero-padding operations feeding the layer (``ZeroPadding2D``,
            ``F.pad``); zeros when none.
        own: the layer's own symmetric padding per axis (PyTorch ``padding=p``; 0 for Keras ``"valid"``).
        same: the layer pads TensorFlow-style ``"same"`` itself (Keras ``padding="same"``, PyTorch
            ``padding="same"``, timm ``Conv2dSame``): depends on the input size.
        how: a few words saying where the padding comes from, for messages.
    """

    explicit: Sides
    own: tuple[int, ...]
    same: bool = False
    how: str = ""

    def sides(self, sizes: Sequence[int | None] | None, kernel: Sequence[int], stride: Sequence[int],
              dilation: Sequence[int]) -> Sides | None:
        """(before, after) per spatial axis for inputs of spatial ``sizes``; None when it depends on an unknown
        size (``"same"`` with a stride above 1)."""
        out = []
        for i, (before, after) in enumerate(self.explicit):
            b, a = before + self.own[i], after + self.own[i]
            if self.same:
                n = None if sizes is None else sizes[i]
                if n is not None:
                    n += before + after
                total = same_total(n, kernel[i], stride[i], dilation[i])
                if total is None:
                    return None
                b, a = b + total // 2, a + total - total // 2
            out.append((b, a))
        return tuple(out)


def same_total(size: int | None, kernel: int, stride: int, dilation: int) -> int | None:
    """TensorFlow's total "same" padding of one axis; None when it depends on an unknown ``size``."""
    if stride == 1:
        return (kernel - 1) * dilation
    if size is None:
        return None
    return max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)


def none(rank: int) -> Sides:
    """No explicit padding on ``rank`` spatial axes."""
    return ((0, 0),) * rank


def add(a: Sides | None, b: Sides) -> Sides:
    """Two zero paddings applied one after the other."""
    if a is None:
        return b
    return tuple((x0 + y0, x1 + y1) for (x0, x1), (y0, y1) in zip(a, b, strict=True))


def text(sides: Sides) -> str:
    """``(top, bottom) x (left, right)`` style text: one ``(before, after)`` per spatial axis."""
    return " x ".join(f"({b}, {a})" for b, a in sides)
