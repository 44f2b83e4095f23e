"""Keras checkpoint files: ``.keras`` archives (safe mode), ``.weights.h5`` and legacy Keras 2 ``.h5`` weights."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
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


def save(model: keras.Model, path: str | Path, values: list[tuple[keras.Variable, object]] | None = None) -> None:
    """Write ``model`` atomically: a ``.keras`` archive, ``.weights.h5``, or legacy ``.h5`` weights.

    ``values``: (variable, value) pairs saved in place of those variables' own values (which may be unset, see
    :mod:`bnport.keras_hollow`); Keras reads them from a ``keras.StatelessScope``, so the model is not changed.
    """
    path = Path(path)
    kind = kind_of(path)
    with atomic_path(path, suffix=kind) as tmp, _skipsets_cached():
        scope = keras.StatelessScope(state_mapping=values, initialize_variables=False) if values else nullcontext()
        with scope:
            if kind == WEIGHTS_H5:
                model.save_weights(tmp)
            else:
                model.save(tmp)  # a .keras archive, or the legacy Keras 2 HDF5 file for a plain .h5


@contextmanager
def _skipsets_cached() -> Iterator[None]:
    """Let Keras's saver find the attribute skip sets it computes (about 0.4 s of a ResNet-50 save).

    Keras 3.15.1 (the pinned version) caches ``get_attr_skipset`` under ``saving_attr_skipset_<type>`` but looks it up
    under ``saving_attr_skiplist_<type>``, so every layer it saves builds a throwaway ``Layer()`` to list that
    class's attributes. This stores the sets under the name looked up for the duration of one save, and leaves
    Keras's per-thread state as it was. Anything unexpected (Keras renamed things) just skips the shortcut.
    """
    try:
        from keras.src.backend.common import global_state
        from keras.src.saving import saving_lib

        names = {f"saving_attr_skiplist_{t}": t for t in ("Layer", "Functional", "Sequential")}
        before = {name: global_state.get_global_attribute(name) for name in names}
        for name, obj_type in names.items():
            if before[name] is None:
                global_state.set_global_attribute(name, saving_lib.get_attr_skipset(obj_type))
    except Exception:  # an optimisation only: without it Keras computes the sets itself
        yield
        return
    try:
        yield
    finally:
        for name, value in before.items():
            global_state.set_global_attribute(name, value)
