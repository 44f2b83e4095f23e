"""Keras checkpoint files: ``.keras`` archives (safe mode), ``.weights.h5`` and legacy Keras 2 ``.h5`` weights."""

from __future__ import annotations

import functools
import math
import shutil
from contextlib import nullcontext
from pathlib import Path

import keras
import numpy as np

from bnport.adapters.keras.compat import keras as keras_compat
from bnport.errors import CheckpointError, one_line
from bnport.io.atomic import atomic_path
from bnport.io.formats import KERAS_ARCHIVE, KERAS_SUFFIXES, WEIGHTS_H5, keras_kind


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
        with keras_compat.serializing_without_tensorflow():
            return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        first = one_line(exc)
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
        first = one_line(exc)
        raise CheckpointError(f"{path} could not be loaded into Keras model '{model.name}': {first}") from exc


def save(model: keras.Model, path: str | Path, values: list[tuple[keras.Variable, object]] | None = None) -> None:
    """Write ``model`` atomically: a ``.keras`` archive, ``.weights.h5``, or legacy ``.h5`` weights.

    ``values``: (variable, value) pairs saved in place of those variables' own values (which may be unset, see
    :mod:`bnport.adapters.keras.hollow`); the model is not changed. A ``.weights.h5`` file is written by bnport's store
    (:func:`_save_weights`); the other kinds (and any kind on a Keras without that store's parts) by Keras's own
    save, given values read from a ``keras.StatelessScope``.
    """
    path = Path(path)
    kind = kind_of(path)
    for variable, value in values or []:  # Keras's own routes would raise their own ValueError
        if tuple(np.shape(value)) != tuple(variable.shape):
            raise CheckpointError(f"variable {variable.path}: value of shape {tuple(np.shape(value))} for a "
                                  f"variable of shape {tuple(variable.shape)}")
    if kind != KERAS_ARCHIVE:
        _check_space(model, path)
    with (atomic_path(path, suffix=kind) as tmp, keras_compat.skipsets_cached(),
          keras_compat.serializing_without_tensorflow()):
        if kind == WEIGHTS_H5 and (store := _weights_store()) is not None:
            _save_weights(model, tmp, values or [], store)
            return
        scope = keras.StatelessScope(state_mapping=values, initialize_variables=False) if values else nullcontext()
        with scope:
            if kind == WEIGHTS_H5:
                model.save_weights(tmp)
            else:
                model.save(tmp)  # a .keras archive, or the legacy Keras 2 HDF5 file for a plain .h5


def _check_space(model: keras.Model, path: Path) -> None:
    """Refuse an HDF5 file the destination's file system (or the process's file size limit) has no room for,
    before writing it.

    HDF5 crashes the process (a segmentation fault, h5py issue #914) when a write fails for lack of space; the
    atomic write still leaves no destination, but the error would be a crash. This catches the common case; a
    disk filled by another writer during the save can still end that way (leaving only the temporary file).
    """
    # the data, a generous 4 KiB of HDF5 headers per variable, and 1 MiB for the rest
    needed = sum(math.prod(v.shape) * _itemsize(v) for v in model.weights) + 4096 * len(model.weights) + 2**20
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise CheckpointError(f"could not write {path}: about {needed / 2**20:.1f} MiB needed, "
                              f"{free / 2**20:.1f} MiB free on its file system")
    limit = _file_size_limit()
    if limit is not None and limit < needed:
        raise CheckpointError(f"could not write {path}: about {needed / 2**20:.1f} MiB needed, and this process "
                              f"may write files of at most {limit / 2**20:.1f} MiB (ulimit -f)")


def _file_size_limit() -> int | None:
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    return None if soft == resource.RLIM_INFINITY else soft


def _itemsize(variable: keras.Variable) -> int:
    try:
        return np.dtype(keras.backend.standardize_dtype(variable.dtype)).itemsize
    except TypeError:  # a dtype NumPy does not know: count the widest
        return 8


def _save_weights(model: keras.Model, path: Path, values: list, store_type: type) -> None:
    """What ``model.save_weights(path)`` writes, with ``values`` in place of those variables' own values.

    Keras's saver walks the model and hands each variable to its HDF5 store; bnport's store (a subclass of
    Keras's) writes the given array, or the variable's own memory, straight to the file. Keras's store copies each
    value twice on the way (``np.array`` of a variable reads a copy, then copies it), and the stateless-scope
    route for given values once more (to a tensor on entering the scope; docs/performance.md). Same groups,
    datasets and attributes (tested).
    """
    if not model.built:
        raise CheckpointError(f"Keras model '{model.name}' is not built: it has no weights to save yet")
    store = store_type(path, values)
    try:
        keras_compat.save_state(model, store)
    finally:
        store.close()


@functools.cache
def _weights_store() -> type | None:
    """Keras's HDF5 weights store, writing arrays without copying them; None if this Keras lacks the parts it
    relies on (then :func:`save` uses Keras's own save, with given values read from a stateless scope)."""
    base = keras_compat.weights_store()
    if base is None:
        return None

    class WeightsStore(base):
        def __init__(self, path: Path, values: list) -> None:
            super().__init__(path, mode="w")
            self._given = {id(variable): (variable, value) for variable, value in values}

        def __setitem__(self, key: str, value: object) -> None:
            variable, given = self._given.get(id(value), (None, None))
            if variable is None and (given := keras_compat.memory_of(value)) is not None:
                variable = value
            if variable is None:  # not a variable, or one without a value yet: Keras's own way
                super().__setitem__(key, value)
                return
            array = np.asarray(given)  # a TensorFlow tensor gives a view of its memory
            if tuple(array.shape) != tuple(variable.shape):
                raise CheckpointError(f"variable {variable.path}: value of shape {tuple(array.shape)} for a "
                                      f"variable of shape {tuple(variable.shape)}")
            dtype = keras.backend.standardize_dtype(variable.dtype)
            if dtype == "bfloat16" or array.dtype != np.dtype(dtype):  # as Keras would have converted it
                super().__setitem__(key, keras.ops.convert_to_tensor(given, dtype=variable.dtype))
                return
            if not keras_compat.write_array(self, key, array):  # this Keras's store differs: its own way
                super().__setitem__(key, keras.ops.convert_to_tensor(given, dtype=variable.dtype))

    return WeightsStore
