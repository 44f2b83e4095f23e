"""Measure how close ported BatchNorm layers come, through ONNX Runtime, over many random layers (seeded).

Prints, per input rank, the largest |Keras - PyTorch| and |each - ONNX reference| seen, and the largest
share of the stated float32 tolerance any element used (must stay <= 1).
Run: .venv/bin/python scripts/bn_accuracy.py [--layers N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np
from helpers import torch_bn

from bnport import check_layer, from_torch, to_keras


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=25, help="random layers per rank")
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    print(f"{'rank':>4} {'layers':>6} {'max abs k-t':>12} {'max rel k-t':>12} {'max abs vs ref':>15} "
          f"{'tol share':>9} {'s/check':>8}")
    for ndim in (2, 3, 4, 5):
        worst = np.zeros(4)
        start = time.perf_counter()
        for i in range(args.layers):
            eps = float(10 ** rng.uniform(-7, -1))
            t = torch_bn(ndim, int(rng.integers(1, 129)), eps=eps, affine=bool(rng.integers(2)), seed=i)
            r = check_layer(t, to_keras(from_torch(t), input_ndim=ndim), seed=i)
            if not r.ok:
                raise SystemExit(f"FAILED: rank {ndim} layer {i}\n{r}")
            share = max(abs(c.worst_actual - c.worst_expected) / c.worst_tolerance for c in r.comparisons)
            vs_ref = max(c.max_abs for c in r.comparisons[:2])
            worst = np.maximum(worst, [r.max_abs, r.max_rel, vs_ref, share])
        per = (time.perf_counter() - start) / args.layers
        print(f"{ndim:>4} {args.layers:>6} {worst[0]:>12.3g} {worst[1]:>12.3g} {worst[2]:>15.3g} {worst[3]:>9.3f} "
              f"{per:>8.3f}")


if __name__ == "__main__":
    main()
