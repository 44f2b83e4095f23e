"""Kind ``conv``: Conv1d/2d/3d (any groups) <-> Conv1D/2D/3D and DepthwiseConv1D/2D."""

from __future__ import annotations

import numpy as np

from bnport.adapters.kinds import Definition
from bnport.core import kinds, layout
from bnport.core.findings import Finding
from bnport.core.layers import LayerSpec
from bnport.errors import UnsupportedLayerError


def _reduction(spec: LayerSpec) -> int:
    w = spec.arrays.get("weight")
    return int(np.prod(w.shape[1:])) if w is not None else 1


def explain_weight(key: str, tv: np.ndarray, kv: np.ndarray, tn: str, kn: str, flatten_from=None) -> Finding | None:
    """A kernel whose last two spatial axes (H and W) were swapped by a port."""
    if key == "weight" and tv.ndim >= 4 and np.array_equal(np.swapaxes(tv, -1, -2), kv):
        return Finding("kernel-layout", f"the kernel of Keras {kn} is the kernel of PyTorch {tn} with its last two "
                                        "spatial axes (H and W) swapped: a transpose in the port")
    return None


def explain_settings(t: LayerSpec, k: LayerSpec) -> list[Finding]:
    """A stride-2 Keras "same" convolution against a symmetric PyTorch padding (TensorFlow pads bottom/right)."""
    if k.attrs.get("padding") != "same":
        return []
    stride = tuple(k.attrs.get("stride") or ())
    pad = t.attrs.get("padding")
    if any(s > 1 for s in stride) and isinstance(pad, tuple) and any(p > 0 for p in pad):
        return [Finding(
            "same-padding",
            f"Keras pads a stride-{max(stride)} 'same' convolution on the bottom/right only (TensorFlow's rule), "
            f"while PyTorch padding={pad} pads both sides: the outputs are shifted. Use ZeroPadding{len(stride)}D"
            f"({pad[0]}) and padding='valid' in Keras (as keras.applications does)",
        )]
    return []


KIND = kinds.declare(kinds.Kind("conv", "Conv1d/2d/3d (any groups)", "Conv1D/2D/3D, DepthwiseConv1D/2D",
                                reduction=_reduction, explain_weight=explain_weight,
                                explain_settings=explain_settings))


def torch_classes() -> tuple[type, ...]:
    from torch import nn

    return (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def torch_read(module) -> LayerSpec:
    """A convolution or transposed convolution (``kind`` from its class); timm's standardized convolutions give the
    weight they compute with."""
    from torch import nn

    from bnport.adapters.torch import zoo as torch_zoo
    from bnport.adapters.torch.batchnorm import tensor_view

    if module.padding_mode != "zeros":
        raise UnsupportedLayerError(
            f"{type(module).__name__} uses padding_mode='{module.padding_mode}', which Keras convolutions "
            "do not have (only zero padding)"
        )
    attrs = {"groups": module.groups, "stride": module.stride, "dilation": module.dilation,
             "padding": module.padding, "channels": module.in_channels}
    transposed = isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d))
    if transposed:
        attrs["output_padding"] = module.output_padding
    arrays = {k: tensor_view(v) for k, v in (("weight", module.weight), ("bias", module.bias)) if v is not None}
    std = torch_zoo.zoo_class(module, torch_zoo.STD_CONV)
    if std is not None:  # what the layer convolves with; a copy, standardized as its forward does
        arrays["weight"] = tensor_view(torch_zoo.standardized_weight(module))
        attrs["note"] = (f"timm {std} standardizes its weight when it runs: the standardized weight it computes "
                         "with was ported")
        attrs["write_refused"] = (
            f"timm {std} standardizes whatever weight it holds each time it runs, so no weight written into it "
            "computes what the source's kernel computes; port into a plain nn.Conv2d")
    return LayerSpec("conv_transpose" if transposed else "conv", arrays, attrs)


def _depthwise_classes() -> tuple[type, ...]:
    import keras

    return (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)


def keras_classes() -> tuple[type, ...]:
    import keras

    return (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, *_depthwise_classes())


def bias(layer, get) -> dict:
    return {"bias": get(layer.bias)} if getattr(layer, "bias", None) is not None else {}


def conv_attrs(layer, channels: int, groups: int) -> dict:
    return {"groups": groups, "stride": tuple(layer.strides), "dilation": tuple(layer.dilation_rate),
            "padding": layer.padding, "channels": channels, "data_format": layer.data_format}


def keras_read(layer, get, flatten_from=None) -> LayerSpec:
    k = get(layer.kernel)
    if isinstance(layer, _depthwise_classes()):
        channels = k.shape[-2]
        return LayerSpec("conv", {"weight": layout.depthwise_to_torch(k), **bias(layer, get)},
                         conv_attrs(layer, channels, channels))
    groups = int(getattr(layer, "groups", 1) or 1)
    arrays = {"weight": layout.conv_to_torch(k), **bias(layer, get)}
    return LayerSpec("conv", arrays, conv_attrs(layer, k.shape[-2] * groups, groups))


def keras_targets(layer, spec: LayerSpec, flatten_from=None, name: str = "") -> list:
    w, b = spec.arrays.get("weight"), spec.arrays.get("bias")
    if isinstance(layer, _depthwise_classes()):
        kernel = None if w is None else layout.depthwise_to_keras(w, int(layer.kernel.shape[-2]))
    else:
        kernel = None if w is None else layout.conv_to_keras(w)
    return [("kernel", layer.kernel, kernel), ("bias", layer.bias, b)]


DEFINITION = Definition("conv", torch_classes, torch_read, keras_classes, keras_read, keras_targets)
