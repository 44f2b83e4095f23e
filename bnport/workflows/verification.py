"""``bnport.verify``: run both models through ONNX Runtime and compare every ported layer.

The PyTorch model is exported in eval mode by the legacy exporter with constant folding off, and the Keras
model in inference mode by the active Keras backend's exporter (tf2onnx, jax2onnx or PyTorch's); each export
also returns the output of every paired layer (a tapped copy of the model), so no exporter can fold a BatchNorm
away from the comparison. Both run in onnxruntime on the same inputs (channels-first for PyTorch, channels-last
for a channels-last Keras model), and the pairs are compared in PyTorch execution order against tolerances from
:mod:`bnport.core.tolerance`.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from bnport import adapters
from bnport.adapters import collector
from bnport.core import kinds, layout, model_inputs, tolerance
from bnport.core.compare import compare
from bnport.core.findings import Finding
from bnport.core.pairing import Pair, Plan
from bnport.errors import IncompatibleLayerError, warn
from bnport.onnxcheck import session as runtime
from bnport.workflows.progress import Stages
from bnport.workflows.verify_report import Row, VerifyReport


def verify(
    torch_model,
    keras_model,
    inputs: object = None,
    mapping: object = None,
    per_layer: bool = True,
    atol: float | None = None,
    rtol: float | None = None,
    *,
    seed: int = 0,
    input_shape: object = None,
    batch: int = 2,
    progress: bool = False,
) -> VerifyReport:
    """Check that a ported model computes what the original computes, layer by layer, through ONNX Runtime.

    Args:
        torch_model, keras_model: the two models (either order of porting; neither is modified).
        inputs: channels-first inputs (N, C, ...): one array, a sequence in the Keras model's input order, or a
            dict by Keras input name (see :mod:`bnport.core.model_inputs`); None draws seeded inputs of the Keras
            model's input shapes: standard-normal floats, integer ids below the vocabulary of the Embedding they
            feed. A channels-last Keras model is fed float inputs of rank 3 and more transposed.
        mapping: as in :func:`bnport.plan`.
        per_layer: compare every paired layer, not only the final outputs.
        atol, rtol: override the derived tolerance with ``atol + rtol * max|reference|`` (either may be given).
        seed: seed of the default inputs.
        input_shape: channels-first shape, batch included (one, or one per input), of drawn inputs, for a model
            whose input shape leaves sizes open.
        batch: the batch size of drawn inputs.
        progress: say on a terminal which stage runs (exports, onnxruntime, comparison); nothing elsewhere.

    The tolerance of a layer grows with its depth (see :mod:`bnport.core.tolerance`): ``2 * u * depth *
    max|output|``, where depth sums ``sqrt(K) + 4`` over the longest path of layers leading to it and ``u`` is
    2**-24, or the rounding of float16 (2**-11) or bfloat16 (2**-8) where a model holds or computes in it (verify
    computes in float32 either way, said in ``VerifyReport.notes``).
    """
    stage = Stages(progress, "verify")
    try:
        return _verify(torch_model, keras_model, inputs, mapping, per_layer, atol, rtol, seed, input_shape, batch,
                       stage)
    finally:
        stage.done()


def _verify(torch_model, keras_model, inputs, mapping, per_layer, atol, rtol, seed, input_shape, batch,
            stage: Stages) -> VerifyReport:
    from bnport.adapters.torch import export as torch_export
    from bnport.adapters.torch.batchnorm import in_training_mode
    from bnport.core.frameworks import KERAS, TORCH, torch_and_keras
    from bnport.workflows.porting import _plan

    torch_model, keras_model = torch_and_keras(torch_model, keras_model)
    torch_side, keras_side = adapters.get(TORCH), adapters.get(KERAS)
    p = _plan(torch_model, keras_model, mapping, source_first=False)
    if p.ambiguous:  # conflicts and differences are diagnosed where the outputs part; a guess is never made
        p.raise_for_problems(strict=False)
    keras_last = _keras_channels_last(p)
    xs = model_inputs.resolve(_input_specs(keras_model), inputs, keras_last=keras_last, input_shape=input_shape,
                              batch=batch, seed=seed, vocab=_vocabularies(p))
    clock: dict[str, float] = {}
    wanted = p.pairs if per_layer else []
    notes: list[str] = []
    skipped: dict[str, str] = {}
    activations = {pair.torch_name: p.keras_graph.nodes[pair.keras_name].activation for pair in wanted}
    for pair in wanted:
        act = activations[pair.torch_name]
        if act and not torch_export.supports_activation(act):
            skipped[pair.keras_name] = (f"the Keras layer applies activation '{act}' inside itself, which bnport "
                                        "cannot apply to the PyTorch layer's output to compare them")
    # the exports make hundreds of thousands of objects: no collector walk of the whole heap meanwhile, their
    # cyclic garbage freed before onnxruntime's outputs take memory (adapters/collector.py)
    with collector.paused():
        k_tapped = keras_side.tap(keras_model, [x.keras_name for x in wanted if x.keras_name not in skipped],
                                  notes=notes)
        skipped.update(k_tapped.skipped)
        pairs = [pair for pair in wanted if pair.keras_name not in skipped]
        stage("exporting the PyTorch model to ONNX")
        began = start = time.perf_counter()
        t_tapped = torch_side.tap(torch_model, [pair.torch_name for pair in pairs], activations, notes=notes)
        t_onnx = torch_side.export(t_tapped, xs.torch)
        clock["export_torch"] = time.perf_counter() - start
        # Both exports before onnxruntime runs (and, in a fresh process, is imported): once its library is loaded
        # every C++ exception in the process costs about 4x more (its pybind11 exception translators are shared with
        # torch's and each one rethrows), and the TorchScript exporter ends a pybind11 iterator, one exception, per
        # node it walks: the export of a Keras ResNet-50 on the torch backend takes 1.9 s before and 2.5 s after
        # (measured: docs/performance.md). Nor would the export gain from running beside onnxruntime: both want the
        # two cores.
        stage("exporting the Keras model to ONNX")
        start = time.perf_counter()
        k_onnx = keras_side.export(k_tapped, list(xs.keras), name=keras_model.name)
        clock["export_keras"] = time.perf_counter() - start
    stage("running both graphs in onnxruntime")
    t_out, torch_seconds = _timed(runtime.run, t_onnx.model, t_onnx.feeds)
    k_out, keras_seconds = _timed(runtime.run, k_onnx.model, k_onnx.feeds)
    t_finals, k_finals = t_tapped.finals, k_tapped.finals
    clock["onnxruntime"] = torch_seconds + keras_seconds
    clock["total"] = time.perf_counter() - began
    stage(f"comparing {len(pairs)} layer pairs and the outputs")
    units = {pair.torch_name: _unit(p, pair) for pair in p.pairs}
    coarsest = max(units.values(), default=tolerance.U)
    if coarsest > tolerance.U and atol is None and rtol is None:
        notes.append(f"a model holds or computes in half precision: tolerances use its rounding unit {coarsest:.3g} "
                     f"(float32: {tolerance.U:.3g}) where it is involved")
    rows = _rows(p, pairs, t_out[t_finals:], k_out[k_finals:], keras_last, atol, rtol, units)
    final = _final_rows(p, t_out[:t_finals], k_out[:k_finals], keras_last, atol, rtol, coarsest)
    rows = [r if r.passed else replace(r, findings=_own_cause(r, p)) for r in rows]
    failing = [r for r in rows + final if not r.passed]
    first = failing[0] if failing else None
    findings = _diagnose(first, p) if first is not None else ()
    not_compared = [f"{pair.torch_name} <-> {pair.keras_name}: {skipped[pair.keras_name]}" for pair in wanted
                    if pair.keras_name in skipped]
    if per_layer and not wanted:
        not_compared.append("no layer pair: the plan paired no weight-holding layers; only the outputs were compared")
    warned = _training_warning(in_training_mode(torch_model))
    for message in warned:
        warn(message)
    return VerifyReport(ok=not failing and not not_compared, rows=rows, final=final, first_divergence=first,
                        findings=findings, not_compared=not_compared, unpaired=_unpaired(p), notes=notes,
                        warnings=warned,
                        input_shape=xs.shapes[0], input_shapes=list(xs.shapes), seconds=clock,
                        compared=_compared(torch_model, keras_model, xs.shapes))


def _compared(torch_model, keras_model, shapes) -> dict:
    """The report's record of what was compared, on what (see ``VerifyReport.compared``)."""
    from importlib import metadata

    import keras

    backend = keras.backend.backend()
    versions = {}
    for package in ("bnport", "torch", "keras", "onnx", "onnxruntime",
                    {"tensorflow": "tf2onnx", "jax": "jax2onnx"}.get(backend), backend):
        try:
            versions[package] = metadata.version(package) if package else None
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions.pop(None, None)
    return {"torch_model": f"{type(torch_model).__module__}.{type(torch_model).__qualname__}",
            "keras_model": f"{type(keras_model).__name__} '{keras_model.name}'", "keras_backend": backend,
            "input_shapes": [list(s) for s in shapes], "versions": versions, "files": {}}


