"""Keep TensorFlow's native log lines off the command line's stderr.

TensorFlow's C++ code writes lines such as ``I0000 00:00:... devices.cc:67] Number of eligible GPUs ...`` straight
to file descriptor 2 before its logging is initialized ("All log messages before absl::InitializeLog() is called
are written to STDERR"), so no ``TF_CPP_MIN_LOG_LEVEL`` hides them, and not only at import (TensorFlow 2.17 writes
one at its first graph optimization). For the length of a command, fd 2 is a pipe read by a thread that passes
everything on except those lines. Only the command line does this: its process is bnport's own.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

#: a native log line: absl's severity letter and date, or the notice absl prints before its first such line
NATIVE = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.-]+:\d+\] |WARNING: All log messages before absl::)")
_LONGEST_PREFIX = 48  # a partial line shorter than this may still turn out to be one: held until it is complete


def _may_become_native(partial: bytes) -> bool:
    probe = partial[:_LONGEST_PREFIX]
    starts = (b"WARNING: All log messages before absl::", b"I0000 ", b"W0000 ", b"E0000 ", b"F0000 ")
    if any(s.startswith(probe) or probe.startswith(s) for s in starts):
        return len(partial) < _LONGEST_PREFIX or bool(NATIVE.match(partial))
    return False


def _pump(source: int, target: int) -> None:
    held = b""
    while chunk := os.read(source, 65536):
        held += chunk
        *lines, held = held.split(b"\n")
        out = b"".join(line + b"\n" for line in lines if not NATIVE.match(line))
        if held and not _may_become_native(held):  # a progress line rewritten in place: pass it on now
            out, held = out + held, b""
        if out:
            os.write(target, out)
    if held and not NATIVE.match(held):
        os.write(target, held)
    os.close(source)


@contextlib.contextmanager
def filtered() -> Iterator[None]:
    """fd 2 through the filter for the ``with`` block; restored (and every line passed on) on any exit."""
    sys.stderr.flush()
    real = os.dup(2)
    read, write = os.pipe()
    os.dup2(write, 2)
    os.close(write)
    pump = threading.Thread(target=_pump, args=(read, real), name="bnport-stderr", daemon=True)
    pump.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last write end closes: the pump reads to the end and stops
        pump.join(timeout=10)
        os.close(real)
