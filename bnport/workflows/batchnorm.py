"""bnport's public functions; each imports its framework adapter only when called."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras
    from torch import nn

    from bnport.core.spec import BatchNormSpec


def from_torch(layer: nn.Module) -> BatchNormSpec:
    """Read a PyTorch BatchNorm module into a framework-neutral spec (see :mod:`bnport.adapters.torch.batchnorm`)."""
    from bnport.adapters.torch import batchnorm as torch_bn

    return torch_bn.from_torch(layer)


def to_torch(spec: BatchNormSpec, module: nn.Module | None = None, *, input_ndim: int | None = None) -> nn.Module:
    """Write a spec into a new (or the given) PyTorch BatchNorm module, returned in eval mode."""
    from bnport.adapters.torch import batchnorm as torch_bn

    return torch_bn.to_torch(spec, module, input_ndim=input_ndim)


def from_keras(layer: keras.layers.BatchNormalization) -> BatchNormSpec:
    """Read a built Keras BatchNormalization layer into a framework-neutral spec
    (see :mod:`bnport.adapters.keras.batchnorm`)."""
    from bnport.adapters.keras import batchnorm as keras_bn

    return keras_bn.from_keras(layer)


def to_keras(
    spec: BatchNormSpec,
    layer: keras.layers.BatchNormalization | None = None,
    *,
    data_format: str = "channels_last",
    input_ndim: int | None = None,
) -> keras.layers.BatchNormalization:
    """Write a spec into a new (or the given) Keras BatchNormalization layer, returned built."""
    from bnport.adapters.keras import batchnorm as keras_bn

    return keras_bn.to_keras(spec, layer, data_format=data_format, input_ndim=input_ndim)