def _training_warning(names: list[str]) -> list[str]:
    if not names:
        return []
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return [f"the PyTorch model is in training mode ({len(names)} module{'s' if len(names) != 1 else ''} whose "
            f"output depends on it: {shown}): verified in eval mode, as exported. Run as it is, BatchNorm normalizes "
            "with each batch's statistics and overwrites its running statistics on every forward pass; call "
            "model.eval() before running it"]


def _unpaired(p: Plan) -> list[str]:
    """The weight-holding layers no comparison covers on its own, each with the reason."""
    return ([f"PyTorch {n}: no Keras layer pairs with it" for n in p.unmatched_torch]
            + [f"Keras {n}: no PyTorch layer pairs with it" for n in p.unmatched_keras]
            + [f"PyTorch {n}: bnport has no mapping for it" for n in p.unsupported_torch]
            + [f"Keras {n}: bnport has no mapping for it" for n in p.unsupported_keras])


def _timed(fn, *args):
    start = time.perf_counter()
    return fn(*args), time.perf_counter() - start


def _input_specs(keras_model) -> list[model_inputs.InputSpec]:
    from bnport.adapters.keras.graph import functional

    return [model_inputs.InputSpec(t.name, tuple(t.shape), str(t.dtype)) for t in functional(keras_model).inputs]


