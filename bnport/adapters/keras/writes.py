"""Writing many values into Keras variables: checked first, then copied with as little data motion as possible.

A port prepares every layer's :class:`bnport.core.layers.Write` (all checks done, nothing changed) and then commits
them all, so a problem found in the last layer leaves the destination untouched. The values are the neutral
layout's views (a PyTorch kernel seen in Keras's axis order). A strided view is gathered, transposing as it goes,
into a fresh 64-byte-aligned array that TensorFlow takes over as the variable's buffer (DLPack): one copy, where
assigning an array takes two (array -> tensor -> variable). A contiguous value may be the source's own memory,
so it is assigned from a private copy. Kernels are gathered by worker threads while the calling thread writes
the small vectors: numpy's gather and TensorFlow's assignment release the GIL, so the cores share the
transposing; a kernel already copied while the port was planned (:mod:`bnport.adapters.torch.early_kernels`) is
adopted as it is, once the small vectors are written. A conversion does not write the variables at all: :func:`values`
gathers the same way and hands the values to the save (:mod:`bnport.adapters.keras.hollow`).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import keras
import numpy as np

from bnport.core.layers import Write
from bnport.core.spec import dtype_name

if TYPE_CHECKING:
    from bnport.adapters.torch.early_kernels import EarlyKernels

# dtypes numpy exports through DLPack and TensorFlow imports; others (bfloat16, ...) take the copying path
_ADOPTABLE = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"})


def commit(writes: list[Write], threads: int | None = None, early: EarlyKernels | None = None) -> None:
    """Set every write's attributes and assign its values.

    Values that need gathering (strided views: transposed kernels) go to ``threads`` worker threads (default:
    the core count, at most 4); contiguous ones (BatchNorm vectors, biases) are assigned on the calling thread
    meanwhile, their cost being Python call overhead rather than bytes. A kernel ``early`` already holds in
    Keras's layout is not gathered again: TensorFlow adopts that copy.
    """
    _run(writes, threads, _assign, budget=True, early=early)


def values(
    writes: list[Write], threads: int | None = None, early: EarlyKernels | None = None
) -> list[tuple[keras.Variable, object]]:
    """Set every write's attributes and return each variable with its value, for a save that writes them in
    place of the variables' own (:func:`bnport.adapters.keras.files.save`): the variables are not touched.

    Strided views are gathered as in :func:`commit` (TensorFlow tensors adopting the gathered memory); contiguous
    values are returned as they are (they may be the source's memory: read them, do not keep them).
    """
    out: list[tuple[keras.Variable, object]] = []

    def keep(pair: tuple[keras.Variable, object]) -> None:
        variable, value = pair
        out.append((variable, _adoptable(value) if _strided(value) else value))

    _run(writes, threads, keep, budget=False, early=early)  # all kept: bounding bytes in flight gains nothing
    return out


def _run(writes: list[Write], threads: int | None, fn, *, budget: bool, early: EarlyKernels | None) -> None:
    for write in writes:
        for attr, value in write.settings.items():
            setattr(write.layer, attr, value)
    pending = [pair for write in writes for pair in write.values]
    claimed = []  # (variable, value, its early copy still being made)
    if early is not None:
        rest = []
        for variable, value in pending:
            copy = early.claim(value) if _strided(value) and dtype_name(value) in _ADOPTABLE else None
            if copy is None:
                rest.append((variable, value))
            else:
                claimed.append((variable, value, copy))
        pending = rest

    def finish_early() -> None:  # after the small values: the early copies have had that long to finish
        if not claimed:
            return
        import tensorflow as tf

        made = early.wait()
        for variable, value, copy in claimed:  # the copy adopted, not copied; the usual gather if copying failed
            fn((variable, tf.experimental.dlpack.from_dlpack(copy.__dlpack__()) if made else value))

    gather = sorted((p for p in pending if _strided(p[1])), key=lambda p: -p[1].nbytes)
    direct = [p for p in pending if not _strided(p[1])]
    threads = threads or min(4, os.cpu_count() or 1)
    if threads == 1 or not gather:
        for pair in direct + gather:
            fn(pair)
        finish_early()
        return
    limit = _Budget(int(gather[0][1].nbytes * 1.5) if budget else sum(p[1].nbytes for p in gather))
    with ThreadPoolExecutor(threads, thread_name_prefix="bnport-write") as pool:
        futures = [pool.submit(limit.run, fn, pair) for pair in gather]  # largest first: they finish together
        for pair in direct:
            fn(pair)
        finish_early()
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


def _strided(value: object) -> bool:
    return isinstance(value, np.ndarray) and not value.flags.c_contiguous


def _assign(pair: tuple[keras.Variable, object]) -> None:
    variable, value = pair
    target = _tf_variable(variable)
    if _strided(value):
        value = _adoptable(value) if target is not None else _gathered(value)
    if target is None:
        variable.assign(value)
        return
    import tensorflow as tf

    if isinstance(value, np.ndarray):
        # a contiguous array may be the source's own memory, and TensorFlow's assignment can take over the buffer
        # of a tensor made for it from an array: give it a copy (the tests check no memory is shared)
        value = np.array(value, copy=True)
    tf.raw_ops.AssignVariableOp(resource=target.handle, value=value, validate_shape=True)


def _adoptable(value: np.ndarray):
    """``value`` gathered into fresh aligned memory, as a TensorFlow tensor owning that memory when it can."""
    value = _gathered(value)
    if keras.backend.backend() != "tensorflow" or dtype_name(value) not in _ADOPTABLE:
        return value
    import tensorflow as tf

    return tf.experimental.dlpack.from_dlpack(value.__dlpack__())  # TensorFlow adopts this fresh memory


def _tf_variable(variable: keras.Variable):
    """The TensorFlow variable behind a Keras one (None off TensorFlow, or in a scope that swaps values).

    Keras's own ``assign`` converts, casts and checks the shape again on every call; bnport has checked shape and
    dtype in :func:`bnport.adapters.keras.layers.prepare`, so it runs TensorFlow's assignment op on the variable's
    handle directly (the op checks the shape again; timings in docs/performance.md).
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
