"""The garbage collector paused while bnport exports and runs both models (standard library only).

An export makes hundreds of thousands of objects that live while it runs (tf2onnx's graph, the traced TensorFlow
or TorchScript graph, Keras's symbolic tensors). So many survivors make the collector walk the whole heap, the
frameworks' millions of objects included, twice in a tapped DenseNet-121 verify: about half a second that frees
nothing (docs/performance.md). :func:`paused` turns automatic collection off for the duration and, when it ends,
collects the youngest generation once, where everything made meanwhile still is, so that bnport's cyclic garbage
is freed at once, inside the timed call, rather than by a later collection in the user's code.

The collector is process-wide, so the pause follows the rules of :mod:`bnport.adapters.swaps`: re-entrant and
thread-safe (one count under a lock: the collector is enabled again when the last holder leaves, and only if it
was enabled when the first came), and undone on every exit path. A process that disabled its collector keeps it
disabled. A thread that disables the collector while another holds a pause has it enabled again at the end.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_holders = 0
_was_enabled = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside the block; on leaving it (the last holder), the collector is enabled again if
    it was before and generation 0, everything made inside, is collected once."""
    global _holders, _was_enabled
    with _lock:
        if _holders == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            resume = _holders == 0 and _was_enabled
            if resume:
                gc.enable()
        if resume:
            gc.collect(0)
