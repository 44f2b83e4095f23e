"""Kind ``dense``: Linear <-> Dense (a Dense after a Flatten of a channels-last map gets its rows permuted)."""

from __future__ import annotations

import numpy as np

from bnport.adapters.kinds import Definition
from bnport.adapters.kinds.conv import bias
from bnport.core import kinds, layout
from bnport.core.findings import Finding
from bnport.core.layers import LayerSpec
from bnport.errors import UnsupportedLayerError


def _reduction(spec: LayerSpec) -> int:
    w = spec.arrays.get("weight")
    return int(w.shape[1]) if w is not None else 1


def explain_weight(key: str, tv: np.ndarray, kv: np.ndarray, tn: str, kn: str, flatten_from=None) -> Finding | None:
    """A Dense after a Flatten of an (H, W, C) map whose rows were left in PyTorch's (C, H, W) order."""
    if key != "weight" or flatten_from is None:
        return None
    as_keras = layout.dense_to_keras(kv, tuple(flatten_from))  # what the Keras kernel holds, (in, out)
    if np.array_equal(as_keras, layout.dense_to_keras(tv)):
        return Finding("flatten-order", f"Keras {kn} reads a Flatten of a {list(flatten_from)} (H, W, C) map "
                                        f"but its rows are in PyTorch's (C, H, W) order: permute them")
    return None


KIND = kinds.declare(kinds.Kind("dense", "Linear", "Dense", channels=False, reduction=_reduction,
                                explain_weight=explain_weight))


def torch_classes() -> tuple[type, ...]:
    from torch import nn

    return (nn.Linear,)


def torch_read(module) -> LayerSpec:
    from bnport.adapters.torch.batchnorm import tensor_view

    return LayerSpec("dense", {k: tensor_view(v) for k, v in (("weight", module.weight), ("bias", module.bias))
                               if v is not None})


def keras_classes() -> tuple[type, ...]:
    import keras

    return (keras.layers.Dense,)


def keras_read(layer, get, flatten_from=None) -> LayerSpec:
    """``flatten_from``: for a Dense fed by a Flatten of a channels-last feature map, that map's shape (*spatial,
    C); the kernel's rows are put in PyTorch's (C, *spatial) order."""
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        raise UnsupportedLayerError(f"Keras Dense '{layer.name}' is LoRA-enabled or quantized; merge it first")
    return LayerSpec("dense", {"weight": layout.dense_to_torch(get(layer.kernel), flatten_from), **bias(layer, get)})


def keras_targets(layer, spec: LayerSpec, flatten_from=None, name: str = "") -> list:
    w = spec.arrays.get("weight")
    return [("kernel", layer.kernel, None if w is None else layout.dense_to_keras(w, flatten_from)),
            ("bias", layer.bias, spec.arrays.get("bias"))]


DEFINITION = Definition("dense", torch_classes, torch_read, keras_classes, keras_read, keras_targets)
