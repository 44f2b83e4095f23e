"""Keras checkpoint files: ``.keras`` archives (safe mode), ``.weights.h5`` and legacy Keras 2 ``.h5`` weights."""

from __future__ import annotations

from pathlib import Path

import keras

from bnport.atomic import atomic_path
from bnport.errors import CheckpointError
from bnport.formats import KERAS_ARCHIVE, KERAS_SUFFIXES, WEIGHTS_H5, keras_kind


def kind_of(path: Path) -> str:
    """``.keras``, ``.weights.h5`` or ``.h5`` (legacy), from the file name."""
    kind = keras_kind(path)
    if kind is None:
        raise CheckpointError(f"{path}: not a Keras file suffix ({', '.join(KERAS_SUFFIXES)})")
    return kind


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` archive with ``safe_mode=True`` (no Lambda bytecode, no unknown custom objects)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Keras file not found: {path}")
    if kind_of(path) != KERAS_ARCHIVE:
        raise CheckpointError(f"{path} holds weights only; give the model with --keras-model FACTORY")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} could not be loaded safely as a Keras model: {first}") from exc


def load_weights(model: keras.Model, path: str | Path) -> None:
    """Load ``.weights.h5`` / legacy ``.h5`` weights (or a ``.keras`` archive's weights) into ``model``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Keras weights file not found: {path}")
    kind_of(path)
    try:
        model.load_weights(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} could not be loaded into Keras model '{model.name}': {first}") from exc


def save(model: keras.Model, path: str | Path) -> None:
    """Write ``model`` atomically: a ``.keras`` archive, ``.weights.h5``, or legacy ``.h5`` weights."""
    path = Path(path)
    kind = kind_of(path)
    with atomic_path(path, suffix=kind) as tmp:
        if kind == WEIGHTS_H5:
            model.save_weights(tmp)
        else:
            model.save(tmp)  # a .keras archive, or the legacy Keras 2 HDF5 file for a plain .h5
