"""Export a Keras 3 layer or model (TensorFlow backend) to ONNX through tf2onnx, in inference mode.

This is what ``model.export(path, format="onnx")`` does (a ``tf.function`` converted by
``tf2onnx.convert.from_function``), called directly so that bnport can choose the input signature, keep
the graph in memory, feed the weights as inputs and cache the graph per architecture (see export_keras).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from bnport.adapters.keras.compat import keras as keras_compat
from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
from bnport.adapters.keras.taps import Tapped
from bnport.adapters.swaps import EXPORT_LOCK
from bnport.errors import ExportError, PatchError

OPSET = 17


@dataclass(frozen=True)
class KerasOnnx:
    """An exported Keras graph whose weights are graph inputs, and the variables that feed them."""

    model: onnx.ModelProto
    variables: tuple

    def feeds(self, x: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """onnxruntime feeds: the data inputs (one array, or one per model input), then every variable's value."""
        import keras

        xs = [x] if isinstance(x, np.ndarray) else list(x)
        values = {f"w{i}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(self.variables)}
        return {**dict(zip(input_names(len(xs)), xs, strict=True)), **values}


def input_names(count: int) -> list[str]:
    """The graph's data input names: ``input``, or ``input_0``, ``input_1``, ... for several."""
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


#: architecture key -> exported graph; a graph depends on the architecture and settings, not on the weights.
#: The most recent CACHE_SIZE graphs are kept (a graph without its weights is small: docs/performance.md).
_CACHE: OrderedDict[str, onnx.ModelProto] = OrderedDict()
CACHE_SIZE = 16


#: tf.function's autograph for the exported function: off, as Keras's own TensorFlow export traces (a functional
#: model cannot branch on tensors in Python); the same graph (tested), traced faster
AUTOGRAPH = False


def _signature_shapes(input_shape, dtype) -> tuple[list[tuple], list[str]]:
    """One shape and dtype per data input, from one shape (a tuple of ints or None) or a sequence of them."""
    single = all(d is None or isinstance(d, (int, np.integer)) for d in input_shape)
    shapes = [tuple(input_shape)] if single else [tuple(s) for s in input_shape]
    dtypes = [dtype] * len(shapes) if isinstance(dtype, str) else list(dtype)
    return shapes, dtypes


def _cache_key(call, input_shape, dtype) -> str | None:
    taps: tuple[str, ...] = ()
    if isinstance(call, Tapped):
        call, taps = call.model, call.taps
    try:
        config = call.to_json() if hasattr(call, "to_json") else json.dumps(
            {"class": type(call).__name__, "config": call.get_config()}, sort_keys=True, default=str)
        # every layer's own settings, sublayers included: a layer holding others (a user's block) need not put
        # theirs (an epsilon) in its config, and the graph depends on them
        inner = [json.dumps([type(layer).__name__, layer.get_config()], sort_keys=True, default=str)
                 for layer in keras_compat.flatten_layers(call)]
    except Exception:  # a subclassed model without a config: not cached
        return None
    shapes, dtypes = _signature_shapes(input_shape, dtype)
    text = json.dumps([config, inner, list(taps), [list(s[1:]) for s in shapes], dtypes, keras_version()],
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def keras_version() -> str:
    """The Keras version (part of the cache key)."""
    import keras

    return keras.__version__


def export_keras(
    call: Callable,
    input_shape: tuple[int | None, ...] | Sequence[tuple[int | None, ...]],
    dtype: str | Sequence[str] = "float32",
    *,
    name: str = "keras",
) -> KerasOnnx:
    """Export ``call`` (a built Keras layer or model, or a :class:`~bnport.adapters.keras.taps.Tapped` model)
    applied with ``training=False`` to ONNX, for inputs of ``input_shape`` and ``dtype`` (one each, or one per model
    input; the batch axis stays open).

    The weights are not frozen into the graph: they are graph inputs fed at run time (``KerasOnnx.feeds``),
    through a ``keras.StatelessScope`` mapping each variable to its input. The graph then depends only on the
    architecture and its settings (epsilon, momentum, padding: all part of the Keras config), so it is cached by
    a hash of the config, the taps and the input shape, and a second verify of the same architecture with other
    weights skips the export. No weights pass through tf2onnx as constants either; its graph optimizers, which only
    tidy transposes that ONNX Runtime's own optimizer removes anyway, are skipped (same outputs within float32
    rounding, same onnxruntime time: docs/performance.md). A model whose layers compute with tensors that are not
    variables (a ``Normalization`` layer's mean and variance) has them frozen into its graph as constants and is not
    cached.
    """
    variables = call.variables if isinstance(call, Tapped) else (
        tuple(call.trainable_variables) + tuple(call.non_trainable_variables))
    key = _cache_key(call, input_shape, dtype)
    if key is not None and isinstance(_CACHE.get(key), onnx.ModelProto):
        _CACHE.move_to_end(key)
        return KerasOnnx(_CACHE[key], variables)
    model, constants = _convert(call, input_shape, dtype, name, variables)
    if key is not None:
        _CACHE[key] = model if not constants else None  # None: this architecture's graphs hold constants
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return KerasOnnx(model, variables)


def _convert(call, input_shape, dtype: str, name: str, variables: tuple) -> tuple[onnx.ModelProto, bool]:
    """The ONNX graph, and whether tensors the function captured were frozen into it as constants."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    shapes, dtypes = _signature_shapes(input_shape, dtype)
    data = [tf.TensorSpec((None, *s[1:]), tf.as_dtype(np.dtype(d)), name=n)
            for s, d, n in zip(shapes, dtypes, input_names(len(shapes)), strict=True)]
    weights = [tf.TensorSpec(v.shape, tf.as_dtype(v.dtype), name=f"w{i}") for i, v in enumerate(variables)]
    signature = (*data, *weights)
    forward = call if isinstance(call, Tapped) else (lambda x: call(x, training=False))
    count = len(data)

    @tf.function(input_signature=signature, autograph=AUTOGRAPH)
    def inference(*args):
        xs, weights = args[:count], args[count:]
        with keras.StatelessScope(state_mapping=list(zip(variables, weights, strict=True))):
            return forward(xs[0] if count == 1 else list(xs))

    captured: dict[str, np.ndarray] = {}
    try:
        with EXPORT_LOCK, warnings.catch_warnings(), keras_compat.convolutions_without_xla():
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
    from onnx import helper, shape_inference

    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    if not convs:
        return model
    inferred = shape_inference.infer_shapes(model)
    shapes = {}
    for info in list(inferred.graph.value_info) + list(inferred.graph.input):
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
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


def float32_copy(model):
    """A float32 clone of a Keras model that holds or computes another floating dtype, with its values cast (exact
    for float16 and bfloat16): verify computes in float32, and onnxruntime's CPU kernels do not run bfloat16.
    Layer names are kept, so the same taps apply. Returns ``model`` itself when it is float32 throughout."""
    import keras

    layers = keras_compat.flatten_layers(model)
    dtypes = {v.dtype for v in model.weights} | {getattr(layer, "compute_dtype", "float32") for layer in layers}
    if dtypes <= {"float32"}:
        return model

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = "float32"
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    except Exception as exc:
        raise ExportError(f"Keras model '{model.name}' holds or computes {', '.join(sorted(dtypes - {'float32'}))}, "
                          f"and bnport could not make the float32 copy it verifies: {exc}") from exc
    if [tuple(v.shape) for v in copy.weights] != [tuple(v.shape) for v in model.weights]:
        raise ExportError(f"the float32 copy of Keras model '{model.name}' does not have the model's variables")
    for mine, theirs in zip(copy.weights, model.weights, strict=True):
        mine.assign(keras.ops.cast(theirs.value, mine.dtype))
    return copy
