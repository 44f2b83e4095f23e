"""The bodies of bnport's subcommands (imported only once a command runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bnport.adapters import loading
from bnport.cli.exit_codes import EXIT_DRIFT, EXIT_OK
from bnport.errors import CheckpointError, UsageError


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


def _named_inputs(path: str | None) -> dict[str, np.ndarray] | list[np.ndarray] | None:
    """The arrays of an ``.npz`` file: by name (matched to the Keras model's input names by verify), or, for
    numpy's default names (``arr_0``, ...), in order."""
    if path is None:
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read inputs {path}: {exc}") from exc
    if not arrays:
        raise UsageError(f"{path} holds no arrays")
    if len(arrays) == 1 or all(k == f"arr_{i}" for i, k in enumerate(arrays)):
        return list(arrays.values())
    return arrays


def explain(args: argparse.Namespace) -> int:
    """``bnport explain``: findings for every BatchNorm pair of two models."""
    t = _torch(args)
    k = loading.keras_model(args.keras_model, args.keras_weights)
    for note in _own_weights(args):
        print(f"note: {note}")
    _print_explanations(t, k, args.inputs)
    return EXIT_OK


def _print_explanations(torch_model, keras_model, inputs: str | None = None, indent: str = "") -> None:
    from bnport.workflows.explanation import batchnorm_pairs
    from bnport.workflows.explanation import explain as explain_pair

    pairs = batchnorm_pairs(torch_model, keras_model)
    for (tn, tm, kn, kl), x in zip(pairs, _read_inputs(inputs, len(pairs)), strict=True):
        print(f"{indent}{tn} (PyTorch {type(tm).__name__}) <-> {kn} (Keras)")
        text = str(explain_pair(tm, kl, x))
        print(f"{indent}  " + text.replace("\n", f"\n{indent}  "))


def _torch(args: argparse.Namespace):
    """The PyTorch model of ``--torch-model`` with ``--torch-weights``; what reading them adapted is printed."""
    notes: list[str] = []
    model = loading.torch_model(args.torch_model, args.torch_weights, key=args.checkpoint_key, notes=notes)
    for note in notes:
        print(f"note: {note}")
    return model


def verify(args: argparse.Namespace) -> int:
    """``bnport verify``: exit 0 when everything passes, 1 on drift."""
    from bnport.workflows.verification import verify as run

    t = _torch(args)
    k = loading.keras_model(args.keras_model, args.keras_weights)
    result = run(t, k, _named_inputs(args.inputs), args.map, not args.no_per_layer, args.atol, args.rtol,
                 input_shape=_input_shapes(args), batch=args.batch, progress=not args.quiet)
    result.notes += _own_weights(args)
    result.compared["files"] = {f"--{o.replace('_', '-')}": str(getattr(args, o)) for o in
                                ("torch_weights", "keras_model", "keras_weights", "inputs") if getattr(args, o)
                                and (o != "keras_model" or loading.is_keras_file(args.keras_model))}
    return _reported(result, args)


def _own_weights(args: argparse.Namespace) -> list[str]:
    """A model compared with the weights its factory gives it (no weights file): said, since it is rarely meant."""
    said = []
    if not args.torch_weights:
        said.append(f"no --torch-weights: the PyTorch model has the weights its factory {args.torch_model!r} gives "
                    "it (random unless the factory loads a checkpoint)")
    if not args.keras_weights and not loading.is_keras_file(args.keras_model):
        said.append(f"no --keras-weights: the Keras model has the weights its factory {args.keras_model!r} gives it")
    return said


def _input_shapes(args: argparse.Namespace):
    """``--input-shape``: one shape, a list of them (one per model input), or None."""
    return args.input_shape[0] if args.input_shape and len(args.input_shape) == 1 else args.input_shape


def _reported(result, args: argparse.Namespace) -> int:
    """Print a verify report, write the report files asked for, and give verify's exit code."""
    from bnport.reports import writers as render

    print(result)
    for option, write in (("json", render.write_json), ("junit", render.write_junit), ("html", render.write_html)):
        path = getattr(args, option, None)
        if path:
            write(result, path)
            print(f"wrote {path}")
    return EXIT_OK if result.ok else EXIT_DRIFT


def convert(args: argparse.Namespace) -> int:
    """``bnport convert``: file to file."""
    from bnport.workflows.conversion import convert as run

    report = run(args.src, args.dst, torch_model=args.torch_model, keras_model=args.keras_model,
                 mapping=args.map, force=args.force, strict=not args.non_strict,
                 allow_bad_stats=args.allow_bad_stats, progress=not args.quiet, checkpoint_key=args.checkpoint_key)
    print(report)
    if not args.verify:
        return EXIT_OK
    return _verify_conversion(args)


def _verify_conversion(args: argparse.Namespace) -> int:
    """``convert --verify``: the written file against the source, in this process (no second start-up)."""
    from bnport.io.formats import KERAS_ARCHIVE, is_torch_source, keras_kind
    from bnport.workflows.verification import verify as run

    torch_file, keras_file = (args.src, args.dst) if is_torch_source(args.src) else (args.dst, args.src)
    t = loading.torch_model(args.torch_model, torch_file, key=args.checkpoint_key if torch_file == args.src else None)
    k = (loading.keras_model(keras_file) if keras_kind(keras_file) == KERAS_ARCHIVE
         else loading.keras_model(args.keras_model, keras_file))
    print(f"verify {args.dst} against {args.src}")
    result = run(t, k, mapping=args.map, input_shape=_input_shapes(args), progress=not args.quiet)
    result.compared["files"] = {"SRC": str(args.src), "DST": str(args.dst)}
    return _reported(result, args)


def inspect(args: argparse.Namespace) -> int:
    """``bnport inspect``: the layers of a checkpoint, BatchNorm health first-class."""
    import json

    from bnport.workflows.inspection import inspect as run

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
    folder = Path(given) if given else Path(__file__).resolve().parents[2] / "fixtures"
    if not (folder / "models.py").is_file():
        raise UsageError(f"no bundled fixtures in {folder}; pass --fixtures DIR (the repository's fixtures/)")
    return folder


def demo(args: argparse.Namespace) -> int:
    """``bnport demo``: convert the bundled PyTorch checkpoint to a Keras file, verify it, explain a naive port."""
    from bnport.reports import writers as render
    from bnport.workflows.conversion import convert as run_convert
    from bnport.workflows.verification import verify as run_verify

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
    result.compared["files"] = {"PyTorch checkpoint": str(src), "Keras file": str(dst)}
    print("   " + str(result).replace("\n", "\n   "))
    render.write_html(result, out / "resnet-verify.html")
    render.write_json(result, out / "resnet-verify.json")
    print(f"   wrote {out / 'resnet-verify.html'} and {out / 'resnet-verify.json'}")
    _demo_naive(fx)
    print("ok: the converted file computes what the PyTorch checkpoint computes" if result.ok else "DRIFT")
    return EXIT_OK if result.ok else EXIT_DRIFT


def _demo_naive(fx: Path) -> None:
    torch_net = loading.torch_model(f"{fx / 'models.py'}:torch_bn_layers", fx / "bn_layers.pt")
    naive_path = fx / "bn_layers_naive.keras"
    print(f"3. why a hand port of BatchNorm layers ({naive_path.name}: same weights, Keras defaults) differs:")
    _print_explanations(torch_net, loading.keras_model(str(naive_path)), indent="   ")
