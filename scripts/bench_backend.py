"""One Keras backend's figures for scripts/bench.py, in a process of its own (Keras picks its backend at import).

Run by bench.py as ``KERAS_BACKEND=<backend> python scripts/bench_backend.py [--quick] OUT.json``, TensorFlow made
unimportable off its backend (as for a user without it). Measures, each against a floor taken in this run:

  verify          bnport.verify (per layer; cold: a fresh process's first, scripts/bench_cold.py; warm: the Keras
                  graph cached) vs the floor of the PyTorch legacy export (weights fed) plus one onnxruntime run of
                  each model
  convert_cli     wall time of `bnport convert model.pt model.weights.h5` in a fresh process vs a fresh process that
                  imports the frameworks this backend needs, loads the checkpoint and saves the Keras weights
  convert_verify  `bnport convert ... --verify` in one fresh process (wall time and peak memory) vs a fresh process
                  doing the unavoidable work: imports, load, build, save, both exports, two onnxruntime runs
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "fixtures" / "architectures.py"
BLOCKER = str(ROOT / "tests" / "without_tensorflow")


def env(backend: str) -> dict:
    """The environment of a process on Keras ``backend``: TensorFlow unimportable off its backend."""
    out = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    out.pop("PYTHONPATH", None)
    if backend != "tensorflow":
        out["PYTHONPATH"] = BLOCKER
    return out


def timed_process(argv: list[str], backend: str, repeat: int) -> tuple[float, int]:
    """Best wall time of ``repeat`` fresh processes, and the peak resident memory (bytes) of the best one."""
    best, peak = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], capture_output=True, text=True, env=env(backend))
        elapsed = time.perf_counter() - start
        if done.returncode != 0:
            raise RuntimeError(f"{argv} failed: {done.stderr[-2000:]}")
        if elapsed < best:
            best, peak = elapsed, int(done.stderr.strip().splitlines()[-1]) * 1024
    return best, peak


FACTORIES = """
import sys
sys.path.insert(0, {fixtures!r})
import architectures

def torch_model():
    return architectures.{torch_name}()

def keras_model():
    return architectures.{keras_call}
"""

#: the floors run as the command line does: the frameworks imported without the garbage collector (their objects
#: frozen after), and the process ended without the interpreter's teardown (bnport/cli/process.py)
FLOOR_CONVERT = """
import gc, os, sys
sys.path.insert(0, {folder!r})
gc.disable()
import torch, keras, factories
gc.freeze()
gc.enable()
state = torch.load(sys.argv[1], map_location="cpu", weights_only=True)
model = factories.keras_model()
model.save_weights(sys.argv[2])
"""

FLOOR_VERIFY = """
import numpy as np
from bnport.adapters.keras import export as keras_export
from bnport.adapters.torch import export as torch_export
from bnport.onnxcheck import session as runtime
t = factories.torch_model()
t.load_state_dict(state)
x = np.random.default_rng(0).standard_normal((2, *{shape!r})).astype(np.float32)
runtime.run(*torch_export.export_fed(t, x))
keras_x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
exported = keras_export.export_keras(model, keras_x.shape)
runtime.run(exported.model, exported.feeds(keras_x))
"""

FLOOR_END = """
sys.stdout.flush()
os._exit(0)
"""


def main() -> None:
    quick = "--quick" in sys.argv
    out = Path(sys.argv[-1])
    backend = os.environ["KERAS_BACKEND"]
    sys.path.insert(0, str(ROOT / "fixtures"))
    sys.path.insert(0, str(ROOT / "scripts"))
    import architectures
    import keras
    import torch
    from bench import RESNETS, bench_verify, resnet_spec, trained_like  # the same verify figure as the TensorFlow one

    spec = resnet_spec(quick)
    torch_name, keras_call, shape = RESNETS[quick]
    torch_factory = getattr(architectures, torch_name)
    result = {"backend": keras.backend.backend(), "keras": keras.__version__, "model": torch_name,
              "verify": bench_verify(spec, repeat=1 if quick else 3)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "factories.py").write_text(FACTORIES.format(fixtures=str(ROOT / "fixtures"), torch_name=torch_name,
                                                              keras_call=keras_call))
        src, dst = folder / "model.pt", folder / "model.weights.h5"
        torch.save(trained_like(torch_factory()).state_dict(), src)
        convert = [sys.executable, "-m", "bnport", "convert", str(src), str(dst), "--force",
                   "--torch-model", f"{folder / 'factories.py'}:torch_model",
                   "--keras-model", f"{folder / 'factories.py'}:keras_model"]
        floor = [sys.executable, "-c", FLOOR_CONVERT.format(folder=tmp) + FLOOR_END, str(src), str(dst)]
        repeat = 1 if quick else 3
        cli_s, cli_peak = timed_process(convert, backend, repeat)
        floor_s, _ = timed_process(floor, backend, repeat)
        result["convert_cli"] = {"convert_s": cli_s, "peak_mib": cli_peak / 2**20, "floor_s": floor_s,
                                 "ratio": cli_s / floor_s}
        both_s, both_peak = timed_process([*convert, "--verify"], backend, repeat)
        floor_verify = FLOOR_CONVERT.format(folder=tmp) + FLOOR_VERIFY.format(shape=shape) + FLOOR_END
        floor_both_s, floor_both_peak = timed_process([sys.executable, "-c", floor_verify, str(src), str(dst)],
                                                      backend, repeat)
        result["convert_verify"] = {"convert_verify_s": both_s, "peak_mib": both_peak / 2**20,
                                    "floor_s": floor_both_s, "floor_peak_mib": floor_both_peak / 2**20,
                                    "ratio": both_s / floor_both_s}
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
