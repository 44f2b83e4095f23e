"""Cold verify for scripts/bench.py: the first verify of a process against its floor, each in a fresh process.

A cold verify is what `bnport verify` (or a CI job's first check) pays: nothing exported yet in the process and
onnxruntime not yet imported. Measured in the process that ran the floor instead, it would start with onnxruntime
loaded, which makes every C++ exception in the process about 4x dearer and so the TorchScript exporter slower
(docs/performance.md): the figure would then depend on what ran before it. So both sides run in fresh processes on
the same terms: the frameworks imported, the models built and ported before the clock starts, then

  verify  bnport.verify(torch_model, keras_model, x), per layer
  floor   the unavoidable work: the PyTorch export (weights fed, its fastest form), then one onnxruntime run of it and
          one of the Keras graph, which the parent exported beforehand (loading it is not timed: exporting the Keras
          model is bnport's own work)

Child usage (bench.py starts them): python scripts/bench_cold.py verify|floor SPEC.json OUT.json
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(spec: dict, keras_graph, feeds: dict, repeat: int) -> dict:
    """Best cold verify and best floor of ``repeat`` fresh processes each, run in turns (the machine's speed
    drifts). ``spec``: ``setup`` (code run first), ``torch`` and ``keras`` (expressions building the two models),
    ``shape`` (one input without its batch axis); ``keras_graph`` and ``feeds``: the floor's Keras graph and what it
    is fed, exported by the caller."""
    import numpy as np
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        onnx.save(keras_graph, folder / "keras.onnx")
        np.savez(folder / "feeds.npz", **feeds)
        (folder / "spec.json").write_text(json.dumps({**spec, "folder": tmp}))
        times: dict[str, list[float]] = {"verify": [], "floor": []}
        found: dict = {}
        for _ in range(repeat):
            for kind in times:
                out = folder / f"{kind}.json"
                done = subprocess.run([sys.executable, __file__, kind, str(folder / "spec.json"), str(out)],
                                      capture_output=True, text=True)
                if done.returncode != 0:
                    raise RuntimeError(f"the cold {kind} process failed: {done.stderr[-3000:]}")
                result = json.loads(out.read_text())
                times[kind].append(result.pop("seconds"))
                found[kind] = result
    verify_s, floor_s = min(times["verify"]), min(times["floor"])
    return {"verify_cold_s": verify_s, "floor_cold_s": floor_s, "ratio_cold": verify_s / floor_s,
            "stages_cold_s": found["verify"]["stages"], "pairs": found["verify"]["pairs"]}


def child(kind: str, spec_path: Path, out: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import numpy as np
    import onnx
    from bench import built, torch_floor

    from bnport.onnxcheck import session as runtime
    from bnport.workflows.verification import verify

    spec = json.loads(spec_path.read_text())
    t, k, x, _ = built(spec)
    result: dict = {}
    if kind == "verify":
        start = time.perf_counter()
        report = verify(t, k, x)
        result["seconds"] = time.perf_counter() - start
        assert report.ok, str(report)
        result.update(stages=report.seconds, pairs=len(report.rows))
    else:
        folder = Path(spec["folder"])
        graph = onnx.load(folder / "keras.onnx")
        feeds = dict(np.load(folder / "feeds.npz"))
        start = time.perf_counter()
        torch_floor(t, x)
        runtime.run(graph, feeds)
        result["seconds"] = time.perf_counter() - start
    out.write_text(json.dumps(result))


if __name__ == "__main__":
    child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
