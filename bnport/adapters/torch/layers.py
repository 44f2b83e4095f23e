"""PyTorch side of every supported layer: read a module into a neutral spec, write a spec into a module."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnport.adapters import kinds as kind_defs
from bnport.adapters.kinds.scale import parameter_scale_class
from bnport.adapters.torch import batchnorm as torch_bn
from bnport.adapters.torch import zoo as torch_zoo
from bnport.adapters.torch.batchnorm import numpy_to_tensor
from bnport.core import padding as pad
from bnport.core.layers import AnySpec, Write, check_shape
from bnport.core.layers import check_droppable as _check_droppable
from bnport.core.spec import BatchNormSpec, dtype_name
from bnport.errors import IncompatibleLayerError, UnsupportedLayerError

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


#: the scale parameter of torchvision's ConvNeXt seen as a layer (bnport/adapters/kinds/scale.py)
ParameterScale = parameter_scale_class()
kind_defs.definitions()  # every built-in kind declared (bnport/adapters/kinds/)


def _reader(module: nn.Module):
    """The reader of the kind covering ``module`` (a user's registered pair, or the first torch.nn class in its MRO
    that bnport maps) if the module computes what that class computes
    (:func:`bnport.adapters.torch.zoo.computes_as`); else None."""
    found = kind_defs.torch_definition(module)
    if found is None:
        return None
    base, definition = found
    return definition.torch_read if base is type(module) or torch_zoo.computes_as(module, base) else None


def supported(module: nn.Module) -> bool:
    """Whether bnport can read and write this module."""
    return torch_bn.is_batchnorm(module) or _reader(module) is not None


def derives_from_mapped(module: nn.Module) -> bool:
    """Whether a torch.nn class bnport maps is in ``module``'s MRO (then it is one layer, mapped or not)."""
    return kind_defs.torch_definition(module) is not None or isinstance(module, _BatchNorm)


def why_unsupported(module: nn.Module) -> str:
    """A few words on why a weight-holding module has no mapping."""
    found = kind_defs.torch_definition(module)
    base = found[0] if found is not None else _BatchNorm if isinstance(module, _BatchNorm) else None
    if base is None:
        return type(module).__name__
    return f"{type(module).__name__}: a {base.__name__} subclass with a forward of its own, which bnport does not know"


def holds_weights(module: nn.Module) -> bool:
    """Whether the module itself (not its children) owns parameters or buffers.

    Read from the module's own ``_parameters`` and ``_buffers`` dicts (what ``parameters(recurse=False)`` walks):
    it is asked of every module call while tracing, where the public generator costs more than the rest of the
    check (docs/performance.md).
    """
    own = getattr(module, "_parameters", None), getattr(module, "_buffers", None)
    if own[0] is None or own[1] is None:  # not the nn.Module layout: the public path
        return any(True for _ in module.parameters(recurse=False)) or any(
            b is not None for _, b in module.named_buffers(recurse=False))
    return any(p is not None for p in own[0].values()) or any(b is not None for b in own[1].values())


def read(module: nn.Module) -> AnySpec:
    """The neutral spec of a supported module (its arrays are views of the module's memory: read, do not keep)."""
    if torch_bn.is_batchnorm(module):
        return torch_bn.from_torch(module, copy=False)  # views, read while porting, as the other layers' are
    reader = _reader(module)
    if reader is None:
        raise UnsupportedLayerError(f"bnport has no mapping for torch {why_unsupported(module)}")
    return reader(module)


