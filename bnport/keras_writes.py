"""Writing many values into Keras variables: checked first, then copied with as little data motion as possible.

A port prepares every layer's :class:`bnport.layers.Write` (all checks done, nothing changed) and then commits
them all, so a problem found in the last layer leaves the destination untouched. The values are the neutral
layout's views (a PyTorch kernel seen in Keras's axis order). A strided view is gathered, transposing as it goes,
into a fresh 64-byte-aligned array that TensorFlow takes over as the variable's buffer (DLPack): one copy, where
assigning an array takes two (array -> tensor -> variable). A contiguous value may be the source's own memory,
so TensorFlow copies it. Kernels are gathered by worker threads while the calling thread writes the small
vectors: numpy's gather and TensorFlow's assignment release the GIL, so the cores share the transposing.
A conversion does not write the variables at all: :func:`values` gathers the same way and hands the values to
the save (:mod:`bnport.keras_hollow`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np

from bnport.layers import Write

# dtypes numpy exports through DLPack and TensorFlow imports; others (bfloat16, ...) take the copying path
_ADOPTABLE = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"})


def commit(writes: list[Write], threads: int | None = None) -> None:
    """Set every write's attributes and assign its values.

    Values that need gathering (strided views: transposed kernels) go to ``threads`` worker threads (default:
    the core count, at most 4); contiguous ones (BatchNorm vectors, biases) are assigned on the calling thread
    meanwhile, their cost being Python call overhead rather than bytes.
    """
    _run(writes, threads, _assign, budget=True)


def values(writes: list[Write], threads: int | None = None) -> list[tuple[keras.Variable, object]]:
    """Set every write's attributes and return each variable with its value, for a save that reads them from a
    ``keras.StatelessScope`` (:func:`bnport.keras_files.save`): the variables are not touched.

    Strided views are gathered as in :func:`commit` (TensorFlow tensors adopting the gathered memory); contiguous
    values are returned as they are (they may be the source's memory: read them, do not keep them).
    """
    out: dict[int, tuple[keras.Variable, object]] = {}

    def keep(pair: tuple[keras.Variable, np.ndarray]) -> None:
        variable, value = pair
        out[id(variable)] = (variable, _adoptable(value) if not value.flags.c_contiguous else value)

    _run(writes, threads, keep, budget=False)  # every value is kept: bounding the bytes in flight gains nothing
    return list(out.values())


def _run(writes: list[Write], threads: int | None, fn, *, budget: bool) -> None:
    for write in writes:
        for attr, value in write.settings.items():
            setattr(write.layer, attr, value)
    pending = [pair for write in writes for pair in write.values]
    gather = sorted((p for p in pending if not p[1].flags.c_contiguous), key=lambda p: -p[1].nbytes)
    direct = [p for p in pending if p[1].flags.c_contiguous]
    threads = threads or min(4, os.cpu_count() or 1)
    if threads == 1 or not gather:
        for pair in gather + direct:
            fn(pair)
        return
    limit = _Budget(int(gather[0][1].nbytes * 1.5) if budget else sum(p[1].nbytes for p in gather))
    with ThreadPoolExecutor(threads, thread_name_prefix="bnport-write") as pool:
        futures = [pool.submit(limit.run, fn, pair) for pair in gather]  # largest first: they finish together
        for pair in direct:
            fn(pair)
        for future in futures:
            future.result()  # re-raises a failed assignment here


class _Budget:
    """Bytes being gathered at once, at most ``limit`` (a value larger than the limit runs alone)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used, self.ready = limit, 0, threading.Condition()

    def run(self, fn, pair: tuple[keras.Variable, np.ndarray]) -> None:
        size = pair[1].nbytes
        with self.ready:
            self.ready.wait_for(lambda: self.used == 0 or self.used + size <= self.limit)
            self.used += size
        try:
            fn(pair)
        finally:
            with self.ready:
                self.used -= size
                self.ready.notify_all()


def _assign(pair: tuple[keras.Variable, np.ndarray]) -> None:
    variable, value = pair
    target = _tf_variable(variable)
    if not value.flags.c_contiguous:
        value = _adoptable(value) if target is not None else _gathered(value)
    # a contiguous array may be the source's own memory: TensorFlow copies it (the tests check no memory is shared)
    if target is None:
        variable.assign(value)
    else:
        target.assign(value, read_value=False)


def _adoptable(value: np.ndarray):
    """``value`` gathered into fresh aligned memory, as a TensorFlow tensor owning that memory when it can."""
    value = _gathered(value)
    if keras.backend.backend() != "tensorflow" or value.dtype.name not in _ADOPTABLE:
        return value
    import tensorflow as tf

    return tf.experimental.dlpack.from_dlpack(value.__dlpack__())  # TensorFlow adopts this fresh memory


def _tf_variable(variable: keras.Variable):
    """The TensorFlow variable behind a Keras one (None off TensorFlow, or in a scope that swaps values).

    Keras's own ``assign`` converts, casts and checks the shape at about 0.3 ms a call; bnport has checked
    shape and dtype in :func:`bnport.keras_layers.prepare`, so it assigns to TensorFlow's variable directly.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    target = variable.value
    return target if hasattr(target, "handle") and hasattr(target, "assign") else None


def _gathered(value: np.ndarray, alignment: int = 64) -> np.ndarray:
    """A contiguous copy of ``value`` in memory aligned for TensorFlow's kernels (Eigen checks 64 bytes).

    TensorFlow's assignment adopts the buffer it is given, so the variable ends up living in this memory.
    """
    raw = np.empty(value.nbytes + alignment, np.uint8)
    start = -raw.ctypes.data % alignment
    out = raw[start:start + value.nbytes].view(value.dtype).reshape(value.shape)
    np.copyto(out, value)
    return out
