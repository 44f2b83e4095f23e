"""Kind ``scale``: a per-channel scale kept as a bare parameter and multiplied in ``forward`` (torchvision
ConvNeXt's ``layer_scale``, shape (C,) or (C, 1, ..., 1)) <-> keras.applications ConvNeXt's ``LayerScale``."""

from __future__ import annotations

import functools

from bnport.adapters.kinds import Definition
from bnport.core import kinds
from bnport.core.layers import LayerSpec

KIND = kinds.declare(kinds.Kind("scale", "a per-channel scale parameter multiplied in forward (ConvNeXt layer_scale)",
                                "LayerScale", channels=False))


@functools.cache
def parameter_scale_class() -> type:
    """``ParameterScale``: the scale parameter seen as a layer (made on first use: it is a ``torch.nn.Module``)."""
    from torch import nn

    class ParameterScale(nn.Module):
        """A per-channel scale kept as a bare parameter and multiplied in ``forward``, seen as a layer: ``weight`` is
        the parameter, read and written in its own shape."""

        def __init__(self, owner: nn.Module, target: str) -> None:
            super().__init__()
            object.__setattr__(self, "_owner", owner)  # not a submodule: the owner's state dict stays its own
            object.__setattr__(self, "_target", target)

        @property
        def weight(self) -> nn.Parameter:
            return self._owner.get_parameter(self._target)

        @property
        def bias(self) -> None:
            return None

    return ParameterScale


def torch_classes() -> tuple[type, ...]:
    return (parameter_scale_class(),)


def torch_read(module) -> LayerSpec:
    from bnport.adapters.torch.batchnorm import tensor_view

    weight = module.weight
    return LayerSpec("scale", {"weight": tensor_view(weight).reshape(-1)},
                     {"channels": int(weight.shape[0]), "channels_first": weight.ndim > 1})


def torch_targets(module, spec: LayerSpec, name: str = "") -> list:
    value = spec.arrays.get("weight")
    if value is not None and value.size == module.weight.numel():
        value = value.reshape(tuple(module.weight.shape))  # (C,) held as (C, 1, 1)
    return [("weight", module.weight, value)]


def keras_match(layer) -> bool:
    """keras.applications ConvNeXt's ``LayerScale``: ``x * gamma``, one gamma per channel (last axis)."""
    gamma = getattr(layer, "gamma", None)
    return type(layer).__name__ == "LayerScale" and type(layer).__module__.startswith("keras.") and \
        getattr(gamma, "ndim", len(getattr(gamma, "shape", ()))) == 1


def keras_read(layer, get, flatten_from=None) -> LayerSpec:
    gamma = get(layer.gamma)
    return LayerSpec("scale", {"weight": gamma}, {"channels": int(gamma.shape[0])})


def keras_targets(layer, spec: LayerSpec, flatten_from=None, name: str = "") -> list:
    return [("gamma", layer.gamma, spec.arrays.get("weight"))]


DEFINITION = Definition("scale", torch_classes, torch_read, tuple, keras_read, keras_targets, torch_targets,
                        keras_match)
