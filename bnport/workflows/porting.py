"""``bnport.plan`` and ``bnport.port``: whole models, layer by layer, in either direction."""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bnport.core import health
from bnport.core.frameworks import TORCH, framework_of, torch_and_keras
from bnport.core.graph import Graph
from bnport.core.layers import ROUNDING, Write, cast, cast_is_exact, dtype_of, tensors_of
from bnport.core.pairing import Pair, Plan, match
from bnport.errors import SpecError

if TYPE_CHECKING:
    from bnport.adapters.torch.early_kernels import EarlyKernels

TO_KERAS, TO_TORCH = "PyTorch -> Keras", "Keras -> PyTorch"


def plan(src_model, dst_model, mapping: object = None) -> Plan:
    """Pair the weight-holding layers of a PyTorch and a Keras model (either order); nothing is written.

    Args:
        src_model, dst_model: one ``torch.nn.Module`` (traceable by torch.fx) and one functional or
            sequential Keras model (built); the first is the source of a port, which decides what conflicts (a
            non-zero bias the destination has no room for).
        mapping: None, a dict ``{torch_name: keras_name}`` or ``{"pairs": {...}, "rules": [{"torch": REGEX,
            "keras": REPLACEMENT}]}``, or a JSON/YAML file holding one.

    Besides pairs and conflicts, the plan lists what makes the two definitions compute different things
    whatever the weights (``Plan.differences``: zero padding on other sides, Keras preprocessing layers).
    """
    return _plan(src_model, dst_model, mapping, source_first=True)


def _plan(a, b, mapping: object, *, source_first: bool) -> Plan:
    """:func:`plan`; ``source_first=False`` compares two given models, neither being the source."""
    from bnport.adapters.keras import graph as keras_graph
    from bnport.adapters.torch import graph as torch_graph

    torch_model, keras_model = torch_and_keras(a, b)
    keras_is_destination = keras_model is b  # read the destination's shapes, not its values
    source = (TORCH if torch_model is a else "keras") if source_first else None
    return match(torch_graph.graph(torch_model), keras_graph.graph(keras_model, hollow=keras_is_destination),
                 mapping, source=source)


@dataclass
class PortReport:
    """What :func:`port` copied."""

    direction: str
    pairs: list[Pair] = field(default_factory=list)
    tensors: int = 0
    bytes: int = 0
    unmatched_src: list[str] = field(default_factory=list)
    unmatched_dst: list[str] = field(default_factory=list)
    unsupported_src: list[str] = field(default_factory=list)
    unsupported_dst: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    plan: Plan | None = field(default=None, repr=False)

    def __str__(self) -> str:
        lines = [f"ported {len(self.pairs)} layers ({self.tensors} tensors, {self.bytes / 2**20:.1f} MiB) "
                 f"{self.direction}"]
        lines += [f"  not ported (source, no partner): {n}" for n in self.unmatched_src]
        lines += [f"  not ported (source, no mapping in bnport): {n}" for n in self.unsupported_src]
        lines += [f"  left as it was (destination, no partner): {n}" for n in self.unmatched_dst]
        lines += [f"  left as it was (destination, no mapping in bnport): {n}" for n in self.unsupported_dst]
        lines += [f"  computes differently: {d}" for d in self.differences]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        """A JSON-ready description."""
        return {"direction": self.direction, "tensors": self.tensors, "bytes": self.bytes,
                "pairs": [p.__dict__ for p in self.pairs], "unmatched_src": self.unmatched_src,
                "unmatched_dst": self.unmatched_dst, "unsupported_src": self.unsupported_src,
                "unsupported_dst": self.unsupported_dst, "differences": self.differences, "notes": self.notes}


def port(
    src_model,
    dst_model,
    mapping: object = None,
    strict: bool = True,
    *,
    allow_bad_stats: bool = False,
    progress: bool = False,
) -> PortReport:
    """Copy every weight and BatchNorm state of ``src_model`` into ``dst_model`` (direction from the types).

    Everything is planned and checked before the first tensor is written, so an error leaves ``dst_model`` as
    it was. With ``strict=True`` any unmatched or unsupported weight-holding layer is an error, and so is a
    difference of the two definitions that makes them compute different things whatever the weights
    (``Plan.differences``: padding, preprocessing); with ``strict=False`` they are left out and reported.
    Conflicts (shapes, strides, dtypes, flatten order) and ambiguities are errors either way.
    BatchNorm epsilon and momentum are carried from the source (momentum inverted), as in ``bnport.to_keras``.
    Non-finite weights or statistics and negative variances are refused unless ``allow_bad_stats=True``.
    """
    ready = prepared(src_model, dst_model, mapping, strict, allow_bad_stats=allow_bad_stats, progress=progress)
    commit(ready)
    return ready.report


def commit(ready: Prepared) -> None:
    """Write what :func:`prepared` checked into the destination model, through its framework's adapter."""
    if ready.report.direction == TO_KERAS:
        from bnport.adapters.keras import writes as keras_writes

        keras_writes.commit(ready.writes, early=ready.early)
    else:
        from bnport.adapters.torch import layers as torch_layers

        torch_layers.commit(ready.writes)


