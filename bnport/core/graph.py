"""The dataflow graph of a model's weight-holding layers, and structural labels for matching (no framework).

Each adapter reduces its model to the weight-holding layers and, for each, the nearest weight-holding layers
(or model inputs) that feed it through weightless operations (activations, pooling, additions, padding,
reshapes). Two models of the same architecture give the same reduced graph whatever order their layers are
defined in, which is what lets :mod:`bnport.plan` pair a torchvision-style block (downsample last) with a
Keras one (shortcut first).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from bnport.core.layers import AnySpec, signature
from bnport.core.padding import Padding


def input_name(index: int) -> str:
    """The pseudo-layer name of model input ``index``."""
    return f"<input:{index}>"


@dataclass
class Node:
    """One weight-holding layer.

    Attributes:
        name: the layer's name in its framework (PyTorch module path, Keras layer path).
        spec: its weights in the neutral convention.
        preds: names of the nearest weight-holding layers or inputs feeding it.
        flatten_from: (Keras) the channels-last feature-map shape a Flatten turned into this Dense's input.
        layer: the framework object itself.
        padding: (convolutions) the zero padding its input gets, from the layer and from padding operations
            feeding it directly.
        input_sizes: the spatial sizes of its input, where the model fixes them (Keras), else None.
        preprocessing: what the model does to its input before this layer, when only weightless operations lie
            between them (Keras ``Rescaling``, ``Normalization``): one description each, identities left out.
        activation: (Keras) the activation the layer applies inside itself (``Conv2D(activation="silu")``), by
            Keras name; None when linear. The layer's output is then the activation's.
    """

    name: str
    spec: AnySpec
    preds: tuple[str, ...]
    layer: object = None
    flatten_from: tuple[int, ...] | None = None
    reread: Callable[[], AnySpec] | None = field(default=None, repr=False)
    padding: Padding | None = None
    input_sizes: tuple[int | None, ...] | None = None
    preprocessing: tuple[str, ...] = ()
    activation: str | None = None

    def values(self) -> AnySpec:
        """The spec with its values (a hollow graph's nodes hold shapes only until asked)."""
        return self.spec if self.reread is None else self.reread()


@dataclass
class Graph:
    """A model reduced to its weight-holding layers (in execution order) and their connections."""

    framework: str
    hollow: bool = False
    nodes: dict[str, Node] = field(default_factory=dict)
    outputs: tuple[tuple[str, ...], ...] = ()
    unsupported: list[str] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, node: Node) -> None:
        """Add a node (its name must be new); its position is its execution order."""
        self.position[node.name] = len(self.nodes)
        self.nodes[node.name] = node

    def successors(self) -> dict[str, list[str]]:
        """Name -> names of the nodes it feeds (inputs included as keys)."""
        succ: dict[str, list[str]] = {}
        for node in self.nodes.values():
            for p in node.preds:
                succ.setdefault(p, []).append(node.name)
        return succ


def _combine(base: int, others: Iterable[int]) -> int:
    return hash((base, tuple(sorted(others))))


def labels(graph: Graph) -> dict[str, tuple[int, int]]:
    """Structural label of every node: a hash of everything upstream and of everything downstream.

    ``up(n) = H(signature(n), sorted(up(p) for p in preds))``, in execution order;
    ``down(n) = H(signature(n), sorted(down(s) for s in successors), output slots)``, in reverse.
    Two nodes share a label only when their kinds and shapes and those of every layer before and after them,
    connected the same way, are equal: linear time, and equal labels mean structure cannot tell them apart.
    """
    base = {name: hash(signature(node.spec)) for name, node in graph.nodes.items()}
    up: dict[str, int] = {}
    for name, node in graph.nodes.items():
        up[name] = _combine(base[name], (up.get(p, hash(p)) for p in node.preds))
    succ = graph.successors()
    slots: dict[str, list[int]] = {}
    for i, names in enumerate(graph.outputs):
        for name in names:
            slots.setdefault(name, []).append(i)
    down: dict[str, int] = {}
    for name in reversed(list(graph.nodes)):
        tail = [down[s] for s in succ.get(name, ())]
        tail += [hash(("output", i)) for i in slots.get(name, ())]
        down[name] = _combine(base[name], tail)
    return {name: (up[name], down[name]) for name in graph.nodes}
