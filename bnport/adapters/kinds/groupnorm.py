"""Kind ``groupnorm``: GroupNorm, and InstanceNorm1d/2d/3d (a GroupNorm with one channel per group) <->
GroupNormalization (channels on the last axis)."""

from __future__ import annotations

from bnport.adapters.kinds import Definition
from bnport.adapters.kinds.layernorm import channel_axis_is_last, keras_affine, keras_targets, torch_affine
from bnport.core import kinds
from bnport.core.layers import LayerSpec
from bnport.errors import UnsupportedLayerError

KIND = kinds.declare(kinds.Kind("groupnorm", "GroupNorm", "GroupNormalization",
                                reduction=lambda spec: int(spec.attrs.get("channels") or 1)))


def torch_classes() -> tuple[type, ...]:
    from torch import nn

    return (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d)


def torch_read(module) -> LayerSpec:
    from torch import nn

    if isinstance(module, nn.GroupNorm):
        return LayerSpec("groupnorm", torch_affine(module, module.affine),
                         {"epsilon": float(module.eps), "groups": module.num_groups, "channels": module.num_channels})
    if module.track_running_stats:  # eval mode then normalizes with running statistics, which no GroupNorm has
        raise UnsupportedLayerError(
            f"{type(module).__name__} with track_running_stats=True normalizes with running statistics in eval mode; "
            "Keras has no such layer (GroupNormalization normalizes each sample with its own statistics)")
    return LayerSpec("groupnorm", torch_affine(module, module.affine),
                     {"epsilon": float(module.eps), "groups": module.num_features, "channels": module.num_features})


def keras_classes() -> tuple[type, ...]:
    import keras

    return (keras.layers.GroupNormalization,)


def keras_read(layer, get, flatten_from=None) -> LayerSpec:
    channel_axis_is_last(layer, layer.axis)
    arrays = keras_affine(layer, get)
    return LayerSpec("groupnorm", arrays, {"epsilon": float(layer.epsilon), "groups": layer.groups,
                                           "channels": next(iter(arrays.values())).shape[0] if arrays else None})


DEFINITION = Definition("groupnorm", torch_classes, torch_read, keras_classes, keras_read, keras_targets)
