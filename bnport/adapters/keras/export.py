"""Export a Keras 3 layer or model to ONNX in inference mode, through the active backend's exporter.

Each backend's exporter (:mod:`bnport.adapters.keras.exporters`) takes the path Keras's own
``model.export(path, format="onnx")`` takes there, called directly so that bnport can choose the input signature,
keep the graph in memory, feed the weights as inputs and cache the graph per architecture (see export_keras).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from bnport.adapters.keras import exporters
from bnport.adapters.keras.compat import keras as keras_compat
from bnport.adapters.keras.taps import Tapped
from bnport.errors import ExportError


@dataclass(frozen=True)
class KerasOnnx:
    """An exported Keras graph whose weights are graph inputs, and the variables that feed them."""

    model: onnx.ModelProto
    variables: tuple

    def feeds(self, x: np.ndarray | Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """onnxruntime feeds: the data inputs (one array, or one per model input), then every variable's value, a
        view of it where the backend allows (``value_array`` of its exporter): valid while the variables keep their
        values, which a verify runs within."""
        import keras

        xs = [x] if isinstance(x, np.ndarray) else list(x)
        taken = {i.name for i in self.model.graph.input}  # an exporter may drop a variable nothing reads
        array = exporters.for_backend(keras.backend.backend()).value_array
        values = {n: array(v) for n, v in zip(weight_names(len(self.variables)), self.variables, strict=True)
                  if n in taken}
        data = dict(zip(input_names(len(xs)), xs, strict=True))
        return {**{name: _as_declared(x, self.model, name) for name, x in data.items()}, **values}


def _as_declared(x: np.ndarray, model: onnx.ModelProto, name: str) -> np.ndarray:
    """``x`` in the dtype the graph declares for input ``name``: JAX computes in 32 bits unless told otherwise, so its
    graphs take int32 token ids where the caller has int64 ones (converted when every value fits, else refused)."""
    declared = next((i.type.tensor_type.elem_type for i in model.graph.input if i.name == name), None)
    if declared is None:
        return x
    want = onnx.helper.tensor_dtype_to_np_dtype(declared)
    if x.dtype == want:
        return x
    cast = x.astype(want)
    if not np.array_equal(cast, x):
        raise ExportError(f"the exported Keras graph takes input '{name}' as {want}, and the values given ({x.dtype}) "
                          "do not fit it")
    return cast


def input_names(count: int) -> list[str]:
    """The graph's data input names: ``input``, or ``input_0``, ``input_1``, ... for several."""
    return ["input"] if count == 1 else [f"input_{i}" for i in range(count)]


def weight_names(count: int) -> list[str]:
    """The graph's weight input names, one per variable in order: ``w0``, ``w1``, ..."""
    return [f"w{i}" for i in range(count)]


#: architecture key -> exported graph; a graph depends on the architecture and settings, not on the weights.
#: The most recent CACHE_SIZE graphs are kept (a graph without its weights is small: docs/performance.md).
_CACHE: OrderedDict[str, onnx.ModelProto] = OrderedDict()
CACHE_SIZE = 16


def _signature_shapes(input_shape, dtype) -> tuple[list[tuple], list[str]]:
    """One shape and dtype per data input, from one shape (a tuple of ints or None) or a sequence of them."""
    single = all(d is None or isinstance(d, (int, np.integer)) for d in input_shape)
    shapes = [tuple(input_shape)] if single else [tuple(s) for s in input_shape]
    dtypes = [dtype] * len(shapes) if isinstance(dtype, str) else list(dtype)
    return shapes, dtypes


