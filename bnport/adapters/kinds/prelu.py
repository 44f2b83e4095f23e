"""Kind ``prelu``: PReLU (one alpha per channel) <-> PReLU shared over the spatial axes."""

from __future__ import annotations

import numpy as np

from bnport.adapters.kinds import Definition
from bnport.core import kinds
from bnport.core.layers import LayerSpec
from bnport.errors import UnsupportedLayerError

KIND = kinds.declare(kinds.Kind("prelu", "PReLU", "PReLU"))


def torch_classes() -> tuple[type, ...]:
    from torch import nn

    return (nn.PReLU,)


def torch_read(module) -> LayerSpec:
    from bnport.adapters.torch.batchnorm import tensor_view

    return LayerSpec("prelu", {"weight": tensor_view(module.weight)})


def keras_classes() -> tuple[type, ...]:
    import keras

    return (keras.layers.PReLU,)


def _alpha(layer, get) -> np.ndarray:
    alpha = get(layer.alpha)
    if sum(d != 1 for d in alpha.shape) > 1:
        raise UnsupportedLayerError(
            f"Keras PReLU '{layer.name}' has a per-position alpha of shape {alpha.shape}; PyTorch PReLU has one "
            "per channel: build it with shared_axes over the spatial axes"
        )
    return alpha.reshape(-1)


def keras_read(layer, get, flatten_from=None) -> LayerSpec:
    return LayerSpec("prelu", {"weight": _alpha(layer, get)})


def keras_targets(layer, spec: LayerSpec, flatten_from=None, name: str = "") -> list:
    w = spec.arrays.get("weight")
    return [("alpha", layer.alpha, None if w is None else w.reshape(tuple(layer.alpha.shape)))]


DEFINITION = Definition("prelu", torch_classes, torch_read, keras_classes, keras_read, keras_targets)
