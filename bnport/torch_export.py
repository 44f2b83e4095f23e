"""Export a PyTorch module to ONNX with the legacy (TorchScript) exporter, BatchNorm nodes kept.

The legacy exporter takes 0.05-0.25 s on small nets where the dynamo exporter takes seconds, and with
``do_constant_folding=False`` it keeps every BatchNormalization node instead of folding it into the conv
before it, which a per-layer comparison needs.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Sequence

import numpy as np
import onnx
import torch

from bnport.errors import ExportError

OPSET = 17


def export_torch(
    module: torch.nn.Module,
    example: np.ndarray,
    *,
    output_names: Sequence[str] = ("output",),
    fold_constants: bool = False,
) -> onnx.ModelProto:
    """Export ``module`` in eval mode on an example input (channels-first); the batch axis stays dynamic.

    Every submodule's training flag is restored afterwards (a submodule left in training mode stays so).
    """
    flags = [(m, m.training) for m in module.modules()]
    buffer = io.BytesIO()
    dynamic = {name: {0: "batch"} for name in ("input", *output_names)}
    try:
        module.eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module,
                (torch.from_numpy(np.ascontiguousarray(example)),),
                buffer,
                input_names=["input"],
                output_names=list(output_names),
                dynamic_axes=dynamic,
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=fold_constants,
                training=torch.onnx.TrainingMode.EVAL,
            )
    except Exception as exc:
        raise ExportError(f"torch.onnx.export failed on {type(module).__name__}: {exc}") from exc
    finally:
        for m, flag in flags:
            m.training = flag
    return onnx.load_from_string(buffer.getvalue())


def with_taps(model: torch.nn.Module, names: Sequence[str]) -> tuple[torch.nn.Module, int]:
    """A copy of ``model``'s forward that also returns the outputs of the named modules, in that order.

    Returns the tapped module and how many of its outputs are the model's own (they come first).
    """
    from torch import fx

    from bnport.torch_graph import trace

    traced = trace(model)
    calls = {n.target: n for n in traced.graph.nodes if n.op == "call_module"}
    missing = [n for n in names if n not in calls]
    if missing:
        raise ExportError(f"PyTorch modules {', '.join(missing)} are not called in forward; cannot expose them")
    out_node = next(n for n in traced.graph.nodes if n.op == "output")
    finals: list[fx.Node] = []
    fx.node.map_arg(out_node.args[0], finals.append)
    out_node.args = (tuple(finals) + tuple(_snapshot(traced.graph, calls[n]) for n in names),)
    traced.graph.lint()
    traced.recompile()
    return traced, len(finals)


def _snapshot(graph, node):
    """A copy of ``node``'s output taken right after it is computed.

    torchvision and timm run activations in place (``nn.ReLU(inplace=True)``, ``out += identity``): the tensor a
    module returns is overwritten by the next operation, so a tap returning the tensor itself would report the
    value after the activation. The copy is made before any later operation runs.
    """
    import torch

    with graph.inserting_after(node):
        return graph.call_function(torch.clone, (node,))
