"""Temporary replacements of third-party attributes, safe in the processes bnport lives in (standard library only).

A few third-party functions are replaced while bnport exports (tf2onnx's graph walks, Keras's XLA-compiled
convolution: see each framework's ``compat`` module for what and why). An attribute of a module or class is
process-wide by nature, so three rules apply to every replacement:

* One lock, :data:`EXPORT_LOCK`, is held for the whole of every bnport export, PyTorch's and Keras's (torch's
  legacy exporter keeps global state too): bnport's exports run one at a time, whatever thread calls them.
* A replacement acts only in the thread that holds the swap. Any other thread calling the attribute meanwhile (a
  user's own tf2onnx conversion, a Keras convolution) gets the original behaviour.
* Every attribute is put back on every exit path, exceptions and interrupts included.

An exception raised by bnport's replacement itself (not by the original it delegates to) is recorded and raised
as :class:`~bnport.errors.PatchError`, even where the library would have swallowed it, so that a bug of bnport
is never reported as a failure of the library.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bnport.errors import PatchError

#: held for the whole of each bnport export (re-entrant: an export may call another)
EXPORT_LOCK = threading.RLock()

_local = threading.local()


def _active() -> bool:
    return getattr(_local, "depth", 0) > 0


@dataclass(frozen=True)
class Replacement:
    """``owner.name`` (a module or class attribute) replaced by ``make(original)`` while a :class:`Swap` holds."""

    owner: Any
    name: str
    make: Callable[[Callable], Callable]

    @property
    def label(self) -> str:
        return f"{getattr(self.owner, '__module__', '')}.{getattr(self.owner, '__name__', self.owner)}.{self.name}"


_FROM_ORIGINAL = "_bnport_raised_by_original"


def _tagged(original: Callable) -> Callable:
    """``original``, whose exceptions are marked as its own (so they pass through the replacement unchanged)."""

    @functools.wraps(original)
    def call(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except BaseException as exc:
            with contextlib.suppress(AttributeError):  # an exception type with __slots__ stays unmarked
                setattr(exc, _FROM_ORIGINAL, True)
            raise

    return call


@dataclass
class Swap:
    """A context manager installing :class:`Replacement` s under :data:`EXPORT_LOCK`, for the calling thread only.

    ``library`` names the library patched, for messages. ``failures`` lists what bnport's own replacements raised;
    :meth:`check` raises the first as :class:`~bnport.errors.PatchError` (call it before trusting the result).
    """

    library: str
    replacements: tuple[Replacement, ...]
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    _saved: list[tuple[Any, str, bool, Any]] = field(default_factory=list)

    def __enter__(self) -> Swap:
        EXPORT_LOCK.acquire()
        try:
            for r in self.replacements:
                own = r.name in vars(r.owner)
                original = vars(r.owner)[r.name] if own else getattr(r.owner, r.name)
                self._saved.append((r.owner, r.name, own, original))
                setattr(r.owner, r.name, self._guarded(r, original))
            _local.depth = getattr(_local, "depth", 0) + 1
        except BaseException:
            self._restore()
            EXPORT_LOCK.release()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            _local.depth -= 1
            self._restore()
        finally:
            EXPORT_LOCK.release()

    def _restore(self) -> None:
        while self._saved:
            owner, name, own, original = self._saved.pop()
            if own:
                setattr(owner, name, original)
            else:
                delattr(owner, name)

    def _guarded(self, r: Replacement, original: Callable) -> Callable:
        fast = r.make(_tagged(original))
        failures = self.failures

        @functools.wraps(original)
        def call(*args, **kwargs):
            if not _active():  # another thread: the library's own behaviour
                return original(*args, **kwargs)
            try:
                return fast(*args, **kwargs)
            except Exception as exc:
                if getattr(exc, _FROM_ORIGINAL, False):
                    raise
                failures.append((r.label, exc))
                raise _patch_error(r.label, exc) from exc

        return call

    def check(self) -> None:
        """Raise what one of bnport's replacements raised during the swap, if anything (the library may have caught
        it and gone on)."""
        if self.failures:
            label, exc = self.failures[0]
            raise _patch_error(label, exc) from exc


def _patch_error(label: str, exc: BaseException) -> PatchError:
    return PatchError(f"bnport's replacement of {label} failed: {type(exc).__name__}: {exc}")

