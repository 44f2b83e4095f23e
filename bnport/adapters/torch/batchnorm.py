"""PyTorch side of the BatchNorm mapping: ``nn.BatchNorm1d/2d/3d`` and ``nn.SyncBatchNorm``.

The only module of the BatchNorm core that imports torch; imported lazily by :mod:`bnport.workflows.batchnorm`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from bnport.core.spec import BatchNormSpec, dtype_name, invert_momentum
from bnport.errors import IncompatibleLayerError, UnsupportedLayerError

#: Input ranks (batch and channel axes included) each module class accepts; None: any rank.
INPUT_NDIMS: dict[type, tuple[int, ...] | None] = {
    nn.BatchNorm1d: (2, 3),
    nn.BatchNorm2d: (4,),
    nn.BatchNorm3d: (5,),
    nn.SyncBatchNorm: None,
}

_CLASS_FOR_NDIM: dict[int, type] = {2: nn.BatchNorm1d, 3: nn.BatchNorm1d, 4: nn.BatchNorm2d, 5: nn.BatchNorm3d}

#: num_batches_tracked written when the source keeps no counter (Keras): the count restarts.
NUM_BATCHES_TRACKED_FROM_KERAS = 0


def tensor_view(tensor: torch.Tensor) -> np.ndarray:
    """A numpy view of a CPU tensor's memory, bit for bit (bfloat16 through ml_dtypes); no copy.

    A tensor on the ``meta`` device (shape and dtype, no memory) gives a read-only array of zeros of its shape
    and dtype that takes no memory either: enough to plan and check a port into a model built on ``meta``.
    """
    tensor = tensor.detach()
    if tensor.is_meta:
        return np.broadcast_to(tensor_view(torch.zeros((), dtype=tensor.dtype)), tuple(tensor.shape))
    tensor = tensor.cpu()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.numpy()


def tensor_to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """Copy a tensor to a numpy array bit for bit."""
    return tensor_view(tensor).copy()


def numpy_to_tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor holding the same bits as ``array`` (bfloat16 through ml_dtypes)."""
    array = np.asarray(array, order="C")  # contiguous, and a 0-d array stays 0-d
    if dtype_name(array) == "bfloat16":
        return torch.from_numpy(array.view(np.int16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def _torch_dtype(name: str) -> torch.dtype:
    return getattr(torch, name)


def _input_ndims(layer: nn.Module) -> tuple[int, ...] | None:
    for cls in type(layer).__mro__:
        if cls in INPUT_NDIMS:
            return INPUT_NDIMS[cls]
    return None


def is_batchnorm(layer: object) -> bool:
    """A ``torch.nn`` BatchNorm (any subclass bnport knows the forward of) or a zoo frozen BatchNorm."""
    from bnport.adapters.torch import zoo as torch_zoo

    if isinstance(layer, _BatchNorm):
        return torch_zoo.computes_as(layer, _BatchNorm)
    return isinstance(layer, nn.Module) and torch_zoo.is_frozen_batchnorm(layer)


def _check_is_batchnorm(layer: object, what: str) -> None:
    if isinstance(layer, _BatchNorm) and not is_batchnorm(layer):
        raise UnsupportedLayerError(
            f"{what} is a {type(layer).__module__}.{type(layer).__name__}, a BatchNorm subclass with a forward of "
            "its own: bnport cannot tell what it computes"
        )
    if not is_batchnorm(layer):
        raise UnsupportedLayerError(
            f"{what} must be a torch.nn BatchNorm1d/2d/3d or SyncBatchNorm module. "
            f"Received: {type(layer).__module__}.{type(layer).__name__}"
        )
    if isinstance(layer, nn.modules.lazy.LazyModuleMixin) and layer.has_uninitialized_params():
        raise UnsupportedLayerError(
            f"{type(layer).__name__} is a lazy module that has not seen an input yet, so it has no "
            "weights to port; run one forward pass first."
        )


def from_torch(layer: nn.Module, *, copy: bool = True) -> BatchNormSpec:
    """Read a PyTorch BatchNorm module into a :class:`~bnport.core.spec.BatchNormSpec`.

    The module's own ``eps`` is carried exactly; ``momentum`` is converted to the ONNX/Keras convention
    (``1 - torch``), ``momentum=None`` stays None. Tensors are copied, so later training of the module
    does not change the spec (``copy=False``: views of the module's memory, for a port that reads them once). The
    module's training flag is not part of the state (see ``bnport.explain``).
    """
    read = tensor_to_numpy if copy else tensor_view
    _check_is_batchnorm(layer, "from_torch's layer")
    if not isinstance(layer, _BatchNorm):
        return _from_frozen(layer, read)
    arrays = {
        "gamma": layer.weight,
        "beta": layer.bias,
        "running_mean": layer.running_mean,
        "running_var": layer.running_var,
    }
    arrays = {k: read(v) for k, v in arrays.items() if v is not None}
    dtype = dtype_name(next(iter(arrays.values()))) if arrays else str(torch.get_default_dtype())[6:]
    nbt = getattr(layer, "num_batches_tracked", None)
    return BatchNormSpec(
        channels=int(layer.num_features),
        epsilon=float(layer.eps),
        momentum=None if layer.momentum is None else invert_momentum(layer.momentum),
        dtype=dtype,
        num_batches_tracked=None if nbt is None else int(tensor_view(nbt)),  # 0 on the meta device
        input_ndims=_input_ndims(layer),
        **arrays,
    )


#: the Keras momentum of a frozen BatchNorm: the moving statistics keep all of their old value (never move)
FROZEN_MOMENTUM = 1.0


def _from_frozen(layer: nn.Module, read) -> BatchNormSpec:
    """A frozen BatchNorm (torchvision, timm): affine, statistics that never move, no counter, 4-D inputs."""
    arrays = {k: read(getattr(layer, b)) for k, b in
              (("gamma", "weight"), ("beta", "bias"), ("running_mean", "running_mean"), ("running_var", "running_var"))}
    return BatchNormSpec(channels=int(arrays["running_mean"].shape[0]), epsilon=float(layer.eps),
                         momentum=FROZEN_MOMENTUM, dtype=dtype_name(arrays["running_mean"]), input_ndims=(4,), **arrays)


def _new_module(spec: BatchNormSpec, input_ndim: int | None) -> nn.Module:
    ndims = (input_ndim,) if input_ndim is not None else spec.input_ndims
    classes = {_CLASS_FOR_NDIM.get(d) for d in ndims} if ndims else {None}
    if len(classes) != 1 or None in classes:
        raise IncompatibleLayerError(
            "the spec does not say which BatchNorm class to build (it accepts input ranks "
            f"{spec.input_ndims}); pass input_ndim=2..5 or a module to fill. Received: input_ndim={input_ndim}"
        )
    cls = classes.pop()
    return cls(
        spec.channels,
        eps=spec.epsilon,
        momentum=spec.torch_momentum,
        affine=spec.scale or spec.center,
        track_running_stats=spec.track_running_stats,
        dtype=_torch_dtype(spec.dtype),
    )


def _check_target(spec: BatchNormSpec, module: nn.Module) -> None:
    _check_is_batchnorm(module, "to_torch's module")
    name = type(module).__name__
    if not isinstance(module, _BatchNorm):
        _check_frozen_target(spec, module)
        return
    if module.num_features != spec.channels:
        raise IncompatibleLayerError(
            f"{name} has num_features={module.num_features} but the source has {spec.channels} channels"
        )
    target_ndims = _input_ndims(module)
    if spec.input_ndims and target_ndims and not set(spec.input_ndims) & set(target_ndims):
        raise IncompatibleLayerError(
            f"{name} takes inputs of rank {target_ndims} but the source layer takes rank {spec.input_ndims}"
        )
    if module.track_running_stats != spec.track_running_stats:
        raise IncompatibleLayerError(
            f"{name} has track_running_stats={module.track_running_stats} but the source "
            f"{'tracks' if spec.track_running_stats else 'does not track'} running statistics"
        )
    if not module.affine:
        for field, identity in (("gamma", 1.0), ("beta", 0.0)):
            value = getattr(spec, field)
            if value is not None and not np.all(value == identity):
                raise IncompatibleLayerError(
                    f"{name} has affine=False but the source's {field} is not all {identity:g}; "
                    "build the module with affine=True"
                )
    present = [t for t in (module.weight, module.running_mean) if t is not None]
    if present and str(present[0].dtype)[6:] != spec.dtype:
        raise IncompatibleLayerError(
            f"{name} holds {str(present[0].dtype)[6:]} but the source is {spec.dtype}; "
            f"convert the module first (module.to(torch.{spec.dtype}))"
        )


def to_torch(spec: BatchNormSpec, module: nn.Module | None = None, *, input_ndim: int | None = None) -> nn.Module:
    """Write a spec into a PyTorch BatchNorm module and return it in eval mode.

    Args:
        spec: the layer to write.
        module: a BatchNorm module to fill (its size, rank, flags and dtype are checked, and its ``eps`` and
            ``momentum`` are set to the source's); None builds a new module of the class the spec's input
            rank asks for.
        input_ndim: the input rank to build for, when the spec accepts several or none (a spec read from an
            unbuilt Keras layer).

    A Keras layer without center (scale) becomes an affine module with beta zeros (gamma ones): numerically
    the same layer. ``num_batches_tracked`` is kept from a PyTorch source and set to
    ``NUM_BATCHES_TRACKED_FROM_KERAS`` (0) when the source keeps no counter.
    """
    if module is None:
        module = _new_module(spec, input_ndim)
    settings, values = prepare(spec, module)
    for attr, value in settings.items():
        setattr(module, attr, value)
    with torch.no_grad():
        for tensor, value in values:
            tensor.copy_(numpy_to_tensor(value))
    return module.eval()


def _check_frozen_target(spec: BatchNormSpec, module: nn.Module) -> None:
    name = type(module).__name__
    if int(module.running_mean.shape[0]) != spec.channels:
        raise IncompatibleLayerError(
            f"{name} normalizes {int(module.running_mean.shape[0])} channels but the source has {spec.channels}")
    if not spec.track_running_stats:
        raise IncompatibleLayerError(f"{name} holds running statistics but the source tracks none")
    if spec.input_ndims and 4 not in spec.input_ndims:
        raise IncompatibleLayerError(f"{name} takes 4-D inputs but the source layer takes rank {spec.input_ndims}")
    held = str(module.running_mean.dtype)[6:]
    if held != spec.dtype:
        raise IncompatibleLayerError(f"{name} holds {held} but the source is {spec.dtype}")


def prepare(spec: BatchNormSpec, module: nn.Module) -> tuple[dict[str, object], list[tuple[torch.Tensor, np.ndarray]]]:
    """Check ``module`` against ``spec`` and return what writing it would set, without writing anything.

    Returns the attributes (``eps``, ``momentum``) and each parameter or buffer with the value it gets. A frozen
    BatchNorm has no momentum to set: its statistics never move whatever the source's momentum.
    """
    _check_target(spec, module)
    if not isinstance(module, _BatchNorm):
        ones = np.ones(spec.channels, dtype=spec.dtype)
        return {"eps": spec.epsilon}, [(module.weight, spec.gamma if spec.scale else ones),
                                       (module.bias, spec.beta if spec.center else np.zeros_like(ones)),
                                       (module.running_mean, spec.running_mean), (module.running_var, spec.running_var)]
    values = []
    if module.affine:
        ones = np.ones(spec.channels, dtype=spec.dtype)
        values += [(module.weight, spec.gamma if spec.scale else ones),
                   (module.bias, spec.beta if spec.center else np.zeros_like(ones))]
    if spec.track_running_stats:
        nbt = spec.num_batches_tracked
        values += [(module.running_mean, spec.running_mean), (module.running_var, spec.running_var),
                   (module.num_batches_tracked, np.asarray(NUM_BATCHES_TRACKED_FROM_KERAS if nbt is None else nbt,
                                                           dtype=np.int64))]
    return {"eps": spec.epsilon, "momentum": spec.torch_momentum}, values


__all__ = ["INPUT_NDIMS", "from_torch", "prepare", "to_torch"]


def in_training_mode(model: nn.Module) -> list[str]:
    """Names of the submodules whose output depends on training mode and that are in it (tracked BatchNorm,
    Dropout): run as they are, they compute something other than their eval-mode export."""
    return [name or type(model).__name__ for name, m in model.named_modules() if m.training and (
        (isinstance(m, _BatchNorm) and m.track_running_stats) or isinstance(m, nn.modules.dropout._DropoutNd))]
