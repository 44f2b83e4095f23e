"""Run a Keras functional model and also return what chosen layers computed, nested models included.

A verify compares every paired layer, so the exported Keras graph must return each one's output. Building a new
``keras.Model(model.inputs, outputs + [layer.output ...])`` only reaches layers of the outer model with one
inbound node (``layer.output`` refuses a layer that was also called in another model), and a layer inside a
nested model has no tensor in the outer graph at all. Instead, :class:`Tapped` runs the model's own graph
through Keras's graph runner (``Function._run_through_graph``, what ``Functional.call`` does) and records the
output of each named layer as it is computed, recursing into nested functional models the same way: every node
of this model's graph, whatever else the layers are used in, and nothing of the user's model is changed.

The runner and the call-context arguments are Keras internals; a Keras without them falls back to the public
path above, which taps the outer model's single-node layers and says which it could not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import keras

from bnport.adapters.keras.compat import keras as keras_compat
from bnport.adapters.keras.graph import functional

#: why a layer could not be tapped on the public fallback path
NESTED = "inside a nested Keras model (this Keras has no graph runner bnport can use)"
SHARED = "called in several places (this Keras has no graph runner bnport can use)"


def has_graph_runner(model) -> bool:
    """Whether this Keras exposes the graph runner :class:`Tapped` drives (Keras 3.x ``Function``)."""
    return keras_compat.has_graph_runner(model)


@dataclass
class Tapped:
    """``model`` applied in inference mode, returning its outputs, then the outputs of the ``taps`` (layer paths
    as :func:`bnport.adapters.keras.graph.graph` names them: ``outer/inner/layer`` inside nested models).

    Attributes:
        model: the functional model (a Sequential's inner functional model).
        taps: the layer paths tapped, in the order their outputs come.
        skipped: layer paths that could not be tapped, each with the reason (public fallback only).
        finals: how many outputs are the model's own.
    """

    model: keras.Model
    taps: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)
    finals: int = 0
    inside: dict[int, object] = field(default_factory=dict, repr=False)  # id(layer) -> its graph, for composites

    @property
    def variables(self) -> tuple:
        """Every variable the computation reads: trainable first, as ``stateless_call`` orders them."""
        return tuple(self.model.trainable_variables) + tuple(self.model.non_trainable_variables)

    def __call__(self, x) -> list:
        """Outputs, then taps, as a flat list (tensors of the active backend)."""
        fn = self.model
        if not has_graph_runner(fn):
            return keras.Model(fn.inputs, list(fn.outputs) + _public_taps(fn, self.taps, {}))(x, training=False)
        recorded: dict[str, object] = {}
        outputs = _run(fn, x, "", set(self.taps), recorded, self.inside)
        return _flat(outputs) + [recorded[name] for name in self.taps]


def tapped(model, names: Sequence[str]) -> Tapped:
    """A :class:`Tapped` of ``model`` for the named layers (see :func:`bnport.adapters.keras.graph.graph` for names)."""
    fn = functional(model)
    finals = len(fn.outputs)
    if has_graph_runner(fn):
        return Tapped(fn, tuple(names), {}, finals, _composites(fn))
    skipped: dict[str, str] = {}
    _public_taps(fn, tuple(names), skipped)
    return Tapped(fn, tuple(n for n in names if n not in skipped), skipped, finals)


def _composites(fn) -> dict[int, object]:
    """The inside of every composite layer in ``fn`` and its nested graphs
    (:mod:`bnport.adapters.keras.composite`), each recorded once and taken off the user's layers at once: the
    functions keep their own nodes."""
    from bnport.adapters.keras import composite as keras_composite
    from bnport.adapters.keras import layers as keras_layers

    found: dict[int, object] = {}
    pending = [fn]
    while pending:
        graph = pending.pop()
        for node in keras_compat.nodes(graph):
            op = node.operation
            if op is None or id(op) in found:
                continue
            if isinstance(op, keras.Model):
                pending.append(functional(op))
            elif keras_layers.holds_weights(op) and not keras_layers.supported(op):
                expansion = keras_composite.expand(op, node)
                if expansion is not None:
                    expansion.undo()
                    found[id(op)] = expansion.function
                    pending.append(expansion.function)
    return found


def _run(fn, x, prefix: str, wanted: set[str], recorded: dict[str, object], inside: dict[int, object]):
    """``fn``'s graph on ``x`` with ``training=False``, recording the outputs of the layers named in ``wanted``."""

    def operation_fn(op):
        name = prefix + op.name
        inner = _nested(op) or inside.get(id(op))

        def call(*args, **kwargs):
            if inner is not None:
                out = _run(inner, args[0] if len(args) == 1 else list(args), f"{name}/", wanted, recorded, inside)
            else:
                if keras_compat.takes_training(op):
                    kwargs["training"] = False
                out = op(*args, **kwargs)
            if name in wanted:
                recorded[name] = out
            return out

        return call

    return keras_compat.run_through_graph(fn, x, operation_fn)


def _nested(op):
    """The functional graph of a nested model ``op`` (None for a plain layer)."""
    if not isinstance(op, keras.Model):
        return None
    inner = functional(op)
    return inner if has_graph_runner(inner) else None


def _flat(outputs) -> list:
    return list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]


def _public_taps(fn, names: tuple[str, ...], skipped: dict[str, str]) -> list:
    """The fallback: ``layer.output`` of each named single-node layer of ``fn`` itself."""
    own = {layer.name: layer for layer in fn.layers}
    out = []
    for name in names:
        layer = own.get(name)
        if layer is None:
            skipped[name] = NESTED
        elif len(keras_compat.inbound_nodes(layer)) != 1:
            skipped[name] = SHARED
        else:
            out.append(layer.output)
    return out
