"""The benchmark script runs (its --quick mode), so it cannot rot; timings are not asserted here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_runs_and_reports_every_figure(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench.py"), "--quick", "--json",
                          str(tmp_path / "b.json")], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads((tmp_path / "b.json").read_text())
    assert {"port", "convert", "verify", "help", "scaling", "zoo", "backends"} <= set(data)
    assert sorted(data["backends"]) == ["jax", "tensorflow", "torch"]
    for backend, figures in data["backends"].items():
        assert figures["backend"] == backend and figures["verify"]["pairs"] == 13
        assert f"{backend}: convert --verify" in out.stdout
    for name in ("port (in memory)", "convert peak memory", "verify per layer, cold", "bnport --help",
                 "plan, 100 vs 10 BN", "zoo DenseNet-121: port", "zoo DenseNet-121: verify, cold"):
        assert name in out.stdout
    assert data["verify"]["pairs"] == 13 and data["port"]["ratio"] > 0
    assert data["zoo"]["verify"]["pairs"] == 242
