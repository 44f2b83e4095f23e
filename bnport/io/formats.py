"""Checkpoint file types by name: the one table of suffixes (standard library only)."""

from __future__ import annotations

from pathlib import Path

from bnport.core.frameworks import KERAS, TORCH
from bnport.errors import UsageError

PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS = ".safetensors"
TORCH_SUFFIXES = (*PICKLE_SUFFIXES, SAFETENSORS)
KERAS_ARCHIVE = ".keras"
WEIGHTS_H5 = ".weights.h5"
LEGACY_H5 = ".h5"
KERAS_SUFFIXES = (KERAS_ARCHIVE, WEIGHTS_H5, LEGACY_H5)  # most specific first: ".weights.h5" before ".h5"


INDEX_SUFFIX = ".index.json"  # a shard index: {"weight_map": {key: shard file}}
#: what a hub folder may hold (PyTorch), in the order looked for
HUB_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def is_torch_source(path: str | Path) -> bool:
    """A PyTorch checkpoint to read: a state-dict file, a shard index, or a hub folder holding one."""
    path = Path(path)
    if path.is_dir():
        return any((path / name).is_file() for name in HUB_FILES)
    return path.suffix in TORCH_SUFFIXES or path.name.endswith(INDEX_SUFFIX)


def files_to_write(src: str | Path, folder: Path) -> tuple[Path, Path]:
    """Two destination files in ``folder`` for converting ``src`` (the other framework's usual suffixes), to name in a
    message when a folder is given where a file is wanted."""
    name = Path(src).name.split(".")[0] or "model"
    other = (WEIGHTS_H5, KERAS_ARCHIVE) if framework_of_file(src) == TORCH else (SAFETENSORS, ".pt")
    return folder / (name + other[0]), folder / (name + other[1])


def keras_kind(path: str | Path) -> str | None:
    """``.keras``, ``.weights.h5`` or ``.h5`` (legacy) from a file name; None for anything else."""
    name = Path(path).name
    return next((s for s in KERAS_SUFFIXES if name.endswith(s)), None)


def framework_of_file(path: str | Path) -> str:
    """``torch`` or ``keras`` from a checkpoint's name (a folder or shard index of PyTorch weights is ``torch``)."""
    if Path(path).suffix in TORCH_SUFFIXES or is_torch_source(path):
        return TORCH
    if keras_kind(path) is not None:
        return KERAS
    raise UsageError(f"{path}: unknown checkpoint type; PyTorch {', '.join(TORCH_SUFFIXES)}, "
                     f"Keras {', '.join(KERAS_SUFFIXES)}")
