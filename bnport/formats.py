"""Checkpoint file types by name: the one table of suffixes (standard library only)."""

from __future__ import annotations

from pathlib import Path

from bnport.errors import UsageError
from bnport.frameworks import KERAS, TORCH

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS = ".safetensors"
TORCH_SUFFIXES = (*PICKLE_SUFFIXES, SAFETENSORS)
KERAS_ARCHIVE = ".keras"
WEIGHTS_H5 = ".weights.h5"
LEGACY_H5 = ".h5"
KERAS_SUFFIXES = (KERAS_ARCHIVE, WEIGHTS_H5, LEGACY_H5)  # most specific first: ".weights.h5" before ".h5"


def keras_kind(path: str | Path) -> str | None:
    """``.keras``, ``.weights.h5`` or ``.h5`` (legacy) from a file name; None for anything else."""
    name = Path(path).name
    return next((s for s in KERAS_SUFFIXES if name.endswith(s)), None)


def framework_of_file(path: str | Path) -> str:
    """``torch`` or ``keras`` from a checkpoint's name."""
    if Path(path).suffix in TORCH_SUFFIXES:
        return TORCH
    if keras_kind(path) is not None:
        return KERAS
    raise UsageError(f"{path}: unknown checkpoint type; PyTorch {', '.join(TORCH_SUFFIXES)}, "
                     f"Keras {', '.join(KERAS_SUFFIXES)}")
