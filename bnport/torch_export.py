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

    The module's training flag is restored afterwards.
    """
    was_training = module.training
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
        module.train(was_training)
    return onnx.load_from_string(buffer.getvalue())
