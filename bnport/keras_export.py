"""Export a Keras 3 layer or model (TensorFlow backend) to ONNX through tf2onnx, in inference mode.

This is what ``model.export(path, format="onnx")`` does (a ``tf.function`` converted by
``tf2onnx.convert.from_function``), called directly so that bnport can choose the input signature, keep
the graph in memory and skip tf2onnx's roll-back copies (``TF2ONNX_CATCH_ERRORS=FALSE``, which only
changes what happens when an optimizer pass fails: it raises instead of being undone).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import onnx

from bnport.errors import ExportError

OPSET = 17


def _patch_tf2onnx() -> None:
    # tf2onnx 1.17 still uses numpy 1 names; Keras ships the patch it applies before its own export.
    try:
        from keras.src.export.tf2onnx_lib import patch_tf2onnx
    except ImportError:  # pragma: no cover - older or newer Keras without the helper
        return
    patch_tf2onnx()


@contextlib.contextmanager
def _convolutions_without_xla() -> Iterator[None]:
    """Trace Keras convolutions as plain ``tf.nn.convolution`` ops while exporting.

    Keras's TensorFlow backend runs grouped convolutions (and channels-first 3-D ones) inside an
    XLA-compiled ``tf.function`` because TensorFlow's CPU kernels for them are broken; tf2onnx cannot convert
    that call. The exported graph only needs the op itself, which ONNX Runtime executes, so bnport traces the
    same ``tf.nn.convolution`` without XLA for the export, and restores Keras's function afterwards.
    """
    import tensorflow as tf
    from keras.src import backend
    from keras.src.backend.tensorflow import nn as tf_nn

    original = tf_nn.conv

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        fmt = tf_nn._convert_data_format(backend.standardize_data_format(data_format), len(inputs.shape))
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format=fmt, dilations=dilation_rate)

    tf_nn.conv = conv
    try:
        yield
    finally:
        tf_nn.conv = original


def export_keras(
    call: Callable,
    input_shape: tuple[int | None, ...],
    dtype: str = "float32",
    *,
    name: str = "keras",
) -> onnx.ModelProto:
    """Export ``call`` (a Keras layer or model) applied with ``training=False`` to an ONNX model.

    ``input_shape`` includes the batch axis (use None for dynamic axes). Outputs keep the structure the
    call returns (a list for several outputs).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF2ONNX_CATCH_ERRORS", "FALSE")
    import tensorflow as tf
    import tf2onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _patch_tf2onnx()
    signature = (tf.TensorSpec((None, *input_shape[1:]), tf.as_dtype(np.dtype(dtype)), name="input"),)

    @tf.function(input_signature=signature)
    def inference(x):
        return call(x, training=False)

    try:
        with warnings.catch_warnings(), _convolutions_without_xla():
            warnings.simplefilter("ignore")
            model, _ = tf2onnx.convert.from_function(inference, input_signature=signature, opset=OPSET)
    except Exception as exc:
        raise ExportError(f"tf2onnx failed to export Keras '{name}': {exc}") from exc
    return _restore_conv_groups(model)


def _restore_conv_groups(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give grouped ONNX Conv nodes back the ``group`` attribute tf2onnx 1.17 drops for 3-D convolutions.

    A Conv whose input has C channels and whose weight has C/g input channels per group is grouped with g
    groups by definition; the node is fixed only when both numbers are known and divide exactly.
    """
    from onnx import helper, numpy_helper, shape_inference

    inits = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits]
    if not convs:
        return model
    inferred = shape_inference.infer_shapes(model)
    dims = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input):
        shape = info.type.tensor_type.shape.dim
        if len(shape) > 1 and shape[1].HasField("dim_value"):
            dims[info.name] = shape[1].dim_value
    for node in convs:
        channels, per_group = dims.get(node.input[0]), inits[node.input[1]][1]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if channels and per_group and channels != per_group * group and channels % per_group == 0:
            kept = [a for a in node.attribute if a.name != "group"]
            del node.attribute[:]
            node.attribute.extend([*kept, helper.make_attribute("group", channels // per_group)])
    return model


def with_taps(model, names: list[str]):
    """A functional model with ``model``'s inputs returning its outputs, then the named layers' outputs.

    Only layers of ``model`` itself can be tapped (a layer inside a nested model has no tensor in this
    graph); returns the tapped model, how many outputs are the model's own, and the names it could not tap.
    """
    import keras

    from bnport.keras_graph import functional

    fn = functional(model)
    own = {layer.name: layer for layer in fn.layers}
    tapped, skipped = [], []
    for name in names:
        layer = own.get(name)
        if layer is None or len(layer._inbound_nodes) != 1:
            skipped.append(name)
            continue
        tapped.append(layer.output)
    outputs = list(fn.outputs) + tapped
    return keras.Model(fn.inputs, outputs, name=f"{model.name}_taps"), len(fn.outputs), skipped
