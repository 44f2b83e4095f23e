"""Tell a PyTorch model from a Keras one without importing either framework."""

from __future__ import annotations

import sys

from bnport.errors import UsageError

TORCH, KERAS = "torch", "keras"


def framework_of(model: object) -> str:
    """``"torch"`` for a ``torch.nn.Module``, ``"keras"`` for a Keras layer or model.

    Keras is asked first: on Keras's PyTorch backend every Keras layer is also a ``torch.nn.Module``. A PyTorch module
    wrapped in Keras's ``TorchModuleWrapper`` is refused with what it is: its weights are PyTorch's, held in the
    wrapped module, and a port between it and a PyTorch model would be PyTorch to PyTorch.
    """
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.layers.Layer):
        wrapper = getattr(keras.layers, "TorchModuleWrapper", None)
        if wrapper is not None and isinstance(model, wrapper):
            inner = getattr(model, "module", None)
            raise UsageError(f"Keras layer '{model.name}' is a TorchModuleWrapper around the PyTorch module "
                             f"{type(inner).__module__}.{type(inner).__name__}: its weights are PyTorch's; pass the "
                             "wrapped module (its .module) as the PyTorch model")
        return KERAS
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return TORCH
    raise UsageError(f"expected a torch.nn.Module or a Keras model. Received: {type(model).__module__}."
                     f"{type(model).__name__}")


def torch_and_keras(a: object, b: object) -> tuple[object, object]:
    """Order two models as (PyTorch, Keras); one of each is required."""
    fa, fb = framework_of(a), framework_of(b)
    if {fa, fb} != {TORCH, KERAS}:
        raise UsageError(f"one PyTorch and one Keras model are needed. Received: {fa} and {fb}")
    return (a, b) if fa == TORCH else (b, a)
