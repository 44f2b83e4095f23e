"""What ONNX's shape inference knows of a graph's tensors (onnx only)."""

from __future__ import annotations

import onnx


def known_dims(model: onnx.ModelProto) -> dict[str, list[int | None]]:
    """Each tensor's dimensions by name (None for a dimension left open): inferred values, inputs, initializers."""
    from onnx import shape_inference

    dims: dict[str, list[int | None]] = {}
    for info in list(shape_inference.infer_shapes(model).graph.value_info) + list(model.graph.input):
        dims[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in info.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        dims[init.name] = list(init.dims)
    return dims
