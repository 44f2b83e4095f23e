"""Reduce a Keras 3 functional or sequential model (nested ones included) to its weight-holding layers."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from bnport.adapters.keras import batchnorm as keras_bn
from bnport.adapters.keras import composite as keras_composite
from bnport.adapters.keras import layers as keras_layers
from bnport.adapters.keras.batchnorm import CHANNELS_FIRST, CHANNELS_LAST
from bnport.adapters.keras.compat import keras as keras_compat
from bnport.core import padding as pad
from bnport.core.graph import Graph, Node, input_name
from bnport.errors import UnsupportedLayerError

_ZERO_PADDING = (keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D)


@dataclass(frozen=True)
class _Feed:
    """What reaches a tensor: the weight-holding layers behind it, a flatten on the way, if any, the zero padding
    added since the last operation that was not a zero padding, and the preprocessing done to a model input."""

    srcs: frozenset[str]
    flatten_from: tuple[int, ...] | None = None
    after_flatten: bool = False
    data_format: str = CHANNELS_LAST
    pads: pad.Sides | None = None
    pre: tuple[str, ...] = ()

    @property
    def from_inputs(self) -> bool:
        """Whether only model inputs (no weight-holding layer) lie behind the tensor."""
        return all(s.startswith("<input:") for s in self.srcs)


def functional(model) -> keras.Model:
    """The functional graph behind a model: itself, or a built Sequential's inner functional model."""
    inner = getattr(model, "_functional", None)
    if inner is not None:
        return inner
    if isinstance(model, keras.Model) and keras_compat.has_nodes(model) and getattr(model, "outputs", None):
        return model
    raise UnsupportedLayerError(
        f"Keras model '{model.name}' ({type(model).__name__}) has no layer graph (a subclassed model, or a "
        "Sequential built without an Input): bnport cannot see which layer feeds which; build it as a "
        "functional model, or give the Sequential an Input"
    )


def _layout(layer, fallback: str) -> str:
    fmt = getattr(layer, "data_format", None)
    if fmt in (CHANNELS_FIRST, CHANNELS_LAST):
        return fmt
    if isinstance(layer, keras.layers.BatchNormalization):
        return keras_bn.data_format(layer)
    return fallback


def _flatten_from(layer, arg, fmt: str) -> tuple[int, ...] | None:
    """The channels-last shape of a feature map flattened by ``layer``, or None when no rows move."""
    shape = tuple(arg.shape[1:])
    flatten_order_cl = isinstance(layer, keras.layers.Flatten) and layer.data_format == CHANNELS_FIRST
    if fmt == CHANNELS_FIRST and not flatten_order_cl:
        return None  # (C, *spatial) flattened as is: PyTorch's order
    if fmt == CHANNELS_FIRST:
        return (*shape[1:], shape[0])
    return shape


