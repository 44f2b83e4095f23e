"""The layer classes of torchvision and timm that bnport maps, recognised without importing either package.

Zoo models build their convolutions and norms from their own classes, which torch.fx would trace into (they are
not ``torch.nn`` leaves), and some compute something other than the ``torch.nn`` class they derive from:

* ``FrozenBatchNorm2d`` (torchvision, timm): BatchNorm with buffers only and no momentum; its statistics never
  move, which is Keras ``momentum=1.0``.
* timm ``BatchNormAct2d`` / ``FrozenBatchNormAct2d``: the BatchNorm, then its own ``drop`` and ``act``
  submodules inside one module, so the module's output is the activation's; a verify taps the BatchNorm part.
* timm ``Conv2dSame``: pads TensorFlow's way ("same") at run time, then a valid convolution: Keras
  ``padding="same"``.
* timm ``StdConv2d`` / ``ScaledStdConv2d`` (and their ``Same`` variants): standardize the weight each time they
  run; what they compute with is the standardized weight, which a plain Keras convolution can hold. The other
  way no Keras kernel can be written into them so that they compute it (they would standardize it again).
* torchvision ``LayerNorm2d`` (ConvNeXt): ``nn.LayerNorm`` over the channel axis of an NCHW tensor.

A class is recognised by its name and its package (``timm.``/``torchvision.``), so the modules may move within
those packages.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FROZEN_BN = ("FrozenBatchNorm2d", "FrozenBatchNormAct2d")
NORM_ACT = ("BatchNormAct2d", "FrozenBatchNormAct2d", "SyncBatchNormAct")
SAME_CONV = ("Conv2dSame", "StdConv2dSame", "ScaledStdConv2dSame")
STD_CONV = ("StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame")
CHANNELS_FIRST_NORM = ("LayerNorm2d",)
KNOWN = (*FROZEN_BN, *NORM_ACT, *SAME_CONV, *STD_CONV, *CHANNELS_FIRST_NORM)
_PACKAGES = ("timm.", "torchvision.")


def zoo_class(module: nn.Module, names: tuple[str, ...] = KNOWN) -> str | None:
    """The name of the first class of ``module``'s MRO that is a known zoo class among ``names``, or None."""
    for cls in type(module).__mro__:
        if cls.__name__ in names and cls.__module__.startswith(_PACKAGES):
            return cls.__name__
    return None


def is_frozen_batchnorm(module: nn.Module) -> bool:
    """torchvision's or timm's frozen BatchNorm (buffers weight, bias, running_mean, running_var; ``eps``)."""
    return zoo_class(module, FROZEN_BN) is not None


def computes_as(module: nn.Module, base: type) -> bool:
    """Whether ``module`` computes what ``base`` (a torch.nn class in its MRO) computes, or what bnport knows its
    own class computes: a subclass with a ``forward`` of its own and not known here may compute anything."""
    cls = type(module)
    return (cls.forward is base.forward or cls.__module__.startswith("torch.nn")
            or zoo_class(module) is not None)


def standardized_weight(module: nn.Conv2d) -> torch.Tensor:
    """The weight a timm ``StdConv2d`` / ``ScaledStdConv2d`` convolves with, computed as its ``forward`` does."""
    gain = None
    if zoo_class(module, ("ScaledStdConv2d", "ScaledStdConv2dSame")) is not None:
        gain = (module.gain * module.scale).view(-1)
    with torch.no_grad():
        return F.batch_norm(module.weight.reshape(1, module.out_channels, -1), None, None, weight=gain,
                            training=True, momentum=0.0, eps=module.eps).reshape_as(module.weight)


class BatchNormPart(nn.Module):
    """The BatchNorm part of a timm ``BatchNormAct2d``, in eval mode (what a verify taps)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.inner
        return F.batch_norm(x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps)


class ActivationPart(nn.Module):
    """What a timm ``BatchNormAct2d`` does after its BatchNorm: its ``drop``, then its ``act``."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.inner = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.inner
        if hasattr(m, "drop"):
            x = m.drop(x)
        if hasattr(m, "act"):
            x = m.act(x)
        return x


def split_for_tap(module: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """For a module that applies more than its own layer (timm's norm+act), the layer part and the rest."""
    if zoo_class(module, NORM_ACT) is None:
        return None
    return BatchNormPart(module), ActivationPart(module)
