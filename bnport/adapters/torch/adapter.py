"""The PyTorch side of the adapter protocol (:class:`bnport.adapters.base.Adapter`)."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path

from bnport.adapters.base import Exported, Tapped
from bnport.core.frameworks import KERAS, TORCH
from bnport.core.graph import Graph, Node
from bnport.core.layers import AnySpec, Write


class TorchAdapter:
    framework = TORCH
    display = "PyTorch"

    def graph(self, model, *, hollow: bool = False) -> Graph:
        from bnport.adapters.torch import graph

        return graph.graph(model)  # a module's shapes cost nothing to read: hollow or not, the same graph

    def prepare(self, spec: AnySpec, node: Node) -> Write:
        from bnport.adapters.torch import layers

        return layers.prepare(spec, node.layer, node.name)

    def commit(self, writes: list[Write], *, early=None, model=None) -> None:
        from bnport.adapters.torch import layers

        layers.commit(writes)
        if model is not None:
            model.eval()

    def tap(self, model, names: list[str], activations=None, notes: list[str] | None = None) -> Tapped:
        from bnport.adapters.torch import export

        tapped, finals = export.with_taps(model, names, activations)
        return Tapped(export.float32_copy(tapped, notes if notes is not None else []), finals, tuple(names))

    def export(self, tapped: Tapped, inputs: list, *, name: str = "") -> Exported:
        from bnport.adapters.torch import export

        outputs = [f"output_{i}" for i in range(tapped.finals)] + [f"tap_{i}" for i in range(len(tapped.names))]
        model, feeds = export.export_fed(tapped.model, inputs, output_names=outputs)  # the weights fed, as on Keras's
        return Exported(model, feeds)

    def values(self, writes: list[Write], model, *, early=None):
        from bnport.adapters.torch import layers

        return layers.state_after(writes, model)

    def settings(self, layer) -> dict[str, object]:
        from bnport.adapters.torch import layers

        return layers.settings(layer)

    def load(self, model, weights: Path | None, *, key: str | None = None, notes: list[str] | None = None):
        from bnport.adapters import loading

        return loading.torch_model(model, weights, key=key, notes=notes)

    def destination(self, model):
        from bnport.adapters import loading

        return nullcontext(loading.torch_destination(model))

    def holds_no_values(self, model) -> bool:
        from bnport.adapters import loading

        return loading.on_meta(model)

    def save(self, model, path: Path, values) -> None:
        from bnport.adapters.torch import files

        files.write_state_dict(model.state_dict() if values is None else values, path)

    def readable(self, path: Path) -> bool:
        from bnport.io.formats import is_torch_source

        return path.is_file() or is_torch_source(path)

    def early_copies(self, model, into: str):
        keras = sys.modules.get("keras")
        if into != KERAS or keras is None or keras.backend.backend() != "tensorflow":  # handed to TensorFlow
            return None
        from bnport.adapters.torch.early_kernels import EarlyKernels

        return EarlyKernels(model)

    def needs(self, model, src: Path, *, source: bool) -> str | None:
        return None if model is not None else "converting needs the PyTorch model (--torch-model, a factory)"