class _Walker:
    """Walks a functional graph backwards from its outputs, iteratively (a 1,000-layer chain is fine)."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        self.memo: dict[tuple[int, int], _Feed] = {}
        self.envs: dict[tuple[int, int], dict[int, _Feed]] = {}  # kept alive: memo keys use their ids
        self.expansions: dict[int, object] = {}  # id(node) -> the inside of a composite layer called there

    def _graph_inside(self, op, node_index: int):
        """The graph a nested model or an expandable composite layer runs at its call ``node_index``, else None."""
        if isinstance(op, keras.Model):
            return functional(op)
        node = keras_compat.inbound_nodes(op)[node_index]
        if id(node) not in self.expansions:
            expandable = keras_layers.holds_weights(op) and not keras_layers.supported(op) and \
                not keras_layers.is_preprocessing(op)
            self.expansions[id(node)] = keras_composite.expand(op, node) if expandable else None
        expansion = self.expansions[id(node)]
        return None if expansion is None else expansion.function

    def undo(self) -> None:
        """Take the nodes expanding composite layers added off the user's layers."""
        for expansion in self.expansions.values():
            if expansion is not None:
                expansion.undo()

    def _known(self, t, env) -> _Feed | None:
        return env.get(id(t)) or self.memo.get((id(env), id(t)))

    def tensor(self, t, env: dict[int, _Feed], prefix: str) -> _Feed:
        stack = [(t, env, prefix)]
        while stack:
            cur, cur_env, cur_prefix = stack[-1]
            if self._known(cur, cur_env) is not None:
                stack.pop()
                continue
            missing = self._missing(cur, cur_env, cur_prefix)
            if missing:
                stack.extend(reversed(missing))  # first argument first, like the model runs
                continue
            self.memo[(id(cur_env), id(cur))] = self._produce(cur, cur_env, cur_prefix)
            stack.pop()
        return self._known(t, env)

    def _missing(self, t, env, prefix) -> list:
        op, node_index, tensor_index = keras_compat.history(t)
        args = keras_compat.inbound_nodes(op)[node_index].arguments.keras_tensors
        todo = [(a, env, prefix) for a in args if self._known(a, env) is None]
        if todo or self._graph_inside(op, node_index) is None:
            return todo
        inner, inner_env = self._inner(op, node_index, args, env)
        out = inner.outputs[tensor_index]
        return [] if self._known(out, inner_env) is not None else [(out, inner_env, f"{prefix}{op.name}/")]

    def _inner(self, op, node_index, args, env):
        inner = self._graph_inside(op, node_index)
        key = (id(env), id(keras_compat.inbound_nodes(op)[node_index]))
        if key not in self.envs:
            self.envs[key] = {id(i): self._known(a, env) for i, a in zip(inner.inputs, args, strict=True)}
        return inner, self.envs[key]

    def _produce(self, t, env, prefix) -> _Feed:
        op, node_index, tensor_index = keras_compat.history(t)
        args = keras_compat.inbound_nodes(op)[node_index].arguments.keras_tensors
        if self._graph_inside(op, node_index) is not None:
            inner, inner_env = self._inner(op, node_index, args, env)
            return self._known(inner.outputs[tensor_index], inner_env)
        feeds = [self._known(a, env) for a in args]
        srcs = frozenset().union(*(f.srcs for f in feeds))
        fmt = next((f.data_format for f in feeds), CHANNELS_LAST)
        pre = tuple(dict.fromkeys(step for f in feeds for step in f.pre))  # ordered, once each
        if len(feeds) == 1 and feeds[0].from_inputs and keras_layers.is_preprocessing(op):
            step = keras_layers.preprocessing_step(op, hollow=self.g.hollow)
            return _Feed(srcs, None, False, fmt, None, pre + ((step,) if step else ()))
        if keras_layers.holds_weights(op):
            return self._weighted(op, prefix + op.name, feeds, srcs, fmt, args)
        if isinstance(op, _ZERO_PADDING) and len(feeds) == 1:
            return _Feed(srcs, None, False, fmt, pad.add(feeds[0].pads, keras_layers.zero_padding(op)), pre)
        flat = next((f for f in feeds if f.after_flatten), None)
        if isinstance(op, (keras.layers.Flatten, keras.layers.Reshape)) and len(args) == 1 \
                and len(args[0].shape) > 2 and len(t.shape) == 2:
            return _Feed(srcs, _flatten_from(op, args[0], fmt), True, fmt, None, pre)
        if flat is not None:
            return _Feed(srcs, flat.flatten_from, True, fmt, None, pre)
        return _Feed(srcs, None, False, fmt, None, pre)

    def _weighted(self, layer, name: str, feeds: list[_Feed], srcs, fmt: str, args) -> _Feed:
        if name in self.g.nodes:
            raise UnsupportedLayerError(
                f"Keras layer '{name}' is called more than once (shared weights); bnport pairs each "
                "weight-holding layer once, and a shared one has no single place in the graph"
            )
        if not keras_layers.supported(layer):
            self.g.unsupported.append(f"{name} ({keras_layers.why_unsupported(layer)})")
            return _Feed(srcs, None, False, fmt)
        preds = tuple(sorted(srcs, key=lambda n: self.g.position.get(n, -1)))
        flat = next((f for f in feeds if f.after_flatten), None)
        flatten_from = flat.flatten_from if flat else None
        spec = keras_layers.read(layer, flatten_from=flatten_from, hollow=self.g.hollow)
        reread = (lambda: keras_layers.read(layer, flatten_from=flatten_from)) if self.g.hollow else None
        explicit = feeds[0].pads if len(feeds) == 1 else None
        sizes = _spatial_sizes(args[0], _layout(layer, fmt), explicit) if args else None
        pre = tuple(dict.fromkeys(step for f in feeds if f.from_inputs for step in f.pre))
        self.g.add(Node(name, spec, preds, layer, flatten_from=flatten_from, reread=reread,
                        padding=keras_layers.padding(layer, explicit), input_sizes=sizes, preprocessing=pre,
                        activation=keras_layers.activation(layer)))
        return _Feed(frozenset({name}), None, False, _layout(layer, fmt))


def _spatial_sizes(tensor, fmt: str, explicit: pad.Sides | None) -> tuple[int | None, ...] | None:
    """The spatial sizes of a layer's input before the zero padding ``explicit`` that was added to it."""
    shape = tuple(tensor.shape)
    if len(shape) < 3:
        return None
    sizes = tuple(shape[1:-1]) if fmt == CHANNELS_LAST else tuple(shape[2:])
    if explicit is None or len(explicit) != len(sizes):
        return sizes
    return tuple(None if n is None else n - b - a for n, (b, a) in zip(sizes, explicit, strict=True))


def graph(model, *, hollow: bool = False) -> Graph:
    """The weight-holding layers of a functional or sequential Keras model, each with the layers feeding it.

    Nested models are walked (their layers named ``outer/inner/layer``), and so are layers holding other layers
    (:mod:`bnport.adapters.keras.composite`), whose recording is taken off the user's layers when the walk ends.

    ``hollow=True`` reads shapes only (for a destination): see :func:`bnport.adapters.keras.layers.read`.
    """
    fn = functional(model)
    g = Graph("keras", hollow=hollow)
    walker = _Walker(g)
    env = {id(t): _Feed(frozenset({input_name(i)})) for i, t in enumerate(fn.inputs)}
    try:
        outs = [walker.tensor(t, env, "") for t in fn.outputs]
    finally:
        walker.undo()
    g.outputs = tuple(tuple(sorted(o.srcs, key=lambda n: g.position.get(n, -1))) for o in outs)
    return g
