"""Keras layers that hold other layers (keras-hub's MobileNet blocks, users' own blocks), seen as the graph inside.

Such a layer calls its sublayers in its own ``call``, so the functional graph shows one layer with all their
weights and no wiring. Calling that ``call`` on symbolic inputs shaped like the layer's own makes Keras record each
sublayer call as a graph node, from which a ``keras.Function`` of the layer's inside is built: bnport then walks
and runs it as it does a nested model. Recording those nodes appends to the sublayers' node lists (and to the
lists of what feeds them); :meth:`Expansion.undo` takes every added node off again, so the user's layers are left
as they were. The function keeps its own nodes and still runs after the undo.

A layer whose ``call`` cannot run on symbolic inputs (it reads tensor values, needs arguments bnport cannot
rebuild) is not expanded and stays one unsupported layer, said so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras

from bnport.adapters.keras.compat import keras as keras_compat


def sublayers(layer) -> list:
    """Every layer inside ``layer`` (not itself), at any depth."""
    return keras_compat.flatten_layers(layer)


def is_composite(layer) -> bool:
    """A plain layer (not a model) whose weights belong to layers inside it."""
    if isinstance(layer, keras.Model):
        return False
    inner = sublayers(layer)
    return bool(inner) and any(getattr(sub, "weights", None) for sub in inner)


@dataclass
class Expansion:
    """The graph inside one call of a composite layer, and how to take off the nodes recording it added."""

    function: object
    inputs: list
    _lengths: dict[int, tuple[object, int, int]] = field(default_factory=dict, repr=False)

    def undo(self) -> None:
        """Take the nodes the recording added off every layer's node lists."""
        for operation, inbound, outbound in self._lengths.values():
            del keras_compat.inbound_nodes(operation)[inbound:]
            del keras_compat.outbound_nodes(operation)[outbound:]
        self._lengths.clear()


def expand(layer, node) -> Expansion | None:
    """The graph inside ``layer`` as called at ``node`` (a Keras ``Node`` of it), or None when it cannot be made.

    The symbolic inputs take the shapes and dtypes of the node's tensors, in order; a call with other arguments
    (keyword tensors, masks) is not expanded.
    """
    if not is_composite(layer):
        return None
    tensors = list(node.arguments.keras_tensors)
    if not tensors or len(tensors) != len(node.arguments.args) or node.arguments.kwargs:
        return None
    lengths = {id(op): (op, len(keras_compat.inbound_nodes(op)), len(keras_compat.outbound_nodes(op)))
               for op in [layer, *sublayers(layer)]}
    expansion = Expansion(None, [], lengths)
    try:
        inputs = [keras.Input(batch_shape=tuple(t.shape), dtype=t.dtype) for t in tensors]
        outputs = layer.call(*inputs)
        expansion.function = keras.Function(inputs, outputs)
        expansion.inputs = inputs
    except Exception:  # the call cannot run symbolically: the layer stays as it is (unsupported)
        expansion.undo()
        return None
    return expansion

