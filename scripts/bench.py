"""bnport's benchmark: each figure next to a floor measured in the same run, as a ratio (seeded, CPU, offline).

  port      in-memory PyTorch -> Keras port vs assigning already-transposed arrays to the Keras variables
  convert   .pt -> .weights.h5 file to file into models given as objects vs torch.load + Keras save_weights
            (the floor has its model too); from factories vs the same plus building the Keras model; and the
            peak memory (from factories) above the frameworks' baseline, in checkpoint sizes
  verify    per-layer verify vs one legacy torch ONNX export + one onnxruntime run of each model,
            cold (first export of the Keras architecture) and warm (the graph cached per architecture)
  help      `bnport --help` wall time
  scaling   plan and port time on chains of 100 and 1,000 BatchNorm layers (ratio; linear would be 10)
  zoo       torchvision densenet121 and keras.applications DenseNet121 (224x224): port vs assigning
            already-transposed arrays, verify vs one torch export + one onnxruntime run of each model
  backends  per Keras backend (tensorflow, jax, torch; each in its own process, TensorFlow unimportable off its
            backend: scripts/bench_backend.py): verify vs torch export + two onnxruntime runs; the CLI's
            `bnport convert model.pt model.weights.h5` vs a process importing the frameworks, loading the checkpoint
            and saving the weights; `convert --verify` in one process vs imports + load + save + torch export + two
            onnxruntime runs, with both peak memories

Run: .venv/bin/python scripts/bench.py            (ResNet-50, 224x224; a few minutes)
     .venv/bin/python scripts/bench.py --quick    (small models; what CI runs so this script cannot rot)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures"))

import numpy as np  # noqa: E402

from bnport.adapters.keras.startup import import_keras_quietly  # noqa: E402

import_keras_quietly()

import architectures  # noqa: E402
import keras  # noqa: E402
import torch  # noqa: E402

from bnport.adapters.keras import export as keras_export  # noqa: E402
from bnport.adapters.torch import export as torch_export  # noqa: E402
from bnport.onnxcheck import session as runtime  # noqa: E402
from bnport.workflows.conversion import convert  # noqa: E402
from bnport.workflows.porting import plan, port  # noqa: E402
from bnport.workflows.verification import verify  # noqa: E402

ARCH = ROOT / "fixtures" / "architectures.py"
TARGETS = {"port": 1.2, "convert": 1.3, "convert_memory": 2.5, "verify": 6.0, "help_s": 0.3, "scaling": 12.0,
           "zoo_port": 1.2, "zoo_verify": 3.0, "backend_verify": 3.0, "backend_convert_cli": 1.3}
BACKENDS = ("tensorflow", "jax", "torch")


def bench_backends(quick: bool) -> dict:
    """scripts/bench_backend.py once per Keras backend, each in a fresh process: one after the other, so each has
    the machine to itself; with --quick (a smoke run, its figures not measurements) all three at once."""
    import bench_backend
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        def start(backend: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "bench_backend.py"),
                                     *(["--quick"] if quick else []), str(Path(tmp) / f"{backend}.json")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                    env=bench_backend.env(backend))

        running = {backend: start(backend) for backend in BACKENDS} if quick else {}
        for backend in BACKENDS:
            process = running.get(backend) or start(backend)
            _, err = process.communicate()
            if process.returncode != 0:
                raise RuntimeError(f"the {backend} backend's benchmark failed: {err[-3000:]}")
            out[backend] = json.loads((Path(tmp) / f"{backend}.json").read_text())
    return out


def best(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` runs (the least disturbed by the machine's other work)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_interleaved(*fns, repeat: int) -> tuple[float, ...]:
    """Best wall time of each of ``fns``, run in turns, so all see the same machine (this one's speed drifts by
    tens of percent over seconds)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, out in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return tuple(min(t) for t in times)


