"""Export a PyTorch module to ONNX with the legacy (TorchScript) exporter, BatchNorm nodes kept.

The legacy exporter is an order of magnitude faster than the dynamo exporter on bnport's models
(docs/performance.md), and with
``do_constant_folding=False`` it keeps every BatchNormalization node instead of folding it into the conv
before it, which a per-layer comparison needs.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import onnx
import torch

from bnport.adapters.swaps import EXPORT_LOCK
from bnport.adapters.torch import compat as torch_compat
from bnport.errors import ExportError, UsageError, one_line

OPSET = 17


def input_names(count: int) -> list[str]:
    """The graph's data input names: ``input``, or ``input_0``, ``input_1``, ... for several."""
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def export_torch(
    module: torch.nn.Module,
    example: np.ndarray | Sequence[np.ndarray],
    *,
    output_names: Sequence[str] = ("output",),
    fold_constants: bool = False,
    weights_as_inputs: bool = False,
) -> onnx.ModelProto:
    """Export ``module`` in eval mode on example inputs (channels-first; one array or one per input, named by
    :func:`input_names`); the batch axis stays dynamic.

    ``weights_as_inputs``: the parameters and buffers become graph inputs, fed by :func:`weight_feeds`: no model is
    too large (an ONNX protobuf cannot exceed 2 GiB) and no weight is copied into the graph. Every submodule's
    training flag is restored afterwards (a submodule left in training mode stays so).
    """
    examples = [example] if isinstance(example, np.ndarray) else list(example)
    names = input_names(len(examples))
    flags = [(m, m.training) for m in module.modules()]
    buffer = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in (*names, *output_names)}
    try:
        module.eval()
        with EXPORT_LOCK, warnings.catch_warnings():  # the lock first: warning filters are process-wide
            warnings.simplefilter("ignore")
            torch_compat.onnx_export(
                module,
                tuple(torch.from_numpy(np.ascontiguousarray(x)) for x in examples),
                buffer,
                input_names=names,
                output_names=list(output_names),
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=fold_constants,
                training=torch.onnx.TrainingMode.EVAL,
                export_params=not weights_as_inputs,
            )
    except Exception as exc:
        _refuse_inputs_it_cannot_run(module, examples)
        raise ExportError(f"torch.onnx.export failed on {type(module).__name__}: {one_line(exc)}") from exc
    finally:
        for m, flag in flags:
            m.training = flag
    return onnx.load_from_string(buffer.getvalue())


def export_fed(module: torch.nn.Module, example: np.ndarray | Sequence[np.ndarray], *,
               output_names: Sequence[str] = ("output",)) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """:func:`export_torch` with the weights as graph inputs, and every onnxruntime feed of it: the example inputs,
    then each weight as a view of the module's tensor. How verify exports: nothing is copied into a protobuf (which
    stops at 2 GiB) or onnxruntime's initializers (ResNet-50: export and run 1.1 s -> 0.6 s, 180 MB less:
    docs/performance.md)."""
    examples = [example] if isinstance(example, np.ndarray) else list(example)
    model = export_torch(module, examples, output_names=output_names, weights_as_inputs=True)
    feeds = dict(zip(input_names(len(examples)), examples, strict=True))
    feeds.update(weight_feeds(module, model, len(examples)))
    return model, feeds


def _refuse_inputs_it_cannot_run(module: torch.nn.Module, examples: list[np.ndarray]) -> None:
    """After a failed export: if the model cannot even run on the inputs (in eval mode), the inputs are the
    problem, not the exporter; say so with their shapes."""
    try:
        with torch.no_grad():
            module(*(torch.from_numpy(np.ascontiguousarray(x)) for x in examples))
    except Exception as exc:
        shapes = ", ".join(str(list(x.shape)) for x in examples)
        raise UsageError(f"the PyTorch model {type(module).__name__} cannot run on inputs of shape {shapes} "
                         f"(channels-first): {type(exc).__name__}: {one_line(exc)}. Give inputs (--inputs) or "
                         "a shape (--input-shape N,C,...) the model accepts") from exc


def float32_copy(model: torch.nn.Module, notes: list[str]) -> torch.nn.Module:
    """``model``, or a float32 copy of it when it holds another floating dtype (verify computes in float32), said in
    ``notes``."""
    import copy

    dtypes = {str(t.dtype)[6:] for t in (*model.parameters(), *model.buffers()) if t.is_floating_point()}
    if dtypes <= {"float32"}:
        return model
    notes.append(f"the PyTorch model holds {', '.join(sorted(dtypes))}: verified as a float32 copy (the values as "
                 "they are, computed in float32)")
    return copy.deepcopy(model).to(torch.float32)


