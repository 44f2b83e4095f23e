"""Keras on TensorFlow to ONNX: tf2onnx converts a ``tf.function``, what ``model.export(format="onnx")`` does there.

Called directly rather than through ``model.export`` so that bnport chooses the input signature, keeps the graph in
memory and feeds the weights as inputs. tf2onnx's graph optimizers are skipped (they only tidy transposes that ONNX
Runtime's own optimizer removes anyway: docs/performance.md), and on the tested tf2onnx the function is traced in a
plain graph where it can be (:mod:`bnport.adapters.keras.compat.tf2onnx`).
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import onnx

from bnport.adapters.keras.compat import keras_ops
from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
from bnport.adapters.swaps import EXPORT_LOCK
from bnport.errors import ExportError, PatchError
from bnport.onnxcheck.shapes import known_dims

OPSET = 17
#: the graph keeps its batch axis open
STATIC_BATCH = False

#: tf.function's autograph for the exported function: off, as Keras's own TensorFlow export traces (a functional
#: model cannot branch on tensors in Python); the same graph (tested), traced faster
AUTOGRAPH = False


def value_array(variable) -> np.ndarray:
    """The variable's value as an array sharing the memory of the tensor TensorFlow reads it into: no copy
    (``np.asarray`` of an eager tensor is a view of its buffer; onnxruntime only reads it). The view keeps the value it
    was read with: an assignment to the variable while the view lives writes a new buffer (TensorFlow's copy on
    write; tested). A scalar (a ``Normalization`` layer's ``count``) gives a 0-d array, which onnxruntime takes where
    a numpy scalar is refused. A value TensorFlow cannot take as a tensor goes through Keras's own conversion."""
    import keras
    import tensorflow as tf

    value = variable.value
    try:
        tensor = tf.convert_to_tensor(value)
    except (TypeError, ValueError):
        return keras.ops.convert_to_numpy(value)
    return np.asarray(tensor)


def convert(forward, variables: tuple, shapes: list[tuple], dtypes: list[str], names: list[str], *,
            name: str) -> tuple[onnx.ModelProto, bool]:
    """The ONNX graph of ``forward(*inputs, *weights)``, and whether tensors the function captured (not variables)
    were frozen into it as constants."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    data = [tf.TensorSpec((None, *s[1:]), tf.as_dtype(np.dtype(d)), name=n)
            for s, d, n in zip(shapes, dtypes, names[:len(shapes)], strict=True)]
    weights = [tf.TensorSpec(v.shape, tf.as_dtype(v.dtype), name=n)
               for v, n in zip(variables, names[len(shapes):], strict=True)]
    signature = (*data, *weights)
    inference = tf.function(forward, input_signature=signature, autograph=AUTOGRAPH)
    captured: dict[str, np.ndarray] = {}
    try:
        with (EXPORT_LOCK, warnings.catch_warnings(), keras_ops.convolutions_without_xla(),
              keras_ops.batchnorm_without_reshapes()):
            warnings.simplefilter("ignore")
            model = tf2onnx_compat.convert(inference, signature, opset=OPSET, captured=captured)
    except PatchError:
        raise
    except Exception as exc:
        raise ExportError(f"tf2onnx failed to export Keras '{name}': {exc}") from exc
    return _restore_conv_groups(_captured_as_initializers(model, captured)), bool(captured)


def _captured_as_initializers(model: onnx.ModelProto, captured: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Graph inputs that stand for tensors the exported function captured become initializers of their values."""
    from onnx import numpy_helper

    inputs = [i for i in model.graph.input if i.name not in captured]
    model.graph.initializer.extend(numpy_helper.from_array(captured[i.name], i.name)
                                   for i in model.graph.input if i.name in captured)
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def _restore_conv_groups(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give grouped ONNX Conv nodes back the ``group`` attribute tf2onnx 1.17 drops for 3-D convolutions.

    A Conv whose input has C channels and whose weight has C/g input channels per group is grouped with g
    groups by definition; the node is fixed only when both numbers are known and divide exactly.
    """
    from onnx import helper

    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    if not convs:
        return model
    shapes = known_dims(model)
    for node in convs:
        x, w = shapes.get(node.input[0]), shapes.get(node.input[1])
        if not x or not w or len(x) < 2 or len(w) < 2:
            continue
        channels, per_group = x[1], w[1]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if channels and per_group and channels != per_group * group and channels % per_group == 0:
            kept = [a for a in node.attribute if a.name != "group"]
            del node.attribute[:]
            node.attribute.extend([*kept, helper.make_attribute("group", channels // per_group)])
    return model