def trained_like(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Seeded weights and non-default BatchNorm statistics, without running the model."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif t.ndim > 1:
                t.copy_(torch.randn(t.shape, generator=gen) * (2.0 / t[0].numel()) ** 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1 + (1.0 if name.endswith("weight") else 0.0))
    return model.eval()


def bench_port(torch_factory, keras_factory) -> dict:
    src, dst = trained_like(torch_factory()), keras_factory()
    port(src, dst)
    arrays = [np.ascontiguousarray(v.numpy()) for v in dst.weights]  # already in Keras layout

    def floor():
        for variable, array in zip(dst.weights, arrays, strict=True):
            variable.assign(array)

    floor_s, port_s = best_interleaved(floor, lambda: port(src, dst), repeat=15)  # 0.1 s each: cheap
    return {"floor_s": floor_s, "port_s": port_s, "ratio": port_s / floor_s,
            "params_mib": sum(a.nbytes for a in arrays) / 2**20}


def bench_convert(torch_ref: str, keras_ref: str, tmp: Path) -> dict:
    src = tmp / "model.pt"
    model = trained_like(architectures.__dict__[torch_ref.split(":")[1]]())
    torch.save(model.state_dict(), src)
    keras_model = architectures.__dict__[keras_ref.split(":")[1]]()
    dst = tmp / "out.weights.h5"
    # a script converting many checkpoints gives the two models once; the floor has its model already as well
    torch_object, keras_object = architectures.__dict__[torch_ref.split(":")[1]](), keras_model

    def floor():
        torch.load(src, map_location="cpu", weights_only=True)
        keras_model.save_weights(dst)

    def floor_with_build():
        torch.load(src, map_location="cpu", weights_only=True)
        architectures.__dict__[keras_ref.split(":")[1]]().save_weights(dst)

    floor_s, floor_build_s, convert_s, objects_s = best_interleaved(
        floor, floor_with_build, lambda: convert(src, dst, torch_model=torch_ref, keras_model=keras_ref, force=True),
        lambda: convert(src, dst, torch_model=torch_object, keras_model=keras_object, force=True),
        repeat=5)
    memory = _convert_memory(src, dst, torch_ref, keras_ref)
    return {"checkpoint_mib": src.stat().st_size / 2**20, "floor_s": floor_s, "floor_with_build_s": floor_build_s,
            "convert_s": convert_s, "convert_objects_s": objects_s, "ratio": objects_s / floor_s,
            "ratio_factories": convert_s / floor_s, "ratio_with_build": convert_s / floor_build_s, **memory}


_MEMORY_PROBE = """
import os, sys, json
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
from bnport.adapters.keras.startup import import_keras_quietly
import_keras_quietly()
import torch, keras, tf2onnx
def status(field):  # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark across exec into the latter
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith(field)) * 1024
from bnport.cli.process import return_large_blocks
return_large_blocks()  # as the command line does
base = status("VmRSS")
from bnport.workflows.conversion import convert
convert(sys.argv[1], sys.argv[2], torch_model=sys.argv[3], keras_model=sys.argv[4], force=True)
print(json.dumps({"baseline": base, "peak": status("VmHWM")}))
"""


def _convert_memory(src: Path, dst: Path, torch_ref: str, keras_ref: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _MEMORY_PROBE, str(src), str(dst), torch_ref, keras_ref],
                         capture_output=True, text=True, check=True)
    data = json.loads(out.stdout.strip().splitlines()[-1])
    above = data["peak"] - data["baseline"]
    return {"memory_above_baseline_mib": above / 2**20, "memory_ratio": above / src.stat().st_size}


def built(spec: dict):
    """The models and inputs a verify figure runs on, from ``spec`` (see scripts/bench_cold.py): the PyTorch model with
    seeded trained-looking weights, ported into the Keras model, and one seeded input in each layout."""
    scope: dict = {}
    exec(spec["setup"], scope)  # the benchmark's own code, from this file and bench_cold.py
    t, k = trained_like(eval(spec["torch"], scope)), eval(spec["keras"], scope)
    port(t, k)
    x = np.random.default_rng(0).standard_normal((1, *spec["shape"])).astype(np.float32)
    return t, k, x, np.ascontiguousarray(np.moveaxis(x, 1, -1))


def torch_floor(t, x: np.ndarray) -> None:
    """The floors' PyTorch part: the legacy export with the weights fed, its fastest form (nothing copied into the
    protobuf or onnxruntime's initializers; ResNet-50 0.42 s against 1.1 s with them in the graph), one run."""
    runtime.run(*torch_export.export_fed(t, x))


def bench_verify(spec: dict, repeat: int) -> dict:
    """Cold: the first verify of a fresh process vs the floor in one (scripts/bench_cold.py, ``repeat`` of each).
    Warm: verify again in this process (the Keras graph cached) vs the floor here."""
    import bench_cold

    t, k, x, keras_x = built(spec)
    exported = keras_export.export_keras(k, keras_x.shape)  # the Keras graph, for the floors' ORT runs only
    cold = bench_cold.measure(spec, exported.model, exported.feeds(keras_x), repeat=repeat)

    def floor():
        torch_floor(t, x)
        runtime.run(exported.model, exported.feeds(keras_x))

    floor_s = best(floor)
    report = verify(t, k, x)
    warm_s = best(lambda: verify(t, k, x), repeat=2)
    assert report.ok, str(report)
    return {**cold, "floor_s": floor_s, "verify_warm_s": warm_s, "ratio_warm": warm_s / floor_s}


