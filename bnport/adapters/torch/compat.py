"""Every private part of PyTorch bnport uses, each with its public fallback.

* ``torch._foreach_copy_``: many copies in one call that releases the GIL for the whole list
  (:mod:`bnport.adapters.torch.early_kernels`); without it, one ``Tensor.copy_`` per tensor (same result).
* ``torch._foreach_norm``: every kernel copy's norm in one call that releases the GIL, telling which hold finite
  values only while a port traces (:mod:`bnport.adapters.torch.early_kernels`); without it, nothing is known
  early and the port reads the values as usual (:mod:`bnport.core.health`).
* The legacy TorchScript ONNX exporter (``torch.onnx.export(..., dynamo=False)``, public but deprecated) keeps
  process-wide state (``GLOBALS``): :func:`onnx_export` holds :data:`bnport.adapters.swaps.EXPORT_LOCK` for the
  whole export, so that two threads' exports never interleave.
"""

from __future__ import annotations

import torch

from bnport.adapters.swaps import EXPORT_LOCK


def probe() -> str | None:
    """What the installed PyTorch lacks of the parts above, or None."""
    lacks = [f"torch.{name} ({without})" for name, without in (
        ("_foreach_copy_", "copies are made one by one"),
        ("_foreach_norm", "a port reads every value to check it")) if not callable(getattr(torch, name, None))]
    return f"torch {torch.__version__} lacks " + ", ".join(lacks) if lacks else None


def copy_all(copies: list[torch.Tensor], sources: list[torch.Tensor], *, fast: bool = True) -> None:
    """``copies[i].copy_(sources[i])`` for every i, in one GIL-releasing call where PyTorch has it."""
    foreach = getattr(torch, "_foreach_copy_", None) if fast else None
    with torch.no_grad():
        if callable(foreach):
            foreach(copies, sources)
        else:
            for copy, source in zip(copies, sources, strict=True):
                copy.copy_(source)


def norms(tensors: list[torch.Tensor]) -> list[torch.Tensor] | None:
    """Each tensor's Euclidean norm (0-d tensors) in one GIL-releasing call; None where PyTorch lacks it, or for no
    tensors.

    A norm is finite only if every value is: NaN and infinity carry through the sum of squares. A finite tensor
    whose squares overflow has an infinite norm, which only sends it to the exact check.
    """
    foreach = getattr(torch, "_foreach_norm", None)
    if not callable(foreach) or not tensors:
        return None
    with torch.no_grad():
        return list(foreach(tensors, 2))


def onnx_export(*args, **kwargs) -> None:
    """``torch.onnx.export(*args, **kwargs)`` under bnport's export lock."""
    with EXPORT_LOCK:
        torch.onnx.export(*args, **kwargs)