def _cache_key(call, input_shape, dtype, backend) -> str | None:
    taps: tuple[str, ...] = ()
    if isinstance(call, Tapped):
        call, taps = call.model, call.taps
    try:
        with keras_compat.serializing_without_tensorflow():
            config = call.to_json() if hasattr(call, "to_json") else json.dumps(
                {"class": type(call).__name__, "config": call.get_config()}, sort_keys=True, default=str)
            # every layer's own settings, sublayers included: a layer holding others (a user's block) need not put
            # theirs (an epsilon) in its config, and the graph depends on them
            inner = [json.dumps([type(layer).__name__, layer.get_config()], sort_keys=True, default=str)
                     for layer in keras_compat.flatten_layers(call)]
    except Exception:  # a subclassed model without a config: not cached
        return None
    shapes, dtypes = _signature_shapes(input_shape, dtype)
    static = backend.STATIC_BATCH
    text = json.dumps([config, inner, list(taps), [list(s if static else s[1:]) for s in shapes], dtypes,
                       keras_version(), backend.__name__], default=str)
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
    input; the batch axis stays open, except on the torch backend: :mod:`bnport.adapters.keras.exporters.torch`).

    The weights are not frozen into the graph: they are graph inputs fed at run time (``KerasOnnx.feeds``),
    through a ``keras.StatelessScope`` mapping each variable to its input. The graph then depends only on the
    architecture and its settings (epsilon, momentum, padding: all part of the Keras config), so it is cached by
    a hash of the config, the taps and the input shape, and a second verify of the same architecture with other
    weights skips the export; no weights pass through the exporter as constants either. A model whose layers compute
    with tensors that are not variables (a ``Normalization`` layer's mean and variance) has them frozen into its
    graph as constants and is not cached.
    """
    import keras

    backend = exporters.for_backend(keras.backend.backend())
    variables = call.variables if isinstance(call, Tapped) else (
        tuple(call.trainable_variables) + tuple(call.non_trainable_variables))
    key = _cache_key(call, input_shape, dtype, backend)
    if key is not None and isinstance(_CACHE.get(key), onnx.ModelProto):
        _CACHE.move_to_end(key)
        return KerasOnnx(_CACHE[key], variables)
    model, constants = _convert(backend, call, input_shape, dtype, name, variables)
    if key is not None:
        _CACHE[key] = model if not constants else None  # None: this architecture's graphs hold constants
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    return KerasOnnx(model, variables)


def _convert(backend, call, input_shape, dtype, name: str, variables: tuple) -> tuple[onnx.ModelProto, bool]:
    """The ONNX graph through ``backend`` (the active backend's exporter module), and whether it holds tensors frozen
    as constants."""
    import keras

    shapes, dtypes = _signature_shapes(input_shape, dtype)
    forward = call if isinstance(call, Tapped) else (lambda x: call(x, training=False))
    count = len(shapes)

    def inference(*args):
        xs, weights = args[:count], args[count:]
        with keras.StatelessScope(state_mapping=list(zip(variables, weights, strict=True))):
            return forward(xs[0] if count == 1 else list(xs))

    names = [*input_names(count), *weight_names(len(variables))]
    model, constants = backend.convert(inference, variables, shapes, dtypes, names, name=name)
    return model, constants or holds_tensors(call)


def holds_tensors(call) -> bool:
    """Whether a layer of ``call`` holds tensors that are not variables (a ``Normalization`` layer's mean): an export
    freezes them into the graph as constants, so the graph depends on more than the architecture."""
    import keras

    model = call.model if isinstance(call, Tapped) else call
    variables = {id(v) for v in model.variables}  # Keras 3.5's backend variables are no keras.Variable instances
    tensor_types: dict[type, bool] = {}  # each backend's is_tensor is a check of the value's type
    for layer in keras_compat.flatten_layers(model):
        for value in vars(layer).values():
            kind = type(value)
            is_tensor = tensor_types.get(kind)
            if is_tensor is None:  # asked once per type: TensorFlow's check takes 7 us (25,600 values in DenseNet-121)
                is_tensor = tensor_types[kind] = bool(keras.ops.is_tensor(value))
            if is_tensor and not isinstance(value, keras.Variable) and id(value) not in variables:
                return True
    return False


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
