"""An ONNX ``BatchNormalization`` model built straight from a spec: the reference both exports meet.

It involves neither framework: the spec's vectors become initializers of one ONNX node in inference
mode (``training_mode=0``), channels-first like PyTorch and ONNX. ONNX stores ``epsilon`` as a float32
attribute; its rounding (relative 6e-8 of epsilon) is far below the comparison tolerance.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from bnport.core.spec import BatchNormSpec

OPSET = 17


def batchnorm_model(spec: BatchNormSpec, ndim: int) -> onnx.ModelProto:
    """A one-node model computing the spec's eval output on an input of rank ``ndim`` (N, C, ...)."""
    dtype = np.dtype(spec.dtype)
    ones = np.ones(spec.channels, dtype=dtype)
    vectors = {
        "scale": spec.gamma if spec.scale else ones,
        "bias": spec.beta if spec.center else np.zeros_like(ones),
        "mean": spec.running_mean,
        "var": spec.running_var,
    }
    inits = [numpy_helper.from_array(np.asarray(v, dtype=dtype), name) for name, v in vectors.items()]
    node = helper.make_node(
        "BatchNormalization", ["input", *vectors], ["output"], epsilon=float(spec.epsilon), training_mode=0
    )
    elem = helper.np_dtype_to_tensor_dtype(dtype)
    shape = ["batch", spec.channels, *[f"d{i}" for i in range(ndim - 2)]]
    graph = helper.make_graph(
        [node],
        "bnport_reference",
        [helper.make_tensor_value_info("input", elem, shape)],
        [helper.make_tensor_value_info("output", elem, shape)],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bnport")
    model.ir_version = min(model.ir_version, 10)
    return model


__all__ = ["OPSET", "batchnorm_model"]
