"""bnport's public functions; each imports its framework adapter only when called."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras
    from torch import nn

    from bnport.spec import BatchNormSpec


def from_torch(layer: nn.Module) -> BatchNormSpec:
    """Read a PyTorch BatchNorm module into a framework-neutral spec (see :mod:`bnport.torch_bn`)."""
    from bnport import torch_bn

    return torch_bn.from_torch(layer)


def to_torch(spec: BatchNormSpec, module: nn.Module | None = None, *, input_ndim: int | None = None) -> nn.Module:
    """Write a spec into a new (or the given) PyTorch BatchNorm module, returned in eval mode."""
    from bnport import torch_bn

    return torch_bn.to_torch(spec, module, input_ndim=input_ndim)


def from_keras(layer: keras.layers.BatchNormalization) -> BatchNormSpec:
    """Read a built Keras BatchNormalization layer into a framework-neutral spec (see :mod:`bnport.keras_bn`)."""
    from bnport import keras_bn

    return keras_bn.from_keras(layer)


def to_keras(
    spec: BatchNormSpec,
    layer: keras.layers.BatchNormalization | None = None,
    *,
    data_format: str = "channels_last",
    input_ndim: int | None = None,
) -> keras.layers.BatchNormalization:
    """Write a spec into a new (or the given) Keras BatchNormalization layer, returned built."""
    from bnport import keras_bn

    return keras_bn.to_keras(spec, layer, data_format=data_format, input_ndim=input_ndim)
