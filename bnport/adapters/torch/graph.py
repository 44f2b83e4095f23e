"""Reduce a PyTorch model to the graph of its weight-holding modules, with torch.fx."""

from __future__ import annotations

import operator

import torch
from torch import fx, nn

from bnport.adapters.swaps import EXPORT_LOCK
from bnport.adapters.torch import layers as torch_layers
from bnport.core import padding as pad
from bnport.core.graph import Graph, Node, input_name
from bnport.errors import UnsupportedLayerError, one_line


class _Tracer(fx.Tracer):
    """torch.fx's tracer, with every module bnport maps as a leaf (timm's and torchvision's own layer classes are
    not ``torch.nn`` modules, so torch.fx would trace into them and see their tensors used directly)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return super().is_leaf_module(m, module_qualified_name) or (
            torch_layers.holds_weights(m) and (torch_layers.supported(m) or torch_layers.derives_from_mapped(m)))


def dataflow(model: nn.Module) -> fx.Graph:
    """The ``torch.fx`` graph of ``model.forward`` (weight-holding modules are leaves), with bnport's error.

    Traced under bnport's export lock: while torch.fx traces it replaces ``torch.nn.Module.__call__`` process-wide,
    so a module called in another thread meanwhile (bnport's own export of another model, in a second verify) would
    be recorded by this trace and fail it ("module is not installed as a submodule"; seen in the two-thread test).
    """
    tracer = _Tracer()
    try:
        with EXPORT_LOCK:
            return tracer.trace(model)
    except Exception as exc:
        first = one_line(exc)
        raise UnsupportedLayerError(
            f"torch.fx cannot trace {type(model).__name__}.forward ({first}), so bnport cannot see which layer "
            "feeds which; make forward traceable (no data-dependent Python control flow), or wrap the traceable part"
        ) from exc
    finally:
        # The tracer and its graph refer to each other and the tracer to every module and tensor of the model:
        # left alone, the model would outlive its last user until the next garbage collection (a conversion
        # would hold the source's weights while it saves the destination).
        vars(tracer).clear()


def trace(model: nn.Module) -> fx.GraphModule:
    """``torch.fx.symbolic_trace``: the dataflow graph as a module that can be changed and run."""
    return fx.GraphModule(model, dataflow(model), type(model).__name__)


def graph(model: nn.Module) -> Graph:
    """The weight-holding modules of ``model`` in execution order, each with the layers that feed it."""
    modules = dict(model.named_modules())
    g = Graph("torch")
    feeds: dict[fx.Node, frozenset[str]] = {}
    pads: dict[fx.Node, pad.Sides] = {}  # zero padding added by the operations directly behind a tensor
    inputs = 0
    for node in dataflow(model).nodes:
        srcs = frozenset().union(*(feeds.get(a, frozenset()) for a in node.all_input_nodes))
        if node.op == "placeholder":
            feeds[node] = frozenset({input_name(inputs)})
            inputs += 1
        elif node.op == "call_module" and torch_layers.holds_weights(modules[node.target]):
            explicit = pads.get(node.args[0]) if node.args and isinstance(node.args[0], fx.Node) else None
            added = _add(g, node.target, modules[node.target], srcs, explicit)
            feeds[node] = frozenset({node.target}) if added else srcs
        elif node.op == "get_attr":
            if scale_of(node, model) is None:
                g.unsupported.append(f"{node.target} (a tensor used directly in forward)")
            feeds[node] = frozenset()
        elif node.op == "call_function" and (scaled := _scaled(node, model)) is not None:
            param, other = scaled
            layer = torch_layers.ParameterScale(model, param.target)
            added = _add(g, param.target, layer, feeds.get(other, frozenset()), None)
            feeds[node] = frozenset({param.target}) if added else srcs
        elif node.op == "output":
            slots: list[fx.Node] = []
            fx.node.map_arg(node.args[0], slots.append)
            g.outputs = tuple(tuple(sorted(feeds.get(n, frozenset()), key=_order(g))) for n in slots)
        else:
            feeds[node] = srcs
            sides = _zero_padding(node, modules)
            if sides is not None:
                pads[node] = pad.add(pads.get(node.args[0]), sides)
    return g


_MULTIPLY = (operator.mul, torch.mul)


def scale_of(node: fx.Node, model: nn.Module) -> fx.Node | None:
    """The multiplication that scales a tensor by the parameter ``node`` reads, when that is all it is used for:
    a per-channel scale of shape (C,) or (C, 1, ..., 1) (torchvision ConvNeXt's ``layer_scale``)."""
    if node.op != "get_attr" or len(node.users) != 1:
        return None
    (user,) = node.users
    if user.op != "call_function" or user.target not in _MULTIPLY or len(user.args) != 2 or user.kwargs:
        return None
    if not all(isinstance(a, fx.Node) for a in user.args):
        return None
    try:
        value = model.get_parameter(node.target)
    except (AttributeError, TypeError):
        return None
    shape = tuple(value.shape)
    return user if shape and all(d == 1 for d in shape[1:]) else None


def _scaled(node: fx.Node, model: nn.Module) -> tuple[fx.Node, fx.Node] | None:
    """(parameter node, scaled tensor node) when ``node`` multiplies a tensor by a per-channel scale parameter."""
    for i, arg in enumerate(node.args[:2] if node.target in _MULTIPLY else ()):
        if isinstance(arg, fx.Node) and scale_of(arg, model) is node:
            return arg, node.args[1 - i]
    return None


def _zero_padding(node: fx.Node, modules: dict[str, nn.Module]) -> pad.Sides | None:
    """(before, after) per padded axis, first axis first, when ``node`` is a constant zero padding of known size."""
    if node.op == "call_module":
        module = modules[node.target]
        if not isinstance(module, (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ConstantPad1d, nn.ConstantPad2d,
                                   nn.ConstantPad3d)) or getattr(module, "value", 0) != 0:
            return None
        amounts = module.padding
    elif node.op == "call_function" and node.target is nn.functional.pad:
        amounts = node.args[1] if len(node.args) > 1 else node.kwargs.get("pad")
        mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("mode", "constant")
        value = node.args[3] if len(node.args) > 3 else node.kwargs.get("value")
        if mode != "constant" or value not in (None, 0, 0.0):
            return None
    else:
        return None
    if not isinstance(amounts, (tuple, list)) or not all(isinstance(a, int) for a in amounts) or len(amounts) % 2:
        return None
    pairs = [(amounts[i], amounts[i + 1]) for i in range(0, len(amounts), 2)]  # last axis first
    return tuple(reversed(pairs))


def _order(g: Graph):
    """Sort key: execution position (dicts keep insertion order; inputs come first)."""
    return lambda name: g.position.get(name, -1)


def _add(g: Graph, name: str, module: nn.Module, srcs: frozenset[str], explicit: pad.Sides | None) -> bool:
    if name in g.nodes:
        raise UnsupportedLayerError(
            f"module '{name}' is called more than once in forward (shared weights); bnport pairs each "
            "weight-holding layer once, and a shared one has no single place in the graph"
        )
    if not torch_layers.supported(module):
        g.unsupported.append(f"{name} ({torch_layers.why_unsupported(module)})")
        return False
    preds = tuple(sorted(srcs, key=_order(g)))
    g.add(Node(name, torch_layers.read(module), preds, module, padding=torch_layers.padding(module, explicit)))
    return True


__all__ = ["dataflow", "graph", "trace"]
