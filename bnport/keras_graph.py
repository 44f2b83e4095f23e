"""Reduce a Keras 3 functional or sequential model (nested ones included) to its weight-holding layers."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from bnport import keras_layers
from bnport.errors import UnsupportedLayerError
from bnport.graph import Graph, Node, input_name

CHANNELS_FIRST, CHANNELS_LAST = "channels_first", "channels_last"


@dataclass(frozen=True)
class _Feed:
    """What reaches a tensor: the weight-holding layers behind it, and a flatten on the way, if any."""

    srcs: frozenset[str]
    flatten_from: tuple[int, ...] | None = None
    after_flatten: bool = False
    data_format: str = CHANNELS_LAST


def functional(model) -> keras.Model:
    """The functional graph behind a model: itself, or a built Sequential's inner functional model."""
    inner = getattr(model, "_functional", None)
    if inner is not None:
        return inner
    if isinstance(model, keras.Model) and hasattr(model, "_nodes_by_depth") and getattr(model, "outputs", None):
        return model
    raise UnsupportedLayerError(
        f"Keras model '{model.name}' ({type(model).__name__}) has no layer graph (a subclassed model, or a "
        "Sequential built without an Input): bnport cannot see which layer feeds which; build it as a "
        "functional model or pass an explicit mapping of layer names"
    )


def _layout(layer, fallback: str) -> str:
    fmt = getattr(layer, "data_format", None)
    if fmt in (CHANNELS_FIRST, CHANNELS_LAST):
        return fmt
    if isinstance(layer, keras.layers.BatchNormalization):
        return CHANNELS_FIRST if layer.axis == 1 and layer.input_spec.ndim > 2 else CHANNELS_LAST
    return fallback


def _flatten_from(layer, arg, out, fmt: str) -> tuple[int, ...] | None:
    """The channels-last shape of a feature map flattened by ``layer``, or None when no rows move."""
    shape = tuple(arg.shape[1:])
    flatten_order_cl = isinstance(layer, keras.layers.Flatten) and layer.data_format == CHANNELS_FIRST
    if fmt == CHANNELS_FIRST and not flatten_order_cl:
        return None  # (C, *spatial) flattened as is: PyTorch's order
    if fmt == CHANNELS_FIRST:
        return (*shape[1:], shape[0])
    return shape


class _Walker:
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.memo: dict[tuple[int, int], _Feed] = {}

    def tensor(self, t, env: dict[int, _Feed], prefix: str) -> _Feed:
        if id(t) in env:
            return env[id(t)]
        key = (id(env), id(t))
        if key not in self.memo:
            self.memo[key] = self._produce(t, env, prefix)
        return self.memo[key]

    def _produce(self, t, env, prefix) -> _Feed:
        op, node_index, tensor_index = t._keras_history
        args = op._inbound_nodes[node_index].arguments.keras_tensors
        if isinstance(op, keras.Model):
            inner = functional(op)
            inner_env = {id(i): self.tensor(a, env, prefix) for i, a in zip(inner.inputs, args, strict=True)}
            return self.tensor(inner.outputs[tensor_index], inner_env, f"{prefix}{op.name}/")
        feeds = [self.tensor(a, env, prefix) for a in args]
        srcs = frozenset().union(*(f.srcs for f in feeds))
        fmt = next((f.data_format for f in feeds), CHANNELS_LAST)
        if keras_layers.holds_weights(op):
            return self._weighted(op, prefix + op.name, feeds, srcs, fmt)
        flat = next((f for f in feeds if f.after_flatten), None)
        if isinstance(op, (keras.layers.Flatten, keras.layers.Reshape)) and len(args) == 1 \
                and len(args[0].shape) > 2 and len(t.shape) == 2:
            return _Feed(srcs, _flatten_from(op, args[0], t, fmt), True, fmt)
        if flat is not None:
            return _Feed(srcs, flat.flatten_from, True, fmt)
        return _Feed(srcs, None, False, fmt)

    def _weighted(self, layer, name: str, feeds: list[_Feed], srcs, fmt: str) -> _Feed:
        if name in self.g.nodes:
            raise UnsupportedLayerError(
                f"Keras layer '{name}' is called more than once (shared weights); pass an explicit mapping"
            )
        if not keras_layers.supported(layer):
            self.g.unsupported.append(f"{name} ({type(layer).__name__})")
            return _Feed(srcs, None, False, fmt)
        order = {n: i for i, n in enumerate(self.g.nodes)}
        preds = tuple(sorted(srcs, key=lambda n: order.get(n, -1)))
        flat = next((f for f in feeds if f.after_flatten), None)
        flatten_from = flat.flatten_from if flat else None
        spec = keras_layers.read(layer, flatten_from=flatten_from)
        self.g.add(Node(name, spec, preds, layer, flatten_from=flatten_from))
        return _Feed(frozenset({name}), None, False, _layout(layer, fmt))


def graph(model) -> Graph:
    """The weight-holding layers of a functional or sequential Keras model, each with the layers feeding it."""
    fn = functional(model)
    g = Graph("keras")
    walker = _Walker(g)
    env = {id(t): _Feed(frozenset({input_name(i)})) for i, t in enumerate(fn.inputs)}
    outs = [walker.tensor(t, env, "") for t in fn.outputs]
    order = {n: i for i, n in enumerate(g.nodes)}
    g.outputs = tuple(tuple(sorted(o.srcs, key=lambda n: order.get(n, -1))) for o in outs)
    return g
