"""Kind ``embedding``: Embedding <-> Embedding (the table is the same matrix on both sides)."""

from __future__ import annotations

from bnport.adapters.kinds import Definition
from bnport.core import kinds
from bnport.core.layers import LayerSpec

KIND = kinds.declare(kinds.Kind("embedding", "Embedding", "Embedding", channels=False))


def torch_classes() -> tuple[type, ...]:
    from torch import nn

    return (nn.Embedding,)


def torch_read(module) -> LayerSpec:
    from bnport.adapters.torch.batchnorm import tensor_view

    return LayerSpec("embedding", {"weight": tensor_view(module.weight)})


def keras_classes() -> tuple[type, ...]:
    import keras

    return (keras.layers.Embedding,)


def keras_read(layer, get, flatten_from=None) -> LayerSpec:
    return LayerSpec("embedding", {"weight": get(layer.embeddings)})


def keras_targets(layer, spec: LayerSpec, flatten_from=None, name: str = "") -> list:
    return [("embeddings", layer.embeddings, spec.arrays.get("weight"))]


DEFINITION = Definition("embedding", torch_classes, torch_read, keras_classes, keras_read, keras_targets)
