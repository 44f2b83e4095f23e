"""``bnport.convert``: checkpoint file to checkpoint file, PyTorch <-> Keras, written atomically.

The destination is checked before any work, the source is only ever read, and the destination appears
whole or not at all (temporary file + rename). A weights-only destination (a PyTorch state dict, a Keras
``.weights.h5``) does not store epsilon or momentum: they come back from the model definition when the file
is loaded, so bnport refuses to write one whose definition would compute something else (a different
epsilon) and notes a different momentum.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from bnport.core.frameworks import KERAS, TORCH
from bnport.core.pairing import Plan
from bnport.errors import CheckpointError, UsageError
from bnport.io.atomic import check_destination
from bnport.io.formats import KERAS_ARCHIVE, framework_of_file, is_torch_source, keras_kind
from bnport.workflows import loading
from bnport.workflows.porting import PortReport, Prepared, commit, prepared


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
    direction = (framework_of_file(src), framework_of_file(dst))
    if direction[0] == direction[1]:
        raise UsageError(f"{src} and {dst} are both {direction[0]} files; bnport converts between frameworks")
    check_destination(dst, force=force, sources=(src,))
    if not (src.is_file() or (direction[0] == TORCH and is_torch_source(src))):
        raise CheckpointError(f"checkpoint not found: {src}")
    if direction[0] == TORCH and keras_model is None:
        raise UsageError("converting to Keras needs --keras-model (a factory or a .keras file)")
    if direction[0] == KERAS and keras_model is None and keras_kind(src) != KERAS_ARCHIVE:
        raise UsageError(f"{src} holds weights only; give the Keras model with --keras-model")
    framework = direction[1]
    given = not loading.is_reference(keras_model if framework == KERAS else torch_model)  # the caller's own
    with (loading.keras_destination(keras_model) if framework == KERAS
          else nullcontext(loading.torch_destination(torch_model))) as target:
        read_notes: list[str] = []
        if framework == KERAS:
            source = loading.torch_model(torch_model, src, key=checkpoint_key, notes=read_notes)
        else:
            source = loading.keras_model(str(src)) if keras_model is None else loading.keras_model(keras_model, src)
        ready = prepared(source, target, mapping, strict, allow_bad_stats=allow_bad_stats, progress=progress)
        report = ConvertReport(src, dst, ready.report, list(read_notes))
        _check_settings_survive(report, dst, _defined_settings(ready.report.plan, framework), framework)
        values = _written(ready, framework, target, in_place=given)
        if values is None and framework == TORCH and not given:  # the port leaves some state dict entry unset
            if loading.on_meta(target):  # with no value to keep: build the model for real, and port again
                target = loading.torch_model(torch_model)
                ready = prepared(source, target, mapping, strict, allow_bad_stats=allow_bad_stats, progress=progress)
                report = ConvertReport(src, dst, ready.report, report.notes)
            values = _written(ready, framework, target, in_place=True)
        report.port.plan = None  # the plan holds the source model: let it go before the save allocates
        del source, ready
        _save(target, dst, framework, values)
    return report


def _written(ready: Prepared, framework: str, target, *, in_place: bool) -> list | dict | None:
    """What the save needs once the port is done. Into a model the caller gave: the writes done, None. Otherwise
    the model is left as it is (it may have no values of its own: :mod:`bnport.adapters.keras.hollow`, PyTorch's
    ``meta`` device): Keras, each variable with its value; PyTorch, the state dict, or None (nothing written) if the
    port does not fill it."""
    if in_place:
        commit(ready)
        return None
    if framework == KERAS:
        from bnport.adapters.keras import writes as keras_writes

        return keras_writes.values(ready.writes, early=ready.early)
    from bnport.adapters.torch import layers as torch_layers

    return torch_layers.state_after(ready.writes, target)


def _defined_settings(plan: Plan, framework: str) -> dict[str, dict]:
    """Each destination layer's settings as the model definition made them (epsilon, momentum): read before
    the writes change them."""
    if framework == TORCH:
        from bnport.adapters.torch import layers as side

        graph = plan.torch_graph
    else:
        from bnport.adapters.keras import layers as side

        graph = plan.keras_graph
    return {name: side.settings(node.layer) for name, node in graph.nodes.items()}


def _check_settings_survive(report: ConvertReport, dst: Path, defined: dict[str, dict], target: str) -> None:
    """Refuse a weights-only destination whose model definition has another epsilon than the source (before any
    write: a model the caller gave is left as it was)."""
    if keras_kind(dst) == KERAS_ARCHIVE:
        return  # the archive stores each layer's configuration
    from bnport.adapters.keras import layers as keras_layers
    from bnport.adapters.torch import layers as torch_layers

    plan = report.port.plan
    if target == TORCH:  # the source's settings, in the same terms (epsilon; momentum in PyTorch's convention)
        pairs = [(p.torch_name, keras_layers.settings(plan.keras_graph.nodes[p.keras_name].layer))
                 for p in report.port.pairs]
    else:
        pairs = [(p.keras_name, torch_layers.settings(plan.torch_graph.nodes[p.torch_name].layer))
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


def _save(model, dst: Path, framework: str, values: list | dict | None) -> None:
    if framework == TORCH:
        from bnport.adapters.torch import files as torch_files

        torch_files.write_state_dict(model.state_dict() if values is None else values, dst)
    else:
        from bnport.adapters.keras import files as keras_files

        keras_files.save(model, dst, values)
