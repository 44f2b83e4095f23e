"""Every private part of PyTorch bnport uses, each with its public fallback.

* ``torch._foreach_copy_``: many copies in one call that releases the GIL for the whole list
  (:mod:`bnport.adapters.torch.early_kernels`); without it, one ``Tensor.copy_`` per tensor (same result).
* The legacy TorchScript ONNX exporter (``torch.onnx.export(..., dynamo=False)``, public but deprecated) keeps
  process-wide state (``GLOBALS``): :func:`onnx_export` holds :data:`bnport.adapters.swaps.EXPORT_LOCK` for the
  whole export, so that two threads' exports never interleave.
"""

from __future__ import annotations

import torch

from bnport.adapters.swaps import EXPORT_LOCK


def probe() -> str | None:
    """What the installed PyTorch lacks of the parts above, or None."""
    return None if callable(getattr(torch, "_foreach_copy_", None)) else \
        f"torch {torch.__version__} lacks torch._foreach_copy_ (copies are made one by one)"


def copy_all(copies: list[torch.Tensor], sources: list[torch.Tensor], *, fast: bool = True) -> None:
    """``copies[i].copy_(sources[i])`` for every i, in one GIL-releasing call where PyTorch has it."""
    foreach = getattr(torch, "_foreach_copy_", None) if fast else None
    with torch.no_grad():
        if callable(foreach):
            foreach(copies, sources)
        else:
            for copy, source in zip(copies, sources, strict=True):
                copy.copy_(source)


def onnx_export(*args, **kwargs) -> None:
    """``torch.onnx.export(*args, **kwargs)`` under bnport's export lock."""
    with EXPORT_LOCK:
        torch.onnx.export(*args, **kwargs)
