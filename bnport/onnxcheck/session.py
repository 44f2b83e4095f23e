"""Run ONNX models in ONNX Runtime on the CPU (no framework imported)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx

from bnport.errors import ExportError, one_line


def session(model: onnx.ModelProto):
    """An onnxruntime InferenceSession for an in-memory model, on the CPU provider, without the CPU memory arena."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    # each tensor is allocated and freed on its own, not from an arena grown in powers of two and kept for the
    # session: one run per session here, and the peak of a verify is its two runs (ResNet-50: 45 MiB less, the same
    # time within noise: docs/performance.md)
    options.enable_cpu_mem_arena = False
    try:
        return ort.InferenceSession(
            model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise ExportError(f"onnxruntime could not load the model '{model.graph.name}': {exc}") from exc


def run(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray] | np.ndarray) -> list[np.ndarray]:
    """Run ``model`` once; a single array feeds the model's only input."""
    sess = session(model)
    if isinstance(inputs, np.ndarray):
        inputs = {sess.get_inputs()[0].name: inputs}
    try:
        return sess.run(None, dict(inputs))
    except Exception as exc:  # onnxruntime raises ValueError, RuntimeError or its own Fail/InvalidArgument types
        first = one_line(exc)
        raise ExportError(f"onnxruntime could not run the model '{model.graph.name}': {first}") from exc