def _vocabularies(p: Plan) -> dict[int, int]:
    """Input index -> the smallest vocabulary of the Embeddings it feeds directly (token ids must stay below)."""
    out: dict[int, int] = {}
    for node in p.keras_graph.nodes.values():
        if getattr(node.spec, "kind", None) != "embedding":
            continue
        size = int(node.spec.arrays["weight"].shape[0])
        for pred in node.preds:
            if pred.startswith("<input:"):
                i = int(pred[len("<input:"):-1])
                out[i] = min(out.get(i, size), size)
    return out


def _keras_channels_last(p: Plan) -> bool:
    """Whether the Keras model keeps channels last (read from its first convolution; default yes)."""
    formats = (getattr(n.spec, "attrs", {}).get("data_format") for n in p.keras_graph.nodes.values())
    return next((f for f in formats if f), "channels_last") == "channels_last"


def _to_torch_layout(y: np.ndarray, has_channel_axis: bool, keras_last: bool,
                     like: tuple[int, ...] | None = None) -> np.ndarray:
    """A Keras output in PyTorch's layout; ``like``: the PyTorch output's shape, which a Keras output differing
    only by axes of size 1 takes (torchvision keeps (N, C, 1, 1) after pooling where Keras has (N, C))."""
    if keras_last and has_channel_axis and y.ndim > 2:
        y = np.transpose(y, layout.to_channels_first_axes(y.ndim))  # a view: the comparison reads it as it is
    if like is not None and y.shape != like and [d for d in y.shape if d != 1] == [d for d in like if d != 1]:
        y = y.reshape(like)
    return y


#: relative rounding of each floating dtype, the unit of its tolerance
_UNITS = {"float16": 2.0**-11, "bfloat16": 2.0**-8, "float32": tolerance.U, "float64": tolerance.U}


def _unit(p: Plan, pair: Pair) -> float:
    """The rounding unit of a pair: the coarsest precision either layer holds, or the Keras layer computes in."""
    from bnport.core.layers import dtype_of

    t, k = p.torch_graph.nodes[pair.torch_name], p.keras_graph.nodes[pair.keras_name]
    dtypes = {dtype_of(t.spec), dtype_of(k.spec), getattr(k.layer, "compute_dtype", None)}
    return max(_UNITS.get(d, tolerance.U) for d in dtypes if d)


