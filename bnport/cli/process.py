"""Process-level tuning for the command line: glibc's memory returns (glibc only; a no-op elsewhere), the garbage
collector around the frameworks' imports, and an exit without the interpreter's teardown.

Each applies only in a process the command line owns (:func:`own`, called by the console entry point): a program
that calls ``bnport.cli.main.main`` in its own process keeps its allocator, collector and exit as they are."""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import gc
import os
import sys
from collections.abc import Iterator
from typing import NoReturn

M_MMAP_THRESHOLD = -3
THRESHOLD = 128 * 1024


def return_large_blocks() -> bool:
    """Make glibc give freed blocks over 128 KiB straight back to the system.

    glibc raises its mmap threshold each time a large block is freed, so the per-layer temporaries of a port
    (transposed kernels of up to tens of MiB) end up in a heap that never shrinks. Fixing the threshold keeps
    the peak memory of a conversion near the two copies of the weights it needs (docs/performance.md). Returns
    whether it was applied.
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD))
    except (OSError, AttributeError):
        return False


_owned: list[bool] = []
_exit_code: list[int] = []


def own() -> None:
    """This process is the command line's: glibc returns large blocks (:func:`return_large_blocks`), the
    frameworks are imported as :func:`importing_frameworks` says, and :func:`exit_after_handlers` can end it.
    Call it before the frameworks are imported: exit handlers run last registered first, so theirs run before the
    one registered here."""
    _owned.append(True)
    return_large_blocks()
    atexit.register(_end)


@contextlib.contextmanager
def importing_frameworks() -> Iterator[None]:
    """The frameworks' imports without the garbage collector, and what they made frozen afterwards (``gc.freeze``).

    Importing torch and Keras makes millions of objects that live as long as the process; the collector runs every
    few hundred new objects and in full several times while they are made, and later full collections walk them
    all again, freeing nothing. Measured on ``convert --verify`` of ResNet-50: 0.7 s of collections, 0.04 s with
    this (docs/performance.md). Cycles made by the imports themselves stay uncollected (17 MiB more peak memory
    there). Only in a process the command line owns (:func:`own`)."""
    if not _owned:
        yield
        return
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


def exit_after_handlers(code: int) -> NoReturn:
    """``sys.exit(code)``, and once every exit handler registered after :func:`own` has run (the
    libraries' own: temporary files, logging), the process ends without the interpreter's teardown: freeing every
    module and object one by one and the frameworks' C++ destructors, which the operating system does at once.
    With torch and Keras loaded that teardown costs 0.4-0.9 s after the command's work is done
    (docs/performance.md). Everything the command writes is closed before it returns; the standard streams are
    flushed here."""
    _exit_code.append(code)
    sys.exit(code)


def _end() -> None:
    if not _exit_code:  # not through exit_after_handlers(): an uncaught exception keeps Python's own ending and status
        return
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):  # a closed pipe or stream: nothing reaches it
            stream.flush()
    os._exit(_exit_code[-1])
