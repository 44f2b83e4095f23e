"""Keras on PyTorch to ONNX: PyTorch's TorchScript exporter on the Keras model, which is a ``torch.nn.Module`` there.

``model.export(format="onnx")`` on this backend tries the dynamo exporter, then this one; bnport takes this one at
once (an order of magnitude faster, as on the PyTorch side: docs/performance.md). The graph is exported for the
example's batch size: with an open batch axis the TorchScript tracer records every shape as a computed value, and
Keras layers that hand a shape to a PyTorch function needing a constant (LayerNormalization's normalized shape)
then fail to export.

Keras converts every variable each time a layer reads it (``convert_to_tensor``: ``x.to(device)``, ``x.to(dtype)``),
and the tracer records each such ``Tensor.to`` although it returns the tensor itself: 1,311 of the 14,169 nodes
traced from a tapped ResNet-50, and with their arguments about two thirds of the graph. :func:`skip_no_op_to` returns
the tensor without calling the op while bnport exports, so the graph holds only what computes. BatchNorm's vectors
are not reshaped either (:func:`~bnport.adapters.keras.compat.keras_ops.batchnorm_without_reshapes`).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx

from bnport.adapters.keras.compat import keras_ops
from bnport.adapters.swaps import EXPORT_LOCK
from bnport.errors import ExportError

OPSET = 17
#: the graph is exported for the batch size of the example (the cache key holds it)
STATIC_BATCH = True
#: the keywords a ``Tensor.to`` may take and still return its tensor
_DEVICE_KEYS = {"dtype", "device", "non_blocking"}


def _no_op_to(args: tuple, kwargs: dict) -> bool:
    """Whether ``Tensor.to(*args, **kwargs)`` returns its tensor itself: a plain tensor asked for its own dtype and
    device only (``non_blocking`` changes nothing then; ``copy``, ``memory_format`` or another tensor's type are
    left to the op)."""
    import torch

    if not args or type(args[0]) is not torch.Tensor or not set(kwargs) <= _DEVICE_KEYS:
        return False
    x = args[0]
    for target in (*args[1:], kwargs.get("dtype"), kwargs.get("device")):
        if target is None or (isinstance(target, torch.dtype) and target == x.dtype):
            continue
        if not isinstance(target, (str, torch.device)):
            return False
        try:
            if torch.device(target) != x.device:
                return False
        except RuntimeError:  # not a device name: the op says so
            return False
    return True


def skip_no_op_to():
    """A ``TorchFunctionMode`` in which ``Tensor.to`` that would return its tensor returns it without calling the
    op, which the tracer would record. Function modes are thread-local: other threads are not affected."""
    import torch
    from torch.overrides import TorchFunctionMode

    class SkipNoOpTo(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is torch.Tensor.to and _no_op_to(args, kwargs):
                return args[0]
            return func(*args, **kwargs)

    return SkipNoOpTo()


def value_array(variable) -> np.ndarray:
    """The variable's value as an array sharing its memory (the PyTorch side's own ``tensor_view``: bit for bit,
    bfloat16 included); Keras's own conversion for a value that is no tensor. Valid while the variable keeps its
    value: onnxruntime reads it at once."""
    import keras
    import torch

    from bnport.adapters.torch.batchnorm import tensor_view

    value = variable.value
    return tensor_view(value) if isinstance(value, torch.Tensor) else keras.ops.convert_to_numpy(value)


def convert(forward, variables: tuple, shapes: list[tuple], dtypes: list[str], names: list[str], *,
            name: str) -> tuple[onnx.ModelProto, bool]:
    """The ONNX graph of ``forward(*inputs, *weights)`` for inputs of exactly ``shapes`` (a batch of None is 1)."""
    import torch

    class Forward(torch.nn.Module):
        def forward(self, *args):
            return forward(*args)

    data = [torch.zeros(tuple(1 if d is None else d for d in s), dtype=getattr(torch, np.dtype(t).name))
            for s, t in zip(shapes, dtypes, strict=True)]
    weights = [v.value.detach() for v in variables]
    buffer = io.BytesIO()
    try:
        # the lock first: warning filters are global
        with EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad(), keras_ops.convolutions_in_default_layout(), \
                keras_ops.batchnorm_without_reshapes(), skip_no_op_to():
            warnings.simplefilter("ignore")
            torch.onnx.export(Forward(), (*data, *weights), buffer,
                              input_names=list(names),
                              opset_version=OPSET, dynamo=False, do_constant_folding=False,
                              training=torch.onnx.TrainingMode.EVAL)
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed to export Keras '{name}': {exc}") from exc
    return onnx.load_from_string(buffer.getvalue()), False
