"""The adapter protocol: the verbs both frameworks' sides offer, so that workflows never branch on direction.

A workflow takes a source adapter and a destination adapter (:func:`bnport.adapters.of` a model,
:func:`bnport.adapters.get` a framework name) and calls the same verbs on either: read the graph of a model, check a
write (``prepare``) and do it (``commit``), give a port's values for a save, load and save files. Each framework's
implementation lives in ``bnport/adapters/<framework>/adapter.py`` and is the only module a workflow reaches.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bnport.core.graph import Graph, Node
from bnport.core.layers import AnySpec, Write


@dataclass
class Tapped:
    """A model that also returns what chosen layers computed: ``model`` (the framework's object, ready to export),
    how many of its outputs are its own (they come first), the layers tapped (their outputs follow, in this order)
    and the layers that could not be tapped, with why."""

    model: object
    finals: int
    names: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class Exported:
    """An ONNX graph and the onnxruntime feeds that run it on the given inputs (weights included where the graph
    takes them as inputs); its outputs are the tapped model's, in order."""

    model: object  # onnx.ModelProto
    feeds: dict


class Adapter(Protocol):
    """One framework's side of a port (see the module docstring)."""

    #: ``"torch"`` or ``"keras"`` (:mod:`bnport.core.frameworks`)
    framework: str
    #: the framework's name for people: ``"PyTorch"``, ``"Keras"``
    display: str

    def graph(self, model: object, *, hollow: bool = False) -> Graph:
        """The weight-holding layers of ``model`` and their wiring; ``hollow``: shapes only (a destination)."""

    def prepare(self, spec: AnySpec, node: Node) -> Write:
        """Check that ``spec`` fits the layer of ``node`` and say what writing it sets; nothing is written."""

    def commit(self, writes: list[Write], *, early: object = None, model: object = None) -> None:
        """Do the checked writes (``early``: kernels already copied into this side's layout, or None) into ``model``
        (the destination model when a whole model is ported, for what applies to it as a whole, or None)."""

    def tap(self, model: object, names: list[str], activations: dict[str, str | None] | None = None,
            notes: list[str] | None = None) -> Tapped:
        """``model`` returning, after its own outputs, the outputs of the named layers (``activations``: layer name ->
        a Keras activation to apply to that layer's output before it is returned, or None), computing in float32
        (a copy, said in ``notes``, where the model holds or computes another precision)."""

    def export(self, tapped: Tapped, inputs: list, *, name: str = "") -> Exported:
        """The tapped model in inference mode as ONNX, for ``inputs`` (this framework's layout; the batch axis stays
        open)."""

    def values(self, writes: list[Write], model: object, *, early: object = None) -> object | None:
        """What a save of ``model`` needs once ``writes`` are done, without doing them (``model`` may hold no values
        of its own); None when the writes leave part of the model unset."""

    def settings(self, layer: object) -> dict[str, object]:
        """Settings a weights file does not store (epsilon; momentum in PyTorch's convention)."""

    def load(self, model: object, weights: Path | None, *, key: str | None = None,
             notes: list[str] | None = None) -> object:
        """A model from a factory reference, a file or a model object, with ``weights`` loaded into it."""

    def destination(self, model: object) -> AbstractContextManager[object]:
        """The model a conversion writes: built for the purpose from a reference (possibly without values of its
        own), or the caller's object as it is."""

    def holds_no_values(self, model: object) -> bool:
        """Whether ``model`` was built without values (a save needs :meth:`values` for every entry)."""

    def save(self, model: object, path: Path, values: object | None) -> None:
        """Write ``model`` (with ``values`` in place of its own, when given) to ``path``, atomically."""

    def readable(self, path: Path) -> bool:
        """Whether ``path`` names a checkpoint this side can read (a file; for PyTorch also a hub folder)."""

    def early_copies(self, model: object, into: str) -> object | None:
        """Work a port from ``model`` into framework ``into`` can start before planning (kernels copied into the
        destination's layout on a worker thread), or None; the destination's :meth:`commit` receives it."""

    def needs(self, model: object, src: Path, *, source: bool) -> str | None:
        """Why a conversion of ``src`` cannot go on with this side's ``model`` reference, this side being the
        conversion's source or its destination (None when it can)."""
