"""The README's compatibility table: every pair of the real-model corpus (tests/zoo.py) at 224x224, what bnport
says of it, and how long port and verify take (seeded weights with BatchNorm statistics measured on batches, as
the corpus builds them; CPU, offline).

Run: .venv/bin/python scripts/zoo_table.py   (a few minutes; prints a Markdown table)
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from bnport.adapters.keras.startup import import_keras_quietly  # noqa: E402

import_keras_quietly()

import numpy as np  # noqa: E402
import zoo  # noqa: E402

from bnport.workflows.porting import plan, port  # noqa: E402
from bnport.workflows.verification import verify  # noqa: E402

SIZE = 224


def _refusal(p) -> str:
    parts = []
    codes = sorted({d.code for d in p.differences})
    if codes:
        parts.append(f"differs ({', '.join(codes)}) at {p.differences[0].torch_name}")
    if p.conflicts:
        parts.append(f"{len(p.conflicts)} conflicts, first: {p.conflicts[0].split(': ', 1)[-1]}")
    if p.ambiguous:
        parts.append(f"{len(p.ambiguous)} ambiguous groups of parallel branches (a mapping settles them)")
    unmatched = len(p.unmatched_torch) + len(p.unmatched_keras)
    if unmatched:
        parts.append(f"{unmatched} layers without a partner")
    unsupported = len(p.unsupported_torch) + len(p.unsupported_keras)
    if unsupported:
        first = (p.unsupported_keras or p.unsupported_torch)[0]
        parts.append(f"{unsupported} layers without a mapping ({first.split(' (', 1)[-1].split(':')[0].rstrip(')')})")
    return "refuses: " + "; ".join(parts)


def row(name: str, torch_factory, keras_factory, shape) -> tuple[str, str, str, str]:
    t, k = zoo.torch_trained(torch_factory(), shape), keras_factory()
    x = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    start = time.perf_counter()
    p = plan(t, k)
    plan_s = time.perf_counter() - start
    if not p.ok:
        said = _refusal(p)
        if p.conflicts or p.ambiguous:
            return name, said, f"{plan_s:.2f} s (plan)", "-"
        port(t, k, strict=False)
        start = time.perf_counter()
        r = verify(t, k, x)
        verify_s = time.perf_counter() - start
        codes = ", ".join(f.code for f in r.findings)
        where = r.first_divergence.torch_name if r.first_divergence else "-"
        return name, f"{said}; non-strict port, verify: first divergence {where} [{codes}]", \
            f"{plan_s:.2f} s (plan)", f"{verify_s:.1f} s"
    port_s = min(_timed(lambda: port(t, k)) for _ in range(3))
    start = time.perf_counter()
    r = verify(t, k, x)
    verify_s = time.perf_counter() - start
    if r.ok:
        return name, f"ports and verifies ({len(r.rows)} pairs)", f"{port_s:.2f} s", f"{verify_s:.1f} s"
    where = r.first_divergence.torch_name if r.first_divergence else "-"
    codes = ", ".join(f.code for f in r.findings)
    return name, f"ports; verify fails: first divergence {where} [{codes}]", f"{port_s:.2f} s", f"{verify_s:.1f} s"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    pairs = {**zoo.agreeing(SIZE), **zoo.differing(SIZE)}
    print(f"| pair ({SIZE}x{SIZE}) | what bnport says | port | verify (first call) |")
    print("|---|---|---|---|")
    for name, (torch_factory, keras_factory, shape) in pairs.items():
        print("| " + " | ".join(row(name, torch_factory, keras_factory, shape)) + " |", flush=True)


if __name__ == "__main__":
    main()
