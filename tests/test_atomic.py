"""Atomic writes: temporary file, flushed to disk while it is written, then renamed; nothing left on failure."""

from __future__ import annotations

import os
import threading
import time

import pytest

from bnport.io import atomic
from bnport.io.atomic import atomic_path


def flush_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "bnport-flush"]


def test_a_large_file_is_flushed_while_it_is_written(tmp_path, monkeypatch):
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (calls.append(os.fstat(fd).st_size), real(fd)))
    monkeypatch.setattr(atomic, "FLUSH_STEP", 2**20)
    monkeypatch.setattr(atomic, "FLUSH_TICK", 0.002)
    dst = tmp_path / "out.bin"
    with atomic_path(dst) as tmp, open(tmp, "wb") as f:
        for i in range(4):
            f.write(os.urandom(2**20))
            f.flush()
            deadline = time.monotonic() + 2
            while len(calls) < i + 1 and time.monotonic() < deadline:
                time.sleep(0.002)
    assert calls and all(size >= 2**20 for size in calls) and calls == sorted(calls)
    assert dst.stat().st_size == 4 * 2**20 and not flush_threads()


def test_a_small_file_is_not_flushed_early_and_a_failure_leaves_nothing(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append(fd))
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"partial")
        time.sleep(0.05)
        raise RuntimeError("writer failed")
    assert calls == [] and list(tmp_path.iterdir()) == [] and not flush_threads()
