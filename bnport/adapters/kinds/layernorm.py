"""Kind ``layernorm``: LayerNorm over the last axis (and the zoos' channels-first LayerNorm2d) <->
LayerNormalization over the last axis."""

from __future__ import annotations

from bnport.adapters.kinds import Definition
from bnport.core import kinds
from bnport.core.layers import LayerSpec
from bnport.errors import UnsupportedLayerError

KIND = kinds.declare(kinds.Kind("layernorm", "LayerNorm", "LayerNormalization (last axis)", channels=False,
                                reduction=lambda spec: int(spec.attrs.get("channels") or 1)))


def torch_classes() -> tuple[type, ...]:
    from torch import nn

    return (nn.LayerNorm,)


def torch_affine(module, affine: bool) -> dict:
    from bnport.adapters.torch.batchnorm import tensor_view

    if not affine:
        return {}
    return {k: tensor_view(v) for k, v in (("weight", module.weight), ("bias", module.bias)) if v is not None}


def torch_read(module) -> LayerSpec:
    from bnport.adapters.torch import zoo as torch_zoo

    if len(module.normalized_shape) != 1:
        raise UnsupportedLayerError(
            f"LayerNorm over {tuple(module.normalized_shape)} normalizes several axes; bnport maps LayerNorm over "
            "the last axis only (Keras LayerNormalization(axis=-1))"
        )
    attrs = {"epsilon": float(module.eps), "channels": module.normalized_shape[0]}
    if torch_zoo.zoo_class(module, torch_zoo.CHANNELS_FIRST_NORM):
        attrs["channels_first"] = True  # normalizes dim 1 of an NCHW tensor (what Keras's last axis holds)
    return LayerSpec("layernorm", torch_affine(module, module.elementwise_affine), attrs)


def keras_classes() -> tuple[type, ...]:
    import keras

    return (keras.layers.LayerNormalization,)


def keras_affine(layer, get) -> dict:
    out = {}
    if layer.scale:
        out["weight"] = get(layer.gamma)
    if layer.center and getattr(layer, "beta", None) is not None:
        out["bias"] = get(layer.beta)
    return out


def channel_axis_is_last(layer, axis) -> None:
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    ndim = layer.input_spec.ndim if getattr(layer, "input_spec", None) is not None else None
    if list(axes) not in ([-1], [ndim - 1] if ndim else [-1]):
        raise UnsupportedLayerError(
            f"Keras {type(layer).__name__} '{layer.name}' normalizes axis {axis}; bnport maps the last axis only. "
            f"Received: axis={axis}"
        )


def keras_read(layer, get, flatten_from=None) -> LayerSpec:
    if layer.rms_scaling:
        raise UnsupportedLayerError(f"Keras LayerNormalization '{layer.name}' uses rms_scaling (RMSNorm)")
    channel_axis_is_last(layer, layer.axis)
    arrays = keras_affine(layer, get)
    channels = int((layer.gamma if layer.scale else layer.beta).shape[0]) if arrays else None
    return LayerSpec("layernorm", arrays, {"epsilon": float(layer.epsilon), "channels": channels})


def keras_targets(layer, spec: LayerSpec, flatten_from=None, name: str = "") -> list:
    return [("gamma", layer.gamma if layer.scale else None, spec.arrays.get("weight")),
            ("beta", layer.beta if layer.center else None, spec.arrays.get("bias"))]


DEFINITION = Definition("layernorm", torch_classes, torch_read, keras_classes, keras_read, keras_targets)
