"""Kind ``conv_transpose``: ConvTranspose1d/2d/3d <-> Conv1D/2D/3DTranspose."""

from __future__ import annotations

import numpy as np

from bnport.adapters.kinds import Definition
from bnport.adapters.kinds.conv import bias, conv_attrs, explain_weight, torch_read
from bnport.core import kinds, layout
from bnport.core.layers import LayerSpec


def _reduction(spec: LayerSpec) -> int:
    w = spec.arrays.get("weight")
    return int(w.shape[0] // max(1, spec.attrs.get("groups", 1)) * np.prod(w.shape[2:])) if w is not None else 1


KIND = kinds.declare(kinds.Kind("conv_transpose", "ConvTranspose1d/2d/3d", "Conv1D/2D/3DTranspose",
                                reduction=_reduction, explain_weight=explain_weight))


def torch_classes() -> tuple[type, ...]:
    from torch import nn

    return (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def keras_classes() -> tuple[type, ...]:
    import keras

    return (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)


def keras_read(layer, get, flatten_from=None) -> LayerSpec:
    k = get(layer.kernel)
    return LayerSpec("conv_transpose", {"weight": layout.conv_transpose_to_torch(k), **bias(layer, get)},
                     conv_attrs(layer, k.shape[-1], 1))


def keras_targets(layer, spec: LayerSpec, flatten_from=None, name: str = "") -> list:
    w = spec.arrays.get("weight")
    kernel = None if w is None else layout.conv_transpose_to_keras(w)
    return [("kernel", layer.kernel, kernel), ("bias", layer.bias, spec.arrays.get("bias"))]


DEFINITION = Definition("conv_transpose", torch_classes, torch_read, keras_classes, keras_read, keras_targets)
