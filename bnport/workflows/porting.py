"""``bnport.plan`` and ``bnport.port``: whole models, layer by layer, in either direction."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from bnport import adapters
from bnport.core import health, wording
from bnport.core.frameworks import KERAS, TORCH, framework_of, torch_and_keras
from bnport.core.layers import ROUNDING, Write, cast, cast_is_exact, dtype_of, tensors_of
from bnport.core.pairing import Pair, Plan, match
from bnport.errors import SpecError
from bnport.workflows.progress import bar as progress_bar

if TYPE_CHECKING:
    from bnport.adapters.torch.early_kernels import EarlyKernels



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
    torch_and_keras(a, b)  # one of each, or a UsageError
    graphs = {framework_of(m): adapters.of(m).graph(m, hollow=m is b) for m in (a, b)}  # b: shapes, not values
    return match(graphs[TORCH], graphs[KERAS], mapping, source=framework_of(a) if source_first else None)


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
        held = f"{wording.count(self.tensors, 'tensor')}, {wording.size(self.bytes)}"
        lines = [f"ported {wording.count(len(self.pairs), 'layer')} ({held}) {self.direction}"]
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
    A PyTorch destination is left in eval mode, the whole module (the mode its ported statistics are used in;
    ``.train()`` it to train on).
    """
    ready = prepared(src_model, dst_model, mapping, strict, allow_bad_stats=allow_bad_stats, progress=progress)
    commit(ready)
    return ready.report


def commit(ready: Prepared) -> None:
    """Write what :func:`prepared` checked into the destination model, through its framework's adapter."""
    adapters.get(ready.destination).commit(ready.writes, early=ready.early, model=ready.model)


@dataclass
class Prepared:
    """A port planned and checked, nothing written yet: its report, every layer's write and, into Keras, the
    kernels already copied into Keras's layout (:mod:`bnport.adapters.torch.early_kernels`)."""

    report: PortReport
    writes: list[Write]
    destination: str
    early: EarlyKernels | None = None
    model: object = None


def prepared(
    src_model, dst_model, mapping: object = None, strict: bool = True, *, allow_bad_stats: bool = False,
    progress: bool = False,
) -> Prepared:
    """:func:`port` up to, not including, the writes."""
    early = adapters.of(src_model).early_copies(src_model, adapters.of(dst_model).framework)  # while tracing
    try:
        return _prepared(early, src_model, dst_model, mapping, strict, allow_bad_stats, progress)
    except BaseException:
        if early is not None:  # a refused port still waits for its copies: no thread outlives the call
            early.wait()
        raise


def _prepared(early, src_model, dst_model, mapping, strict: bool, allow_bad_stats: bool, progress: bool) -> Prepared:
    p = plan(src_model, dst_model, mapping)
    p.raise_for_problems(strict=strict)
    src, dst = adapters.of(src_model), adapters.of(dst_model)
    report = PortReport(f"{src.display} -> {dst.display}", plan=p)
    report.unmatched_src, report.unmatched_dst = p.unmatched(src.framework), p.unmatched(dst.framework)
    report.unsupported_src, report.unsupported_dst = p.unsupported(src.framework), p.unsupported(dst.framework)
    report.differences = [f"{d.torch_name} <-> {d.keras_name}: {d}" for d in p.differences]
    known = early.known_finite() if early is not None and not allow_bad_stats else None
    with ThreadPoolExecutor(1, thread_name_prefix="bnport-health") as pool:
        checked = None
        if not allow_bad_stats and known is not None:  # the kernels were checked as they were copied: little left
            _refuse_bad_numbers(p, src.framework, known)
        elif not allow_bad_stats:  # numpy reads of every array: on a worker while the writes are prepared
            checked = pool.submit(_refuse_bad_numbers, p, src.framework, None)
        writes = _prepare(report, p, src.framework, dst, progress)
        if checked is not None:
            checked.result()
    return Prepared(report, writes, dst.framework, early, dst_model)


def _prepare(report: PortReport, p: Plan, source: str, dst: adapters.Adapter, progress: bool) -> list:
    """Every layer's checked write, committed once all have passed: an error leaves the destination as it was."""
    sg, dg = p.graph(source), p.graph(dst.framework)
    writes = []
    casts: dict[tuple[str, str], int] = {}
    for pair in progress_bar(p.pairs, progress):
        s, d = sg.nodes[pair.name(source)], dg.nodes[pair.name(dst.framework)]
        writes.append(dst.prepare(_in_destination_dtype(s.spec, d.spec, casts), d))
        arrays = tensors_of(s.spec)
        note = getattr(s.spec, "attrs", {}).get("note")
        if note:
            report.notes.append(f"{s.name}: {note}")
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


def _refuse_bad_numbers(p: Plan, source: str, known_finite) -> None:
    bad = []
    graph = p.graph(source)
    for pair in p.pairs:
        name = pair.name(source)
        bad += [f"{name}: {problem}" for problem in health.problems(graph.nodes[name].spec, known_finite)]
    if bad:
        raise SpecError(
            "the source holds impossible numbers (a crashed or diverged training run?); nothing was written:\n  "
            + "\n  ".join(bad) + "\nPass allow_bad_stats=True (--allow-bad-stats) to port them anyway."
        )
