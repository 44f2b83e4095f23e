"""Keras on JAX to ONNX: jax2onnx converts the traced function, what ``model.export(format="onnx")`` does there.

The batch axis stays symbolic (``batch``), as Keras's own export leaves it. Opset 18: jax2onnx writes ReduceMean with
its axes as an input, which opset 18 introduced.
"""

from __future__ import annotations

import numpy as np
import onnx

from bnport.adapters.keras.compat import jax2onnx as jax2onnx_compat
from bnport.errors import ExportError, PatchError
from bnport.onnxcheck.shapes import known_dims

OPSET = 18
#: the graph keeps its batch axis open
STATIC_BATCH = False


def value_array(variable) -> np.ndarray:
    """The variable's value as a read-only array over the JAX buffer (no copy on the CPU); Keras's own conversion
    for another device or for bfloat16 (Keras picks numpy's bfloat16 type itself there)."""
    import jax
    import keras

    value = variable.value
    if isinstance(value, jax.Array) and value.dtype != "bfloat16" and \
            all(d.platform == "cpu" for d in value.devices()):
        return np.asarray(value)
    return keras.ops.convert_to_numpy(value)


def convert(forward, variables: tuple, shapes: list[tuple], dtypes: list[str], names: list[str], *,
            name: str) -> tuple[onnx.ModelProto, bool]:
    """The ONNX graph of ``forward(*inputs, *weights)``; tensors that are not variables are traced as constants
    (said by the caller, which looks for them: this exporter cannot tell)."""
    import jax

    data = [jax.ShapeDtypeStruct(("batch", *s[1:]), np.dtype(d)) for s, d in zip(shapes, dtypes, strict=True)]
    weights = [jax.ShapeDtypeStruct(tuple(v.shape), np.dtype(v.dtype)) for v in variables]
    try:
        model = jax2onnx_compat.to_onnx(forward, [*data, *weights], names=names, opset=OPSET)
    except PatchError:
        raise
    except Exception as exc:
        if "Unsupported conv layouts" in str(exc):  # jax2onnx 0.17 lowers 1-D and 2-D convolutions only
            raise ExportError(f"jax2onnx cannot export Keras '{name}': it converts 1-D and 2-D convolutions only, "
                              f"and this model has a 3-D one ({exc}); verify it with Keras on the tensorflow or torch "
                              "backend (porting it needs no export)") from exc
        raise ExportError(f"jax2onnx failed to export Keras '{name}': {exc}") from exc
    return _pools_within_three_axes(model), False


def _pools_within_three_axes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite jax2onnx's pooling nodes that pool over more than three axes into ones onnxruntime runs.

    jax2onnx lowers a channels-last ``reduce_window`` (Keras's MaxPooling2D on JAX) as a MaxPool over the batch, the
    spatial axes and the channels of a tensor unsqueezed to (1, 1, N, H, W, C), with a window of 1 on N and C: valid
    ONNX, but onnxruntime's CPU pooling takes at most three spatial axes ("Unsupported pooling size"). Axes the
    window leaves alone (size, stride and dilation 1, no padding) are swapped with the two leading axes of size 1,
    the size-1 axes squeezed away, the pool run over the rest, and the same steps undone: the same values, exactly.
    """
    from onnx import helper

    pools = [n for n in model.graph.node if n.op_type in ("MaxPool", "AveragePool")]
    if not any(len(_ints(n, "kernel_shape")) > 3 for n in pools):
        return model
    dims = known_dims(model)
    nodes = []
    for node in model.graph.node:
        rewritten = _rewrite_pool(node, dims.get(node.input[0]), helper) if node in pools else None
        nodes.extend(rewritten or [node])
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    return model


def _ints(node, name: str) -> list[int]:
    return next((list(a.ints) for a in node.attribute if a.name == name), [])


def _rewrite_pool(node, shape, helper):
    kernel = _ints(node, "kernel_shape")
    k = len(kernel)
    if k <= 3 or not shape or len(shape) != k + 2 or shape[0] != 1 or shape[1] != 1:
        return None
    if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for a in node.attribute):
        return None
    strides = _ints(node, "strides") or [1] * k
    dilations = _ints(node, "dilations") or [1] * k
    pads = _ints(node, "pads") or [0] * (2 * k)
    trivial = [i for i in range(k) if kernel[i] == 1 and strides[i] == 1 and dilations[i] == 1
               and pads[i] == 0 and pads[i + k] == 0]
    moved = trivial[:2]
    if k - len(moved) > 3:
        return None
    perm = list(range(k + 2))
    for front, axis in zip((0, 1), moved, strict=False):
        perm[front], perm[axis + 2] = perm[axis + 2], perm[front]
    ones = [axis + 2 for axis in moved]  # where the size-1 axes are after the swap
    keep = [i for i in range(k) if i not in moved]
    name = node.name or node.output[0]
    axes = helper.make_node("Constant", [], [f"{name}_ones_axes"],
                            value=helper.make_tensor(f"{name}_ones_axes_value", onnx.TensorProto.INT64,
                                                     [len(ones)], ones))
    swapped = helper.make_node("Transpose", [node.input[0]], [f"{name}_swapped"], perm=perm)
    squeezed = helper.make_node("Squeeze", [f"{name}_swapped", f"{name}_ones_axes"], [f"{name}_squeezed"])
    attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    attributes.update(kernel_shape=[kernel[i] for i in keep], strides=[strides[i] for i in keep],
                      pads=[pads[i] for i in keep] + [pads[i + k] for i in keep])
    if "dilations" in attributes:
        attributes["dilations"] = [dilations[i] for i in keep]
    pool = helper.make_node(node.op_type, [f"{name}_squeezed"], [f"{name}_pooled"], name=name, **attributes)
    unsqueezed = helper.make_node("Unsqueeze", [f"{name}_pooled", f"{name}_ones_axes"], [f"{name}_unsqueezed"])
    back = helper.make_node("Transpose", [f"{name}_unsqueezed"], list(node.output), perm=perm)  # a swap undoes itself
    return [axes, swapped, squeezed, pool, unsqueezed, back]
