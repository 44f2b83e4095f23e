"""Process-level memory tuning for the command line (glibc only; a no-op elsewhere)."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

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