def prepare(spec: AnySpec, module: nn.Module, name: str) -> Write:
    """Check that a spec fits ``module`` (kind, shapes, dtypes) and return what writing it sets, writing nothing."""
    if isinstance(spec, BatchNormSpec):
        return Write(module, *torch_bn.prepare(spec, module))
    own = read(module)
    if own.kind != spec.kind:
        raise IncompatibleLayerError(f"layer '{name}' is a {own.kind} but the source is a {spec.kind}")
    if "write_refused" in own.attrs:
        raise UnsupportedLayerError(f"layer '{name}': {own.attrs['write_refused']}")
    write = Write(module)
    for key, target, value in kind_defs.torch_definition(module)[1].torch_targets(module, spec, name):
        if target is None:
            _check_droppable(name, key, value)
            continue
        if value is None:
            value = (torch.ones if key == "weight" else torch.zeros)(target.shape, dtype=target.dtype).numpy()
        check_shape(name, key, value.shape, tuple(target.shape))
        if str(target.dtype)[6:] != dtype_name(value):
            raise IncompatibleLayerError(
                f"layer '{name}': {key} is {str(target.dtype)[6:]} but the source is {value.dtype.name}"
            )
        write.values.append((target, value))
    if "epsilon" in spec.attrs and hasattr(module, "eps"):
        write.settings["eps"] = spec.attrs["epsilon"]
    return write


def commit(writes: list[Write]) -> None:
    """Set every write's attributes and copy its values in; BatchNorm modules are left in eval mode."""
    with torch.no_grad():
        for write in writes:
            for attr, value in write.settings.items():
                setattr(write.layer, attr, value)
            for tensor, value in write.values:
                tensor.copy_(numpy_to_tensor(value))
            if torch_bn.is_batchnorm(write.layer):
                write.layer.eval()


def state_after(writes: list[Write], model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The state dict ``model`` would have once ``writes`` are committed, made from the written values without
    touching the model (which may be on the ``meta`` device); None if the writes leave an entry unset."""
    entries = model.state_dict(keep_vars=True)
    keys: dict[int, list[str]] = {}
    for key, tensor in entries.items():
        keys.setdefault(id(tensor), []).append(key)  # a tied parameter has several names
    state = {}
    for write in writes:
        for tensor, value in write.values:
            value = numpy_to_tensor(value if value.flags.writeable else np.array(value))
            for key in keys.get(id(tensor), []):
                state[key] = value
    return {key: state[key] for key in entries} if len(state) == len(entries) else None


__all__ = ["commit", "holds_weights", "padding", "prepare", "read", "state_after", "supported"]


def settings(module: nn.Module) -> dict[str, object]:
    """Settings a state dict does not store but the output depends on (epsilon) or training does (momentum)."""
    out = {}
    if hasattr(module, "eps"):
        out["epsilon"] = float(module.eps)
    if isinstance(module, _BatchNorm):
        out["momentum"] = module.momentum
    elif torch_zoo.is_frozen_batchnorm(module):
        out["momentum"] = round(1.0 - torch_bn.FROZEN_MOMENTUM, 15)  # PyTorch's convention: statistics never move
    return out


def padding(module: nn.Module, explicit: pad.Sides | None) -> pad.Padding | None:
    """The zero padding a convolution's input gets (``explicit``: from padding operations feeding it directly);
    None for other modules. timm's ``Conv2dSame`` pads TensorFlow's way ("same") at run time."""
    if not isinstance(module, _CONV):
        return None
    rank = len(module.kernel_size)
    if explicit is not None and len(explicit) < rank:  # F.pad of the last axes only
        explicit = pad.none(rank - len(explicit)) + tuple(explicit)
    padded = explicit is not None and len(explicit) == rank and any(map(any, explicit))
    explicit = explicit if explicit is not None and len(explicit) == rank else pad.none(rank)
    how = f"F.pad {pad.text(explicit)} before " if padded else ""
    if type(module).__name__ == "Conv2dSame":
        return pad.Padding(explicit, (0,) * rank, True, how + "timm Conv2dSame (TensorFlow 'same')")
    if module.padding == "same":
        return pad.Padding(explicit, (0,) * rank, True, how + "padding='same'")
    if module.padding == "valid":
        return pad.Padding(explicit, (0,) * rank, False, how + "padding='valid'")
    own = tuple(int(p) for p in module.padding)
    return pad.Padding(explicit, own, False, how + f"padding={own}")