#: the verify figure's models (quick or not): the fixtures' ResNet at 16x16 or ResNet-50 at 224x224
RESNETS = {True: ("torch_resnet", "keras_resnet()", [3, 16, 16]),
           False: ("torch_resnet50", "keras_resnet50(input_shape=(224, 224, 3))", [3, 224, 224])}


def resnet_spec(quick: bool) -> dict:
    torch_name, keras_call, shape = RESNETS[quick]
    return {"setup": "import architectures", "torch": f"architectures.{torch_name}()",
            "keras": f"architectures.{keras_call}", "shape": shape}


def bench_zoo(size: int, repeat: int) -> dict:
    """The real zoo pair: torchvision's and keras.applications' DenseNet-121 (242 pairs, 121 BatchNorms)."""
    from zoo_imports import torchvision

    tv = torchvision()

    def keras_densenet():
        return keras.applications.DenseNet121(weights=None, input_shape=(size, size, 3), classifier_activation=None)

    spec = {"setup": "import keras\nfrom zoo_imports import torchvision\ntv = torchvision()",
            "torch": "tv.models.densenet121()", "shape": [3, size, size],
            "keras": f"keras.applications.DenseNet121(weights=None, input_shape=({size}, {size}, 3), "
                     "classifier_activation=None)"}
    return {"port": bench_port(tv.models.densenet121, keras_densenet), "verify": bench_verify(spec, repeat)}


def bench_help() -> dict:
    def run():
        subprocess.run([sys.executable, "-m", "bnport", "--help"], capture_output=True, check=True)

    return {"help_s": best(run, repeat=5)}


def chain(n: int):
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20 * n))  # Keras builds a Sequential graph recursively
    t = torch.nn.Sequential(*[torch.nn.BatchNorm1d(16) for _ in range(n)]).eval()
    k = keras.Sequential([keras.Input((16,))] + [keras.layers.BatchNormalization() for _ in range(n)])
    return trained_like(t), k


def bench_scaling(small: int, large: int) -> dict:
    gc.collect()
    (ts, ks), (tl, kl) = chain(small), chain(large)
    plan_small, plan_large = best_interleaved(lambda: plan(ts, ks), lambda: plan(tl, kl), repeat=5)
    port_small, port_large = best_interleaved(lambda: port(ts, ks), lambda: port(tl, kl), repeat=5)
    return {"layers": [small, large], f"plan_s_{small}": plan_small, f"plan_s_{large}": plan_large,
            f"port_s_{small}": port_small, f"port_s_{large}": port_large,
            "plan_ratio": plan_large / plan_small, "port_ratio": port_large / port_small}