def weight_feeds(module: torch.nn.Module, model: onnx.ModelProto, inputs: int = 1) -> dict[str, np.ndarray]:
    """onnxruntime feeds for a graph exported with ``weights_as_inputs`` (and ``inputs`` data inputs): each weight
    input's tensor, as a view."""
    from bnport.adapters.torch.batchnorm import tensor_view

    named = {**dict(module.named_buffers(remove_duplicate=False)),
             **dict(module.named_parameters(remove_duplicate=False))}
    feeds = {}
    data = set(input_names(inputs))
    for graph_input in model.graph.input:
        if graph_input.name in data:
            continue
        tensor = named.get(graph_input.name)
        if tensor is None:
            raise ExportError(f"the exported PyTorch graph takes '{graph_input.name}', which is no weight of the model")
        feeds[graph_input.name] = tensor_view(tensor)
    return feeds


def _keras_activations() -> dict:
    """Keras activations by name, as PyTorch computes them (Keras defaults: ``leaky_relu`` slope 0.2, exact
    ``gelu``; ``softmax`` over the channel axis, which is Keras's last and PyTorch's dim 1)."""
    from torch.nn import functional as F

    return {
        "relu": F.relu, "relu6": F.relu6, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "silu": F.silu,
        "swish": F.silu, "hard_sigmoid": F.hardsigmoid, "hard_silu": F.hardswish, "hard_swish": F.hardswish,
        "gelu": F.gelu, "elu": F.elu, "selu": F.selu, "softplus": F.softplus, "softsign": F.softsign,
        "mish": F.mish, "exponential": torch.exp, "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
        "softmax": lambda x: F.softmax(x, 1), "log_softmax": lambda x: F.log_softmax(x, 1),
    }


def supports_activation(name: str) -> bool:
    """Whether :func:`with_taps` can apply the Keras activation ``name`` to a tap."""
    return name in _keras_activations()


def with_taps(model: torch.nn.Module, names: Sequence[str],
              activations: Mapping[str, str] | None = None) -> tuple[torch.nn.Module, int]:
    """A copy of ``model``'s forward that also returns the outputs of the named modules, in that order.

    ``activations``: module name -> the Keras activation its Keras twin applies inside itself; that tap returns the
    activation of the module's output, so it compares with the Keras layer's output (the model is unchanged).
    Returns the tapped module and how many of its outputs are the model's own (they come first).
    """
    from torch import fx

    from bnport.adapters.torch import snapshots
    from bnport.adapters.torch.graph import trace

    traced = trace(model)
    calls = {n.target: n for n in traced.graph.nodes if n.op == "call_module"}
    calls.update({n.target: next(iter(n.users)) for n in traced.graph.nodes  # a scale parameter: its multiply
                  if n.op == "get_attr" and n.target in names and n.target not in calls and len(n.users) == 1})
    missing = [n for n in names if n not in calls]
    if missing:
        raise ExportError(f"PyTorch modules {', '.join(missing)} are not called in forward; cannot expose them")
    for name in names:
        calls[name] = _own_part(traced, calls[name])
    out_node = next(n for n in traced.graph.nodes if n.op == "output")
    finals: list[fx.Node] = []
    fx.node.map_arg(out_node.args[0], finals.append)
    table, activations = _keras_activations(), activations or {}
    taps = []
    for n, tap in zip(names, snapshots.keep(traced, [calls[n] for n in names]), strict=True):
        if activations.get(n):
            with traced.graph.inserting_after(tap):
                tap = traced.graph.call_function(table[activations[n]], (tap,))
        taps.append(tap)
    out_node.args = (tuple(finals) + tuple(taps),)
    traced.graph.lint()
    traced.recompile()
    return traced, len(finals)


def _own_part(traced, node):
    """The node computing the layer's own output: for a module that also applies an activation (timm's
    ``BatchNormAct2d``), its call is split into the layer part, tapped, and the rest, which reads it."""
    from bnport.adapters.torch import zoo as torch_zoo

    if node.op != "call_module":
        return node
    parts = torch_zoo.split_for_tap(traced.get_submodule(node.target))
    if parts is None:
        return node
    index = sum(1 for n, _ in traced.named_children() if n.startswith("_bnport_part"))
    own, rest = f"_bnport_part{index}_own", f"_bnport_part{index}_rest"
    traced.add_submodule(own, parts[0])
    traced.add_submodule(rest, parts[1])
    graph = traced.graph
    with graph.inserting_after(node):
        layer = graph.call_module(own, node.args, node.kwargs)
    with graph.inserting_after(layer):
        after = graph.call_module(rest, (layer,))
    node.replace_all_uses_with(after)
    graph.erase_node(node)
    return layer
