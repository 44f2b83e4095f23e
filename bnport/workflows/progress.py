"""Progress on a terminal: a bar for a port's layers, a line for verify's stages. Written to stderr only when it
is a terminal (a log or a pipe gets nothing) and only when the caller asks (the CLI unless ``--quiet``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator


def _shown(enabled: bool) -> bool:
    return enabled and sys.stderr.isatty()


def bar(items: list, enabled: bool, label: str = "porting") -> Iterator:
    """``items``, drawing a bar as they are taken (20 items or more: a short loop is over before it is read)."""
    if not _shown(enabled) or len(items) < 20:
        yield from items
        return
    width = 30
    for i, item in enumerate(items, 1):
        done = width * i // len(items)
        sys.stderr.write(f"\r  {label} [{'#' * done}{'.' * (width - done)}] {i}/{len(items)}")
        sys.stderr.flush()
        yield item
    sys.stderr.write("\n")


class Stages:
    """One line saying which stage of a long call runs, rewritten in place and cleared at the end."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.shown, self.label = _shown(enabled), label

    def __call__(self, stage: str) -> None:
        if self.shown:
            sys.stderr.write(f"\r\x1b[K  {self.label}: {stage} ...")
            sys.stderr.flush()

    def done(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()

