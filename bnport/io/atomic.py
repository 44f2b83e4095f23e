"""Write files atomically: a temporary file in the destination's folder, then one rename (stdlib only).

A crash or kill mid-write leaves the old destination (or none) and at most a stray temporary file whose
name starts with ``.bnport-tmp-``; never a half-written destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from bnport.errors import CheckpointError


def check_destination(dst: Path, *, force: bool, sources: tuple[Path, ...] = ()) -> None:
    """Refuse a destination that is a source, a directory, an existing file without ``force``, or unwritable."""
    for src in sources:
        if dst.exists() and src.exists() and os.path.samefile(dst, src):
            raise CheckpointError(f"the destination {dst} is the source file; write to another path")
    if dst.is_dir():
        raise CheckpointError(f"the destination {dst} is a directory; give a file name")
    if dst.exists() and not force:
        raise CheckpointError(f"the destination {dst} exists; pass --force (force=True) to replace it")
    folder = dst.parent  # Path("x").parent is Path(".")
    if not folder.is_dir():
        raise CheckpointError(f"the destination folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise CheckpointError(f"the destination folder {folder} is not writable")


def _final_mode(dst: Path) -> int:
    """The replaced file's mode, or what a newly created file gets under the current umask."""
    try:
        return dst.stat().st_mode & 0o777
    except FileNotFoundError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(dst: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``dst`` (ending in ``suffix``); on success rename it onto ``dst``."""
    dst = Path(dst)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".bnport-tmp-", suffix=suffix, dir=dst.parent)
        os.close(fd)
    except OSError as exc:
        raise CheckpointError(f"could not write {dst}: {exc.strerror or exc}") from exc
    tmp_path, flusher = Path(tmp), None
    try:
        flusher = _EarlyFlush(tmp_path)
        yield tmp_path
        flusher.stop()
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _final_mode(dst))
        os.replace(tmp_path, dst)
    except CheckpointError:
        raise
    except OSError as exc:
        raise CheckpointError(f"could not write {dst}: {exc.strerror or exc}") from exc
    finally:
        if flusher is not None:
            flusher.stop()
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()


#: bytes written between two early flushes, and how often the flushing thread looks (seconds)
FLUSH_STEP, FLUSH_TICK = 16 * 2**20, 0.02


class _EarlyFlush:
    """Make a file durable while it is being written, so the final ``fsync`` has little left to do.

    A thread flushes the file's data to disk (``fdatasync``, which releases the GIL) each time another
    :data:`FLUSH_STEP` bytes have been written, so the disk works while the file is written instead of after
    (docs/performance.md). The final ``fsync`` in
    :func:`atomic_path` still guarantees durability; this only moves work earlier.
    """

    def __init__(self, path: Path) -> None:
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(path, FLUSH_STEP, FLUSH_TICK), daemon=True,
                                        name="bnport-flush")
        self._thread.start()

    def _run(self, path: Path, step: int, every: float) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return
        sync = getattr(os, "fdatasync", os.fsync)  # data only, where the system has it
        try:
            flushed = 0
            while not self._stopped.wait(every):
                size = os.fstat(fd).st_size
                if size - flushed >= step:
                    sync(fd)
                    flushed = size
        except OSError:
            pass  # only an optimisation: the final fsync reports any real problem
        finally:
            os.close(fd)

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
