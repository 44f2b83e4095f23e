"""``bnport.convert``: checkpoint file to checkpoint file, PyTorch <-> Keras, written atomically.

The destination is checked before any work, the source is only ever read, and the destination appears
whole or not at all (temporary file + rename). A weights-only destination (a PyTorch state dict, a Keras
``.weights.h5``) does not store epsilon or momentum: they come back from the model definition when the file
is loaded, so bnport refuses to write one whose definition would compute something else (a different
epsilon) and notes a different momentum.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bnport import adapters
from bnport.adapters import loading
from bnport.core.frameworks import KERAS, TORCH
from bnport.errors import CheckpointError, UsageError
from bnport.io.atomic import check_destination
from bnport.io.formats import KERAS_ARCHIVE, files_to_write, framework_of_file, keras_kind
from bnport.workflows.porting import PortReport, commit, prepared


@dataclass
class ConvertReport:
    """What :func:`convert` did."""

    src: Path
    dst: Path
    port: PortReport
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"{self.src} -> {self.dst}", f"  {self.port}".replace("\n", "\n  ")]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


def convert(
    src: str | Path,
    dst: str | Path,
    *,
    torch_model: str | object,
    keras_model: str | object | None = None,
    mapping: object = None,
    force: bool = False,
    strict: bool = True,
    allow_bad_stats: bool = False,
    progress: bool = False,
    checkpoint_key: str | None = None,
) -> ConvertReport:
    """Port the weights in ``src`` into a model of the other framework and save them as ``dst``.

    Args:
        src, dst: checkpoint paths; the direction comes from their suffixes.
        torch_model: ``MODULE:FACTORY`` or ``path.py:FACTORY`` building the PyTorch model, or a ``torch.nn.Module``.
        keras_model: a ``.keras`` file (safe mode), a factory or a ``keras.Model``; may be omitted when ``src`` is a
            ``.keras`` file.
        mapping, strict, allow_bad_stats: as in :func:`bnport.port`.
        force: replace an existing ``dst``.
        checkpoint_key: the entry of a PyTorch ``src`` holding the state dict to convert (an EMA copy such as
            ``state_dict_ema``); by default the main one (:mod:`bnport.adapters.torch.checkpoints`). ``src`` may
            also be a shard index (``model.safetensors.index.json``) or a hub folder.

    A model object is used as it is, which spares building one per file when converting many: the source
    framework's model receives ``src``'s weights, the destination's receives the port (as :func:`bnport.port`
    gives it) before it is saved. For a weights-only ``dst`` it stands for the model definition the file will be
    loaded into. Models built here from factories are the conversion's own and get no values of their own: a
    Keras one is built without initial values (:mod:`bnport.adapters.keras.hollow`), a PyTorch one on the ``meta``
    device, and the ported values go straight to the file.
    """
    src, dst = Path(src), Path(dst)
    if dst.is_dir():
        first, second = files_to_write(src, dst)
        raise CheckpointError(f"{dst} is a directory: give the file to write in it, e.g. {first} or {second}")
    source, destination = adapters.get(framework_of_file(src)), adapters.get(framework_of_file(dst))
    if source is destination:
        raise UsageError(f"{src} and {dst} are both {source.framework} files; bnport converts between frameworks")
    check_destination(dst, force=force, sources=(src,))
    if not source.readable(src):
        raise CheckpointError(f"checkpoint not found: {src}")
    models = {TORCH: torch_model, KERAS: keras_model}
    for side, is_source in ((source, True), (destination, False)):
        why = side.needs(models[side.framework], src, source=is_source)
        if why:
            raise UsageError(why)
    reference = models[destination.framework]
    given = not loading.is_reference(reference)  # the caller's own model object
    with destination.destination(reference) as target:
        read_notes: list[str] = []
        model = source.load(models[source.framework], src, key=checkpoint_key, notes=read_notes)
        ready = prepared(model, target, mapping, strict, allow_bad_stats=allow_bad_stats, progress=progress)
        report = ConvertReport(src, dst, ready.report, list(read_notes))
        defined = {name: destination.settings(node.layer)
                   for name, node in ready.report.plan.graph(destination.framework).nodes.items()}
        _check_settings_survive(report, dst, defined, source, destination)
        values = None if given else destination.values(ready.writes, target, early=ready.early)
        if values is None and not given and destination.holds_no_values(target):
            target = destination.load(reference, None)  # the port leaves an entry unset: build it for real
            ready = prepared(model, target, mapping, strict, allow_bad_stats=allow_bad_stats, progress=progress)
            report = ConvertReport(src, dst, ready.report, report.notes)
        if values is None:  # into the model itself: the caller's, or one the port does not fill
            commit(ready)
        report.port.plan = None  # the plan holds the source model: let it go before the save allocates
        del model, ready
        destination.save(target, dst, values)
    return report


def _check_settings_survive(report: ConvertReport, dst: Path, defined: dict[str, dict], source, destination) -> None:
    """Refuse a weights-only destination whose model definition has another epsilon than the source (before any
    write: a model the caller gave is left as it was). ``defined``: each destination layer's settings as the model
    definition made them; ``source``, ``destination``: the two adapters."""
    if keras_kind(dst) == KERAS_ARCHIVE:
        return  # the archive stores each layer's configuration
    plan = report.port.plan
    graph = plan.graph(source.framework)  # the source's settings, in the same terms (momentum: PyTorch's)
    pairs = [(p.name(destination.framework), source.settings(graph.nodes[p.name(source.framework)].layer))
             for p in report.port.pairs]
    errors = []
    for name, have in pairs:
        want = defined.get(name, {})
        if have.get("epsilon") != want.get("epsilon"):
            errors.append(f"{name}: epsilon {have['epsilon']:g} in the source, {want['epsilon']:g} in the definition")
        if have.get("momentum") != want.get("momentum"):
            report.notes.append(f"{name}: momentum {have['momentum']} (PyTorch convention) in the source but "
                                f"{want.get('momentum')} in the model definition; {dst.name} cannot store it "
                                "(inference is unaffected)")
    if errors:
        raise CheckpointError(
            f"{dst.name} would store weights only, and the model definition disagrees with the source on "
            "settings the file cannot hold, so loading it would compute something else; nothing was written:\n  "
            + "\n  ".join(errors)
            + "\nFix the model definition, or (Keras) write a .keras file, which keeps each layer's settings."
        )
