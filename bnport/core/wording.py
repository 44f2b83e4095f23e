"""Counts and sizes in messages: "1 pair", "2 pairs", "41.3 KiB" (standard library only)."""

from __future__ import annotations


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``count(1, "pair")`` is "1 pair", ``count(2, "pair")`` "2 pairs"."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"


def size(n_bytes: int) -> str:
    """A byte count in the largest binary unit that keeps it at 1 or more: "512 bytes", "41.3 KiB", "97.5 MiB"."""
    if n_bytes < 1024:
        return count(n_bytes, "byte")
    value = float(n_bytes)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")
