"""Export a Keras 3 layer or model (TensorFlow backend) to ONNX through tf2onnx, in inference mode.

This is what ``model.export(path, format="onnx")`` does (a ``tf.function`` converted by
``tf2onnx.convert.from_function``), called directly so that bnport can choose the input signature, keep
the graph in memory, feed the weights as inputs and cache the graph per architecture (see export_keras).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import onnx

from bnport.adapters.keras.taps import Tapped
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
#: The most recent CACHE_SIZE graphs are kept (a ResNet-50 graph without its weights is 0.2 MB).
_CACHE: OrderedDict[str, onnx.ModelProto] = OrderedDict()
CACHE_SIZE = 16


#: tf.function's autograph for the exported function: off, as Keras's own TensorFlow export traces (a functional
#: model cannot branch on tensors in Python); 0.2 s of the 1.1 s trace of a tapped ResNet-50, same graph (tested)
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
                 for layer in call._flatten_layers(include_self=False)] if hasattr(call, "_flatten_layers") else []
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
    weights skips the export. No 90 MB of constants pass through tf2onnx either; its graph optimizers, which only
    tidy transposes that ONNX Runtime's own optimizer removes anyway, are skipped (same outputs within 2e-7,
    same onnxruntime time). A model whose layers compute with tensors that are not variables (a ``Normalization``
    layer's mean and variance) has them frozen into its graph as constants and is not cached.
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
    import tf2onnx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _patch_tf2onnx()
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
        with warnings.catch_warnings(), _convolutions_without_xla(), _tf2onnx_fast_paths(captured):
            warnings.simplefilter("ignore")
            model, _ = tf2onnx.convert.from_function(inference, input_signature=signature, opset=OPSET,
                                                     custom_op_handlers=dict(CUSTOM_OPS))
    except Exception as exc:
        raise ExportError(f"tf2onnx failed to export Keras '{name}': {exc}") from exc
    return _restore_conv_groups(_captured_as_initializers(model, captured)), bool(captured)


def _erfc(ctx, node, name, args) -> None:
    """TensorFlow's ``Erfc`` (Keras's exact GELU on the TensorFlow backend: ConvNeXt), which tf2onnx 1.17 does not
    convert, as ONNX ``1 - Erf(x)``: the same value, with an absolute error of a float32 rounding of 1."""
    from tf2onnx import utils

    dtype = utils.map_onnx_to_numpy_type(ctx.get_dtype(node.input[0]))
    erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=name)
    one = ctx.make_const(utils.make_name(f"{name}_one"), np.array(1, dtype=dtype))
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])


#: TensorFlow ops tf2onnx cannot convert, with bnport's conversion (tf2onnx's public ``custom_op_handlers``)
CUSTOM_OPS = {"Erfc": (_erfc, [])}


@contextlib.contextmanager
def _tf2onnx_fast_paths(captured: dict[str, np.ndarray]) -> Iterator[None]:
    """Five tf2onnx 1.17 behaviours replaced while bnport exports, each giving the same graph faster.

    * No graph optimizers: they only tidy transposes, which ONNX Runtime's own optimizer removes (same
      outputs, same run time; measured on ResNet-50).
    * ``Graph.extract_sub_graph_nodes`` walks the graph once from all outputs instead of once per output and
      uniting the sets: the same set of nodes, but linear instead of quadratic for a tapped model with a
      hundred outputs (ResNet-50 with 107 taps: the walk went from 7 s to a fraction of a second).
    * No freezing of a function that captures no variable (see ``_from_function_with_nothing_to_freeze``); the
      tensors it captures are put in ``captured``.
    * ``Graph.replace_all_inputs`` given every node of the graph (as ``Graph.__init__`` does once per graph
      output, to put an Identity behind it) visits only the nodes that read the replaced name, from the graph's
      own index of consumers: the same rewiring, without a pass over the whole graph per output (about 0.5 s
      for a tapped ResNet-50).
    * ``Graph.reset_nodes`` checks that every graph input is among the nodes with a set instead of a list: bnport's
      graphs have an input per weight (606 for DenseNet-121), and tf2onnx resets the graph after each of its 27
      rewriters and each sort (see ``_reset_nodes_with_a_set``).
    """
    import tf2onnx.optimizer
    from tf2onnx import tf_loader
    from tf2onnx.graph import Graph

    optimizers, extract = tf2onnx.optimizer._get_optimizers, Graph.extract_sub_graph_nodes
    load, replace, reset = tf_loader.from_function, Graph.replace_all_inputs, Graph.reset_nodes
    tf2onnx.optimizer._get_optimizers = dict
    Graph.extract_sub_graph_nodes = _extract_sub_graph_nodes_once
    tf_loader.from_function = _from_function_with_nothing_to_freeze(load, captured)
    Graph.replace_all_inputs = _replace_all_inputs_indexed(replace)
    Graph.reset_nodes = _reset_nodes_with_a_set(reset)
    try:
        yield
    finally:
        tf2onnx.optimizer._get_optimizers = optimizers
        Graph.extract_sub_graph_nodes = extract
        tf_loader.from_function = load
        Graph.replace_all_inputs = replace
        Graph.reset_nodes = reset


def _reset_nodes_with_a_set(reset: Callable) -> Callable:
    """tf2onnx's ``Graph.reset_nodes``, its check that each graph input is among ``ops`` made with a set.

    The original tests ``n not in ops`` (a list) for every graph input: inputs times nodes comparisons per call.
    The same check, with the same error, runs here on a set of the nodes; the original then runs with the graph's
    input list emptied for the call (so its own check has nothing to do) and put back, whatever happens.
    """

    def reset_nodes(self, ops):
        inputs = self.inputs
        present = {id(op) for op in ops}
        for n in inputs:
            if id(n) not in present:
                raise ValueError("graph input '" + n.name + "' not exist")
        self.inputs = []
        try:
            return reset(self, ops)
        finally:
            self.inputs = inputs

    return reset_nodes


def _replace_all_inputs_indexed(replace: Callable) -> Callable:
    """tf2onnx's ``Graph.replace_all_inputs``, through the consumer index when it is handed the whole graph.

    Given ``ops=graph.get_nodes()`` it checks every node; the nodes it can change are those reading
    ``old_input``, which the graph's ``_output_to_consumers`` index lists (tf2onnx's own path when ``ops`` is
    None). Graphs with subgraphs (control flow) keep the original behaviour.
    """

    def replace_all_inputs(self, old_input, new_input, ops=None):
        if ops is not None and ops is self._nodes and not self.contained_graphs and not self._input_to_graph:
            ops = None
        return replace(self, old_input, new_input, ops=ops)

    return replace_all_inputs


def _from_function_with_nothing_to_freeze(load: Callable, captured: dict[str, np.ndarray]) -> Callable:
    """tf2onnx's ``tf_loader.from_function``, without freezing a function that has no variable to freeze.

    Freezing (``convert_variables_to_constants_v2``) turns captured variables into constants and inlines
    called functions, rebuilding the whole graph to do so (about 1.4 s for a tapped ResNet-50). bnport's
    exports feed the weights as inputs: when the function captures no variable and calls no other function, its
    graph already is what freezing would return, and the rest of tf2onnx's loading runs unchanged on it.

    Plain tensors the function captured (a Keras ``Normalization`` layer computes with a mean and variance it
    copied from its variables when it was built) stay placeholders either way, which tf2onnx makes graph inputs
    that nobody feeds: their values go to ``captured`` by input name, for :func:`_captured_as_initializers`.
    """
    import tensorflow as tf
    from tf2onnx import tf_loader

    def from_function(func, input_names, output_names, large_model=False):
        captures = list(func.graph.captures)
        captured.update({internal.name: external.numpy() for external, internal in captures
                         if external.dtype != tf.resource})
        if large_model or len(captured) != len(captures):
            return load(func, input_names, output_names, large_model=large_model)
        graph_def = func.graph.as_graph_def(add_shapes=True)
        if graph_def.library.function:
            return load(func, input_names, output_names, large_model=large_model)
        graph_def = tf_loader.fix_freezing_errors_part2(graph_def)
        with tf.Graph().as_default() as tf_graph, tf_loader.tf_session(graph=tf_graph) as sess:
            tf.import_graph_def(graph_def, name="")
            input_names = tf_loader.inputs_without_resource(sess, input_names)
            return tf_loader.tf_optimize(input_names, output_names, graph_def)

    return from_function


def _captured_as_initializers(model: onnx.ModelProto, captured: dict[str, np.ndarray]) -> onnx.ModelProto:
    """Graph inputs that stand for tensors the exported function captured become initializers of their values."""
    from onnx import numpy_helper

    inputs = [i for i in model.graph.input if i.name not in captured]
    model.graph.initializer.extend(numpy_helper.from_array(captured[i.name], i.name)
                                   for i in model.graph.input if i.name in captured)
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    return model


def _extract_sub_graph_nodes_once(self, outputs_name, input_checker=None, remove_unused_inputs=True):
    """The nodes reachable backwards from ``outputs_name`` (tf2onnx's contract), in one shared walk."""
    outputs = list(outputs_name)
    if not remove_unused_inputs:
        outputs += [inp.output[0] for inp in self.inputs]
    seen: set = set()
    stack = []

    def visit(node) -> None:
        if node and node not in seen and not (input_checker and input_checker(node) is False):
            seen.add(node)
            stack.append(node)

    for output in outputs:
        visit(self.get_node_by_output(output, search_in_parent_graphs=False))
        while stack:
            top = stack.pop()
            for input_id in list(top.input) + list(top.get_implicit_inputs()):
                visit(self.get_node_by_output(input_id, search_in_parent_graphs=False))
    return list(seen)


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

    layers = list(model._flatten_layers(include_self=False)) if hasattr(model, "_flatten_layers") else model.layers
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
