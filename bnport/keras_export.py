"""Export a Keras 3 layer or model (TensorFlow backend) to ONNX through tf2onnx, in inference mode.

This is what ``model.export(path, format="onnx")`` does (a ``tf.function`` converted by
``tf2onnx.convert.from_function``), called directly so that bnport can choose the input signature, keep
the graph in memory and skip tf2onnx's roll-back copies (``TF2ONNX_CATCH_ERRORS=FALSE``, which only
changes what happens when an optimizer pass fails: it raises instead of being undone).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model, _ = tf2onnx.convert.from_function(inference, input_signature=signature, opset=OPSET)
    except Exception as exc:
        raise ExportError(f"tf2onnx failed to export Keras '{name}': {exc}") from exc
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
