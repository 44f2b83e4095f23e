"""Keras on PyTorch to ONNX: PyTorch's TorchScript exporter on the Keras model, which is a ``torch.nn.Module`` there.

``model.export(format="onnx")`` on this backend tries the dynamo exporter, then this one; bnport takes this one at
once (an order of magnitude faster, as on the PyTorch side: docs/performance.md). The graph is exported for the
example's batch size: with an open batch axis the TorchScript tracer records every shape as a computed value, and
Keras layers that hand a shape to a PyTorch function needing a constant (LayerNormalization's normalized shape)
then fail to export.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx

from bnport.adapters.keras.compat import keras as keras_compat
from bnport.adapters.swaps import EXPORT_LOCK
from bnport.errors import ExportError

OPSET = 17
#: the graph is exported for the batch size of the example (the cache key holds it)
STATIC_BATCH = True


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
        with EXPORT_LOCK, warnings.catch_warnings(), torch.no_grad(), keras_compat.convolutions_in_default_layout():
            warnings.simplefilter("ignore")
            torch.onnx.export(Forward(), (*data, *weights), buffer,
                              input_names=list(names),
                              opset_version=OPSET, dynamo=False, do_constant_folding=False,
                              training=torch.onnx.TrainingMode.EVAL)
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed to export Keras '{name}': {exc}") from exc
    return onnx.load_from_string(buffer.getvalue()), False
