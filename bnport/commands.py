"""The bodies of bnport's subcommands (imported only once a command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bnport import loading
from bnport.cli import EXIT_DRIFT, EXIT_OK
from bnport.errors import CheckpointError, UsageError


def bn_pairs(torch_model, keras_model, mapping: object = None) -> list[tuple[str, object, str, object]]:
    """The BatchNorm pairs of two models, paired by structure (``bnport.plan``): (torch name, module, keras
    name, layer), in PyTorch execution order."""
    from bnport.porting import plan

    p = plan(torch_model, keras_model, mapping)
    p.raise_for_problems(strict=False)
    tg, kg = p.torch_graph, p.keras_graph
    return [(x.torch_name, tg.nodes[x.torch_name].layer, x.keras_name, kg.nodes[x.keras_name].layer)
            for x in p.pairs if x.kind == "batchnorm"]


def _read_inputs(path: str | None, count: int) -> list[np.ndarray | None]:
    if path is None:
        return [None] * count
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = [data[k] for k in data.files]
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read inputs {path}: {exc}") from exc
    if len(arrays) < count or (count > 1 and len(arrays) != count):
        raise UsageError(f"{path} holds {len(arrays)} arrays; {count} expected")
    return arrays


def explain(args: argparse.Namespace) -> int:
    """``bnport explain``: findings for every BatchNorm pair of two models."""
    from bnport.explanation import explain as explain_pair

    t = loading.torch_model(args.torch_model, args.torch_weights)
    k = loading.keras_model(args.keras_model, args.keras_weights)
    pairs = bn_pairs(t, k)
    for (tn, tm, kn, kl), x in zip(pairs, _read_inputs(args.inputs, len(pairs)), strict=True):
        print(f"{tn} (PyTorch {type(tm).__name__}) <-> {kn} (Keras)")
        text = str(explain_pair(tm, kl, x))
        print("  " + text.replace("\n", "\n  "))
    return EXIT_OK


def verify(args: argparse.Namespace) -> int:
    """``bnport verify``: exit 0 when everything passes, 1 on drift."""
    from bnport import report as render
    from bnport.verification import verify as run

    t = loading.torch_model(args.torch_model, args.torch_weights)
    k = loading.keras_model(args.keras_model, args.keras_weights)
    inputs = _read_inputs(args.inputs, 1)[0] if args.inputs else None
    result = run(t, k, inputs, args.map, not args.no_per_layer, args.atol, args.rtol)
    print(result)
    for path, write in ((args.json, render.write_json), (args.junit, render.write_junit),
                        (args.html, render.write_html)):
        if path:
            write(result, path)
            print(f"wrote {path}")
    return EXIT_OK if result.ok else EXIT_DRIFT


def convert(args: argparse.Namespace) -> int:
    """``bnport convert``: file to file."""
    from bnport.conversion import convert as run

    report = run(args.src, args.dst, torch_model=args.torch_model, keras_model=args.keras_model,
                 mapping=args.map, force=args.force, strict=not args.non_strict,
                 allow_bad_stats=args.allow_bad_stats, progress=True)
    print(report)
    return EXIT_OK


def inspect(args: argparse.Namespace) -> int:
    """``bnport inspect``: the layers of a checkpoint, BatchNorm health first-class."""
    import json

    from bnport.inspect_file import inspect as run

    entries = run(args.file)
    if args.json:
        print(json.dumps({"file": args.file, "layers": [e.as_dict() for e in entries]}, indent=2))
        return EXIT_OK
    bn = sum(e.kind == "batchnorm" for e in entries)
    print(f"{args.file}: {len(entries)} weight-holding layers, {bn} BatchNorm")
    for e in entries:
        shapes = ", ".join(f"{k}{list(v)}" for k, v in e.shapes.items())
        print(f"  {e.name:<40} {e.kind:<12} {shapes}")
        if e.summary:
            print(f"  {'':<40} {e.summary}")
    return EXIT_OK


def _fixtures_dir(given: str | None) -> Path:
    folder = Path(given) if given else Path(__file__).resolve().parents[1] / "fixtures"
    if not (folder / "models.py").is_file():
        raise UsageError(f"no bundled fixtures in {folder}; pass --fixtures DIR (the repository's fixtures/)")
    return folder


def demo(args: argparse.Namespace) -> int:
    """``bnport demo``: convert the bundled PyTorch checkpoint to a Keras file, verify it, explain a naive port."""
    from bnport import report as render
    from bnport.conversion import convert as run_convert
    from bnport.verification import verify as run_verify

    fx = _fixtures_dir(args.fixtures)
    arch = fx / "architectures.py"
    src = fx / "resnet.pt"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dst = out / "resnet.keras"
    print(f"1. convert {src} (a ResNet-style PyTorch checkpoint) to {dst}")
    converted = run_convert(src, dst, torch_model=f"{arch}:torch_resnet", keras_model=f"{arch}:keras_resnet",
                            force=True)
    print("   " + str(converted.port).replace("\n", "\n   "))
    print(f"2. verify {dst} against {src.name} layer by layer through ONNX Runtime")
    result = run_verify(loading.torch_model(f"{arch}:torch_resnet", src), loading.keras_model(str(dst)))
    print("   " + str(result).replace("\n", "\n   "))
    render.write_html(result, out / "resnet-verify.html")
    render.write_json(result, out / "resnet-verify.json")
    print(f"   wrote {out / 'resnet-verify.html'} and {out / 'resnet-verify.json'}")
    _demo_naive(fx)
    print("ok: the converted file computes what the PyTorch checkpoint computes" if result.ok else "DRIFT")
    return EXIT_OK if result.ok else EXIT_DRIFT


def _demo_naive(fx: Path) -> None:
    from bnport.explanation import explain as explain_pair

    torch_net = loading.torch_model(f"{fx / 'models.py'}:torch_bn_layers", fx / "bn_layers.pt")
    naive_path = fx / "bn_layers_naive.keras"
    naive = loading.keras_model(str(naive_path))
    print(f"3. why a hand port of BatchNorm layers ({naive_path.name}: same weights, Keras defaults) differs:")
    for tn, tm, _, kl in bn_pairs(torch_net, naive):
        found = [str(f) for f in explain_pair(tm, kl).findings] or ["no difference (its settings match)"]
        print(f"   {tn}: " + "\n         ".join(found))
