"""A tap's value as the layer computed it, in a model that runs activations in place, with as few copies as exact.

torchvision and timm run activations in place (``nn.ReLU(inplace=True)``, ``F.relu(x, inplace=True)``,
``out += identity``): the tensor a layer returns is overwritten by the operation after it, so a tap returning that
tensor would report the value after the activation. A copy (``torch.clone``) taken right after the layer keeps the
value, always; but every copy is one more node for the exporter to trace and convert (ResNet-50's 107 taps: about
0.1 s of its export: docs/performance.md). So a tap is copied only when neither of these holds:

- **read only**: every user of the tensor reads it and makes a new tensor (a weight layer or pooling of
  ``torch.nn``, ``torch.cat``, ``+``, the added operand of ``+=``, the graph's output): nothing can change it;
- **overwritten by its only user**, an in-place activation of ``torch.nn``: the tapped copy of the model runs that
  activation out of place instead (a copy of the module with ``inplace=False``, or the function with
  ``inplace=False``). It computes the same values, and as nothing else reads the tensor, nothing else can tell.

Anything else (several users, a view, another in-place operation, a class outside ``torch.nn``) keeps the copy.
Only the traced copy changes; the user's modules are not touched.
"""

from __future__ import annotations

import copy
import inspect
import operator

import torch
from torch import fx, nn
from torch.nn import functional as F

#: activation modules whose ``inplace=True`` only decides where the result goes (exact types: a subclass may do more)
_ACTIVATIONS = frozenset({nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.SiLU, nn.Mish, nn.Hardswish,
                          nn.Hardsigmoid, nn.Hardtanh})
#: functions taking ``inplace``
_FUNCTIONS = frozenset({F.relu, F.relu6, F.leaky_relu, F.elu, F.celu, F.selu, F.silu, F.mish, F.hardswish,
                        F.hardsigmoid, F.hardtanh})
#: in-place functions and methods, and their out-of-place twins (same arguments)
_TWINS = {torch.relu_: torch.relu, torch.sigmoid_: torch.sigmoid, torch.tanh_: torch.tanh}
_METHOD_TWINS = {"relu_": "relu", "sigmoid_": "sigmoid", "tanh_": "tanh", "clamp_": "clamp",
                 "clamp_min_": "clamp_min", "clamp_max_": "clamp_max"}
#: functions returning a new tensor and changing none of their arguments (unless given ``out=``)
_FRESH = frozenset({torch.cat, torch.concat, torch.add, torch.sub, torch.mul, torch.div, operator.add, operator.sub,
                    operator.mul, operator.truediv, torch.relu, torch.sigmoid, torch.tanh, F.sigmoid, F.tanh, F.gelu})
#: in-place binary operations: their first operand is changed, the others only read
_IN_PLACE_BINARY = frozenset({operator.iadd, operator.isub, operator.imul, operator.itruediv})
_IN_PLACE_BINARY_METHODS = frozenset({"add_", "sub_", "mul_", "div_"})
#: torch.nn modules returning a new tensor and changing none of their inputs (exact types, from torch.nn itself)
_FRESH_MODULES = (nn.modules.conv._ConvNd, nn.modules.batchnorm._NormBase, nn.Linear, nn.Bilinear, nn.LayerNorm,
                  nn.GroupNorm, nn.Embedding, nn.PReLU, nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd,
                  nn.modules.pooling._AdaptiveAvgPoolNd, nn.modules.pooling._AdaptiveMaxPoolNd, nn.Sigmoid, nn.Tanh,
                  nn.GELU, nn.Softplus, nn.Softsign)


def keep(traced: fx.GraphModule, nodes: list[fx.Node]) -> list[fx.Node]:
    """For each of ``nodes``, the node whose value is that node's as computed: the node itself when nothing
    overwrites it later (after running its only user out of place when that is an in-place activation), else a
    copy taken right after it."""
    modules = dict(traced.named_modules())
    return [_kept(traced, node, modules) for node in nodes]


def _kept(traced: fx.GraphModule, node: fx.Node, modules: dict[str, nn.Module]) -> fx.Node:
    if all(_reads_only(user, node, modules) for user in node.users):
        return node
    if len(node.users) == 1 and _out_of_place(traced, next(iter(node.users)), node, modules):
        return node
    with traced.graph.inserting_after(node):
        return traced.graph.call_function(torch.clone, (node,))


def _reads_only(user: fx.Node, node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if user.op == "output":
        return True
    if user.op == "call_module":
        module = modules[user.target]
        if type(module) in _ACTIVATIONS:
            return not module.inplace
        return isinstance(module, _FRESH_MODULES) and type(module).__module__.startswith("torch.nn.")
    if user.op == "call_function" and user.target in _FRESH:
        return "out" not in user.kwargs
    if user.op == "call_function" and user.target in _FUNCTIONS:
        bound = _bound(user)
        return bound is not None and not bound.arguments.get("inplace")
    if (user.op == "call_function" and user.target in _IN_PLACE_BINARY) or (
            user.op == "call_method" and user.target in _IN_PLACE_BINARY_METHODS):
        return user.args[0] is not node and node not in user.kwargs.values()  # only an operand that is read
    return False


def _out_of_place(traced: fx.GraphModule, user: fx.Node, node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    """Run ``user``, an in-place activation of ``node`` (its only user), out of place; whether it could."""
    if user.op == "call_module":
        module = modules[user.target]
        if type(module) not in _ACTIVATIONS or not module.inplace or user.args != (node,) or user.kwargs:
            return False
        name = f"_bnport_out_of_place_{user.target.replace('.', '_')}"
        if name not in modules:
            twin = copy.deepcopy(module)
            twin.inplace = False
            traced.add_submodule(name, twin)
            modules[name] = twin
        user.target = name
        return True
    if user.op == "call_function" and user.target in _FUNCTIONS:
        bound = _bound(user)
        if bound is None or not bound.arguments.get("inplace") or _uses(bound.arguments, node) != ["input"]:
            return False
        bound.arguments["inplace"] = False
        user.args, user.kwargs = bound.args, bound.kwargs
        return True
    twins = {"call_function": _TWINS, "call_method": _METHOD_TWINS}.get(user.op, {})
    twin = twins.get(user.target)
    if twin is None or not user.args or user.args[0] is not node or node in (*user.args[1:], *user.kwargs.values()):
        return False
    user.target = twin
    return True


def _bound(user: fx.Node) -> inspect.BoundArguments | None:
    try:
        return inspect.signature(user.target).bind(*user.args, **user.kwargs)
    except (TypeError, ValueError):
        return None


def _uses(arguments: dict, node: fx.Node) -> list[str]:
    return [name for name, value in arguments.items() if value is node]


__all__ = ["keep"]