def _tol(depth: float, ref: np.ndarray, atol, rtol, unit: float = tolerance.U) -> float:
    if atol is None and rtol is None:
        return tolerance.tolerance(depth, ref, unit)
    return (atol or 0.0) + (rtol or 0.0) * float(np.max(np.abs(ref)))


def _rows(p: Plan, pairs: list[Pair], t_out, k_out, keras_last, atol, rtol, units) -> list[Row]:
    depths = tolerance.depths(p.torch_graph)
    rows = []
    for pair, yt, yk in zip(pairs, t_out, k_out, strict=True):
        name = pair.torch_name
        channels_first_norm = bool(getattr(p.torch_graph.nodes[name].spec, "attrs", {}).get("channels_first"))
        yk = _to_torch_layout(yk, kinds.has_channels(pair.kind) or channels_first_norm, keras_last, yt.shape)
        tol = _tol(depths[name], yt, atol, rtol, units[name])
        rows.append(Row(name, pair.keras_name, pair.kind, compare(f"{name} <-> {pair.keras_name}", yk, yt, tol), tol))
    return rows


def _output_has_channels(p: Plan, index: int) -> bool:
    """Whether model output ``index`` has a channel axis, which Keras keeps last: unless every weight-holding layer
    feeding it gives outputs laid out the same in both frameworks (an Embedding, a Dense, a LayerNorm over the last
    axis), an image-shaped output is taken to be channels-last in Keras."""
    def feeding(graph):
        slots = graph.outputs
        return [graph.nodes[n] for n in (slots[index] if index < len(slots) else ()) if n in graph.nodes]

    keras_side, torch_side = feeding(p.keras_graph), feeding(p.torch_graph)
    if not keras_side:
        return True
    return any(kinds.has_channels(getattr(node.spec, "kind", "batchnorm")) for node in keras_side) or any(
        getattr(node.spec, "attrs", {}).get("channels_first") for node in torch_side)


def _final_rows(p: Plan, t_out, k_out, keras_last, atol, rtol, unit: float) -> list[Row]:
    if len(t_out) != len(k_out):
        raise IncompatibleLayerError(f"the PyTorch model has {len(t_out)} outputs and the Keras model {len(k_out)}")
    depth = tolerance.output_depth(p.torch_graph)
    rows = []
    for i, (yt, yk) in enumerate(zip(t_out, k_out, strict=True)):
        yk = _to_torch_layout(yk, _output_has_channels(p, i), keras_last, yt.shape)
        tol = _tol(depth, yt, atol, rtol, unit)
        rows.append(Row(f"output {i}", f"output {i}", "output", compare(f"output {i}", yk, yt, tol), tol))
    return rows


def _own_cause(row: Row, p: Plan) -> tuple[Finding, ...]:
    """What a failing pair's own states say about it; empty when they agree (the pair fails on its inputs). Read
    from the two layers' weights and settings, so a fault is seen where it is even behind an earlier one."""
    from bnport.core.diagnose import diagnose_pair

    known = [Finding(d.code, d.message) for d in p.differences if d.torch_name == row.torch_name]
    known += [Finding("conflict", c) for c in p.conflicts_of.get(row.torch_name, [])]
    found = [f for f in diagnose_pair(p, row.torch_name, row.keras_name) if f.code != "upstream"]
    return tuple(known) + tuple(f for f in found if f.code not in {k.code for k in known})


def _diagnose(row: Row, p: Plan) -> tuple[Finding, ...]:
    from bnport.core.diagnose import diagnose_pair

    if row.kind == "output":
        last = [n for slot in p.keras_graph.outputs for n in slot if n in p.keras_graph.nodes]
        acts = [f"Keras {n} applies '{p.keras_graph.nodes[n].activation}' inside itself" for n in last
                if p.keras_graph.nodes[n].activation]
        found = [Finding("activation", "; ".join(acts) + ": if the PyTorch model ends without that activation, the "
                         "outputs differ by it (keras.applications takes classifier_activation=None)")] if acts else []
        return (*found, Finding("output", "every compared layer passed but the final outputs differ: the difference "
                                          "comes from weightless operations (padding, pooling, activations, flatten) "
                                          "or an unported layer"))
    return row.findings or tuple(diagnose_pair(p, row.torch_name, row.keras_name))  # its own cause, or upstream