@dataclass
class Prepared:
    """A port planned and checked, nothing written yet: its report, every layer's write and, into Keras, the
    kernels already copied into Keras's layout (:mod:`bnport.adapters.torch.early_kernels`)."""

    report: PortReport
    writes: list[Write]
    early: EarlyKernels | None = None


def prepared(
    src_model, dst_model, mapping: object = None, strict: bool = True, *, allow_bad_stats: bool = False,
    progress: bool = False,
) -> Prepared:
    """:func:`port` up to, not including, the writes."""
    early = _early_kernels(src_model, dst_model)  # copying on a worker while the graphs are traced
    try:
        return _prepared(early, src_model, dst_model, mapping, strict, allow_bad_stats, progress)
    except BaseException:
        if early is not None:  # a refused port still waits for its copies: no thread outlives the call
            early.wait()
        raise


def _prepared(early, src_model, dst_model, mapping, strict: bool, allow_bad_stats: bool, progress: bool) -> Prepared:
    p = plan(src_model, dst_model, mapping)
    p.raise_for_problems(strict=strict)
    to_keras = framework_of(src_model) == TORCH
    tg, kg = p.torch_graph, p.keras_graph
    report = PortReport(TO_KERAS if to_keras else TO_TORCH, plan=p)
    report.unmatched_src = p.unmatched_torch if to_keras else p.unmatched_keras
    report.unmatched_dst = p.unmatched_keras if to_keras else p.unmatched_torch
    report.unsupported_src = p.unsupported_torch if to_keras else p.unsupported_keras
    report.unsupported_dst = p.unsupported_keras if to_keras else p.unsupported_torch
    report.differences = [f"{d.torch_name} <-> {d.keras_name}: {d}" for d in p.differences]
    with ThreadPoolExecutor(1, thread_name_prefix="bnport-health") as pool:
        checked = None
        if not allow_bad_stats:  # numpy reads only: on a worker while the writes are prepared
            checked = pool.submit(_refuse_bad_numbers, p.pairs, tg if to_keras else kg, to_keras)
        writes = _prepare(report, p, to_keras, progress)
        if checked is not None:
            checked.result()
    return Prepared(report, writes, early)


def _early_kernels(src_model, dst_model) -> EarlyKernels | None:
    if framework_of(src_model) != TORCH or framework_of(dst_model) == TORCH:
        return None
    import keras

    if keras.backend.backend() != "tensorflow":  # the copies are handed to TensorFlow
        return None
    from bnport.adapters.torch.early_kernels import EarlyKernels

    return EarlyKernels(src_model)


def _prepare(report: PortReport, p: Plan, to_keras: bool, progress: bool) -> list:
    """Every layer's checked write, committed once all have passed: an error leaves the destination as it was."""
    from bnport.adapters.keras import layers as keras_layers
    from bnport.adapters.torch import layers as torch_layers

    tg, kg = p.torch_graph, p.keras_graph
    writes = []
    casts: dict[tuple[str, str], int] = {}
    for pair in _progress(p.pairs, progress):
        t, k = tg.nodes[pair.torch_name], kg.nodes[pair.keras_name]
        spec = _in_destination_dtype((t if to_keras else k).spec, (k if to_keras else t).spec, casts)
        if to_keras:
            writes.append(keras_layers.prepare(spec, k.layer, k.name, flatten_from=k.flatten_from))
        else:
            writes.append(torch_layers.prepare(spec, t.layer, t.name))
        source = (t if to_keras else k).spec
        arrays = tensors_of(source)
        note = getattr(source, "attrs", {}).get("note")
        if note:
            report.notes.append(f"{(t if to_keras else k).name}: {note}")
        report.pairs.append(pair)
        report.tensors += len(arrays)
        report.bytes += sum(a.nbytes for a in arrays.values())
    for (held, want), count in casts.items():
        how = "exactly" if cast_is_exact(held, want) else \
            f"rounding each value by at most {ROUNDING.get(want, 0):.3g} of itself"
        report.notes.append(f"{count} layers hold {held} in the source, written into the destination's {want} {how}")
    return writes


def _in_destination_dtype(spec, destination, casts: dict[tuple[str, str], int]):
    """The source spec in the destination layer's dtype (the destination keeps its own), counting each cast."""
    held, want = dtype_of(spec), dtype_of(destination)
    if held is None or want is None or held == want:
        return spec
    casts[(held, want)] = casts.get((held, want), 0) + 1
    return cast(spec, want)


def _refuse_bad_numbers(pairs: list[Pair], source: Graph, to_keras: bool) -> None:
    bad = []
    for pair in pairs:
        name = pair.torch_name if to_keras else pair.keras_name
        bad += [f"{name}: {p}" for p in health.problems(source.nodes[name].spec)]
    if bad:
        raise SpecError(
            "the source holds impossible numbers (a crashed or diverged training run?); nothing was written:\n  "
            + "\n  ".join(bad) + "\nPass allow_bad_stats=True (--allow-bad-stats) to port them anyway."
        )


def _progress(items: list, enabled: bool):
    if not enabled or not sys.stderr.isatty() or len(items) < 20:
        yield from items
        return
    width = 30
    for i, item in enumerate(items, 1):
        done = width * i // len(items)
        sys.stderr.write(f"\r  porting [{'#' * done}{'.' * (width - done)}] {i}/{len(items)}")
        sys.stderr.flush()
        yield item
    sys.stderr.write("\n")
