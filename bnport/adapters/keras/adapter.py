"""The Keras side of the adapter protocol (:class:`bnport.adapters.base.Adapter`)."""

from __future__ import annotations

from pathlib import Path

from bnport.adapters.base import Exported, Tapped
from bnport.core.frameworks import KERAS
from bnport.core.graph import Graph, Node
from bnport.core.layers import AnySpec, Write
from bnport.io.formats import KERAS_ARCHIVE, keras_kind


class KerasAdapter:
    framework = KERAS
    display = "Keras"

    def graph(self, model, *, hollow: bool = False) -> Graph:
        from bnport.adapters.keras import graph

        return graph.graph(model, hollow=hollow)

    def prepare(self, spec: AnySpec, node: Node) -> Write:
        from bnport.adapters.keras import layers

        return layers.prepare(spec, node.layer, node.name, flatten_from=node.flatten_from, own=node.spec)

    def commit(self, writes: list[Write], *, early=None, model=None) -> None:
        from bnport.adapters.keras import writes as keras_writes

        keras_writes.commit(writes, early=early)

    def tap(self, model, names: list[str], activations=None, notes: list[str] | None = None) -> Tapped:
        from bnport.adapters.keras import export, taps

        computed = export.float32_copy(model)
        if computed is not model and notes is not None:
            notes.append("the Keras model holds or computes in half precision: verified as a float32 copy (the "
                         "values as they are, computed in float32)")
        tapped = taps.tapped(computed, names)
        return Tapped(tapped, tapped.finals, tapped.taps, dict(tapped.skipped))

    def export(self, tapped: Tapped, inputs: list, *, name: str = "") -> Exported:
        from bnport.adapters.keras import export

        exported = export.export_keras(tapped.model, [x.shape for x in inputs], [x.dtype.name for x in inputs],
                                       name=name or "keras")
        return Exported(exported.model, exported.feeds(list(inputs)))

    def values(self, writes: list[Write], model, *, early=None):
        from bnport.adapters.keras import writes as keras_writes

        return keras_writes.values(writes, early=early)

    def settings(self, layer) -> dict[str, object]:
        from bnport.adapters.keras import layers

        return layers.settings(layer)

    def load(self, model, weights: Path | None, *, key: str | None = None, notes: list[str] | None = None):
        from bnport.adapters import loading

        if model is None:  # the .keras file holds the model itself
            return loading.keras_model(str(weights))
        return loading.keras_model(model, weights)

    def destination(self, model):
        from bnport.adapters import loading

        return loading.keras_destination(model)

    def holds_no_values(self, model) -> bool:
        return False  # a hollow Keras model is saved from values() always

    def save(self, model, path: Path, values) -> None:
        from bnport.adapters.keras import files

        files.save(model, path, values)

    def readable(self, path: Path) -> bool:
        return path.is_file()

    def early_copies(self, model, into: str):
        return None

    def needs(self, model, src: Path, *, source: bool) -> str | None:
        if model is not None:
            return None
        if not source:
            return "converting to Keras needs --keras-model (a factory or a .keras file)"
        if keras_kind(src) != KERAS_ARCHIVE:
            return f"{src} holds weights only; give the Keras model with --keras-model"
        return None
