"""The bodies of bnport's subcommands (imported only once a command runs)."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from bnport import loading
from bnport.cli import EXIT_DRIFT, EXIT_OK
from bnport.errors import CheckpointError, IncompatibleLayerError, UsageError


def bn_pairs(torch_model, keras_model) -> list[tuple[str, object, str, object]]:
    """The BatchNorm layers of both models paired in definition order: (torch name, module, keras name, layer)."""
    import keras
    from torch.nn.modules.batchnorm import _BatchNorm

    t = [(n, m) for n, m in torch_model.named_modules() if isinstance(m, _BatchNorm)]
    k = [(layer.name, layer) for layer in _keras_layers(keras_model)
         if isinstance(layer, keras.layers.BatchNormalization)]
    if len(t) != len(k):
        raise IncompatibleLayerError(
            f"the PyTorch model has {len(t)} BatchNorm layers ({', '.join(n for n, _ in t)}) and the Keras model "
            f"{len(k)} ({', '.join(n for n, _ in k)}); they are not the same architecture"
        )
    return [(tn, tm, kn, kl) for (tn, tm), (kn, kl) in zip(t, k, strict=True)]


def _keras_layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _keras_layers(layer)


def _read_inputs(path: str | None, count: int) -> list[np.ndarray | None]:
    if path is None:
        return [None] * count
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = [data[k] for k in data.files]
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read inputs {path}: {exc}") from exc
    if len(arrays) != count:
        raise UsageError(f"{path} holds {len(arrays)} arrays but there are {count} BatchNorm pairs")
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
    """``bnport demo``: port the bundled PyTorch checkpoint to a Keras file, check it, explain a naive port."""
    from bnport import keras_files
    from bnport.api import from_torch, to_keras
    from bnport.atomic import check_destination
    from bnport.check import check_layer

    fx = _fixtures_dir(args.fixtures)
    src = fx / "bn_layers.pt"
    torch_net = loading.torch_model(f"{fx / 'models.py'}:torch_bn_layers", src)
    keras_net = loading.keras_model(f"{fx / 'models.py'}:keras_bn_layers")
    print(f"1. read {src} (weights_only=True) into {type(torch_net).__name__}")
    for tn, tm, kn, kl in bn_pairs(torch_net, keras_net):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            to_keras(from_torch(tm), kl)
        print(f"   {tn}: eps={tm.eps:g} momentum={tm.momentum} -> Keras {kn}: epsilon={kl.epsilon:g} "
              f"momentum={kl.momentum:g}")
        for w in caught:
            print(f"   note: {w.message}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # A .keras archive keeps each layer's epsilon and momentum; a .weights.h5 file keeps only tensors.
    dst = out / "bn_layers.keras"
    check_destination(dst, force=True, sources=(src,))
    keras_files.save(keras_net, dst)
    print(f"2. wrote {dst}")
    reloaded = loading.keras_model(str(dst))
    print(f"3. checked {dst} through ONNX Runtime against the PyTorch checkpoint:")
    ok = True
    for tn, tm, kn, kl in bn_pairs(torch_net, reloaded):
        result = check_layer(tm, kl)
        ok &= result.ok
        print(f"   {tn} <-> {kn}: {'ok' if result.ok else 'FAILED'}  max abs {result.max_abs:.3g}  "
              f"max rel {result.max_rel:.3g}  on {list(result.input_shape)}")
    naive_path = fx / "bn_layers_naive.keras"
    naive = loading.keras_model(str(naive_path))
    print(f"4. why a hand port ({naive_path.name}: same weights, Keras defaults) differs:")
    from bnport.explanation import explain as explain_pair

    for tn, tm, _, kl in bn_pairs(torch_net, naive):
        found = [str(f) for f in explain_pair(tm, kl).findings] or ["no difference (its settings match)"]
        print(f"   {tn}: " + "\n         ".join(found))
    print("ok: the ported file computes what the PyTorch checkpoint computes" if ok else "FAILED")
    return EXIT_OK if ok else EXIT_DRIFT