def machine() -> str:
    import platform

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return (f"{cpu}, {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} "
            f"GiB; Python {platform.python_version()}, torch {torch.__version__}, keras {keras.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small models, fewer layers: a smoke run for CI")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args()
    if args.quick:
        names, scale = ("torch_resnet", "keras_resnet"), (10, 100)
    else:
        names, scale = ("torch_resnet50", "keras_resnet50"), (100, 1000)
    torch_factory = architectures.__dict__[names[0]]
    keras_factory = (lambda: architectures.keras_resnet50(input_shape=(224, 224, 3))) if not args.quick \
        else architectures.__dict__[names[1]]
    refs = (f"{ARCH}:{names[0]}", f"{ARCH}:{names[1]}")
    results = {"machine": machine(), "model": names[0], "quick": args.quick}
    # first, before the large models exist: a garbage collection pass scans every live object, so later the
    # benchmark's own leftovers (two ResNet-50s, ONNX sessions) would make the large chain look superlinear
    results["scaling"] = bench_scaling(*scale)
    results["port"] = bench_port(torch_factory, keras_factory)
    with tempfile.TemporaryDirectory() as tmp:
        results["convert"] = bench_convert(*refs, Path(tmp))
    results["verify"] = bench_verify(resnet_spec(args.quick), repeat=1 if args.quick else 3)
    results["help"] = bench_help()
    results["zoo"] = bench_zoo(32 if args.quick else 224, repeat=1 if args.quick else 3)
    results["backends"] = bench_backends(args.quick)
    print_table(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def print_table(r: dict) -> None:
    p, c, v, h, s, z = r["port"], r["convert"], r["verify"], r["help"], r["scaling"], r["zoo"]
    rows = [
        ("port (in memory)", f"{p['port_s']:.3f} s", f"assign {p['floor_s']:.3f} s", p["ratio"], TARGETS["port"]),
        ("convert .pt -> .weights.h5", f"{c['convert_objects_s']:.3f} s", f"load+save {c['floor_s']:.3f} s",
         c["ratio"], TARGETS["convert"]),
        ("  from factories", f"{c['convert_s']:.3f} s", f"load+build+save {c['floor_with_build_s']:.3f} s",
         c["ratio_with_build"], TARGETS["convert"]),
        ("  from factories", f"{c['convert_s']:.3f} s", f"load+save {c['floor_s']:.3f} s", c["ratio_factories"],
         None),
        ("convert peak memory", f"{c['memory_above_baseline_mib']:.0f} MiB",
         f"checkpoint {c['checkpoint_mib']:.0f} MiB", c["memory_ratio"], TARGETS["convert_memory"]),
        ("verify per layer, cold", f"{v['verify_cold_s']:.2f} s", f"export+2 runs {v['floor_cold_s']:.2f} s",
         v["ratio_cold"], TARGETS["verify"]),
        ("verify per layer, warm cache", f"{v['verify_warm_s']:.2f} s", f"export+2 runs {v['floor_s']:.2f} s",
         v["ratio_warm"], TARGETS["verify"]),
        ("bnport --help", f"{h['help_s']:.3f} s", "-", None, None),
        (f"plan, {s['layers'][1]} vs {s['layers'][0]} BN", f"{s['plan_s_' + str(s['layers'][1])]:.3f} s",
         f"{s['plan_s_' + str(s['layers'][0])]:.3f} s", s["plan_ratio"], TARGETS["scaling"]),
        (f"port, {s['layers'][1]} vs {s['layers'][0]} BN", f"{s['port_s_' + str(s['layers'][1])]:.3f} s",
         f"{s['port_s_' + str(s['layers'][0])]:.3f} s", s["port_ratio"], TARGETS["scaling"]),
        ("zoo DenseNet-121: port", f"{z['port']['port_s']:.3f} s", f"assign {z['port']['floor_s']:.3f} s",
         z["port"]["ratio"], TARGETS["zoo_port"]),
        ("zoo DenseNet-121: verify, cold", f"{z['verify']['verify_cold_s']:.2f} s",
         f"export+2 runs {z['verify']['floor_cold_s']:.2f} s", z["verify"]["ratio_cold"], TARGETS["zoo_verify"]),
        ("zoo DenseNet-121: verify, warm", f"{z['verify']['verify_warm_s']:.2f} s",
         f"export+2 runs {z['verify']['floor_s']:.2f} s", z["verify"]["ratio_warm"], TARGETS["zoo_verify"]),
    ]
    print(f"machine: {r['machine']}")
    print(f"model: {r['model']}{' (quick)' if r['quick'] else ''}; verify stages (cold): "
          + ", ".join(f"{k} {x:.2f} s" for k, x in v["stages_cold_s"].items()))
    print(f"{'figure':<32} {'bnport':>12} {'floor':>26} {'ratio':>7} {'target':>7}")
    for name, ours, floor, ratio, target in rows:
        ratio_text = "" if ratio is None else f"{ratio:.2f}x"
        target_text = "" if target is None else f"{target:g}x"
        print(f"{name:<32} {ours:>12} {floor:>26} {ratio_text:>7} {target_text:>7}")
    print(f"{'--help target':<32} {'':>12} {'':>26} {'':>7} {TARGETS['help_s']:g} s")
    at_once = "; --quick: the three at once, so these are not measurements" if r["quick"] else ""
    print(f"per Keras backend ({r['backends']['tensorflow']['model']}; each in its own process, TensorFlow "
          f"unimportable off its backend{at_once}):")
    for backend, b in r["backends"].items():
        v, c, cv = b["verify"], b["convert_cli"], b["convert_verify"]
        for name, ours, floor, ratio, target in (
                (f"{backend}: verify, cold", f"{v['verify_cold_s']:.2f} s",
                 f"export+2 runs {v['floor_cold_s']:.2f} s",
                 v["ratio_cold"], TARGETS["backend_verify"]),
                (f"{backend}: verify, warm", f"{v['verify_warm_s']:.2f} s", f"export+2 runs {v['floor_s']:.2f} s",
                 v["ratio_warm"], TARGETS["backend_verify"]),
                (f"{backend}: CLI convert", f"{c['convert_s']:.2f} s", f"imports+load+save {c['floor_s']:.2f} s",
                 c["ratio"], TARGETS["backend_convert_cli"]),
                (f"{backend}: convert --verify", f"{cv['convert_verify_s']:.2f} s",
                 f"+export+2 runs {cv['floor_s']:.2f} s", cv["ratio"], None),
                (f"{backend}: convert --verify peak", f"{cv['peak_mib']:.0f} MiB",
                 f"floor peak {cv['floor_peak_mib']:.0f} MiB", cv["peak_mib"] / cv["floor_peak_mib"], None)):
            ratio_text = "" if ratio is None else f"{ratio:.2f}x"
            target_text = "" if target is None else f"{target:g}x"
            print(f"{name:<32} {ours:>12} {floor:>26} {ratio_text:>7} {target_text:>7}")


if __name__ == "__main__":
    main()
