"""tf2onnx, as bnport calls it: its public conversion, and the faster equivalent bnport runs on the tested version.

The public path is ``tf2onnx.convert.from_function``. On the tf2onnx versions in :data:`TESTED`, with every part
:func:`probe` checks present, bnport runs the same steps itself from tf2onnx's public pieces (load the function's
graph, ``tfonnx.process_tf_graph``, ``optimizer.optimize_graph`` with the optimizer set passed as an argument,
``make_model``) with these differences, each giving the same graph faster (pinned by tests over the fixtures):

* The Keras forward traced in a plain ``tf.Graph`` rather than as the ``tf.function`` (:func:`_traced_in_a_graph`):
  the same TensorFlow ops without a function's tracing machinery and the ``Identity`` behind each of its outputs;
  a function that captures a tensor or variable, which only a ``tf.function`` can trace, is traced as one.
* No graph optimizers (an empty set, through ``optimize_graph``'s own ``optimizers`` argument): they only tidy
  transposes, which ONNX Runtime's optimizer removes anyway (same outputs, same onnxruntime time).
* No freezing of a graph that captures no variable and calls no function
  (:func:`_loaded_without_freezing`): freezing rebuilds the whole graph to inline variables bnport feeds as
  inputs anyway; and where grappler is skipped too, no import of the traced graph into a new one, which would only
  copy it.
* Four ``tf2onnx.graph.Graph`` methods, ``GraphMatcher.match_ops`` and ``tfonnx.resolve_functions`` replaced for
  the conversion (:func:`~bnport.adapters.keras.compat.tf2onnx_graph.replacements`), through
  :class:`bnport.adapters.swaps.Swap` (the export lock held, the calling thread only, restored on every exit).

Keras's own ``patch_tf2onnx`` (numpy 2 names) is not called: tf2onnx 1.17 no longer uses the names it patches, and
its patch is permanent and process-wide.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx

from bnport.adapters.keras.compat import tf2onnx_graph
from bnport.adapters.swaps import EXPORT_LOCK, Swap

#: tf2onnx versions (major.minor) whose private parts bnport's fast path was tested on
TESTED = ("1.17",)

#: False: always take tf2onnx's public path (the fallback, tested; also what a version outside TESTED gets)
FAST = True


def probe() -> str | None:
    """Why the fast path cannot run on the installed tf2onnx, or None when it can."""
    import tf2onnx
    from tf2onnx import optimizer, tf_loader, tfonnx
    from tf2onnx.graph import Graph
    from tf2onnx.graph_matcher import GraphMatcher

    version = getattr(tf2onnx, "__version__", "?")
    if not any(version == t or version.startswith(t + ".") for t in TESTED):
        return f"tf2onnx {version} is not a tested version ({', '.join(TESTED)})"
    needed = {Graph: ("extract_sub_graph_nodes", "replace_all_inputs", "reset_nodes", "get_node_by_output",
                      "topological_sort"),
              tf_loader: ("from_function", "fix_freezing_errors_part2", "tf_optimize"),
              tfonnx: ("process_tf_graph", "resolve_functions"), optimizer: ("optimize_graph",),
              GraphMatcher: ("match_ops", "match_op"),
              tf2onnx.convert: ("tensor_names_from_structed",)}
    missing = [f"{getattr(owner, '__name__', owner)}.{name}" for owner, names in needed.items() for name in names
               if not hasattr(owner, name)]
    return f"tf2onnx {version} lacks {', '.join(missing)}" if missing else None


def convert(function, signature: Sequence, *, opset: int, captured: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX model of the ``tf.function`` ``function`` for ``signature``; the plain tensors the function captured
    are put in ``captured`` by their graph input name (tf2onnx makes them graph inputs that nobody feeds). TensorFlow
    ops tf2onnx cannot convert go through :data:`CUSTOM_OPS`. On the fast path the function's Python code is traced
    in a plain graph where it can be (:func:`_traced_in_a_graph`), which captures nothing.

    Runs under :data:`~bnport.adapters.swaps.EXPORT_LOCK` whichever path it takes.
    """
    import tensorflow as tf

    with EXPORT_LOCK:
        fast = FAST and probe() is None
        traced = _traced_in_a_graph(function.python_function, signature) if fast and IN_A_GRAPH else None
        if traced is None:
            concrete = function.get_concrete_function(*signature)
            captured.update({internal.name: external.numpy() for external, internal in concrete.graph.captures
                             if external.dtype != tf.resource})
            if not fast:
                import tf2onnx

                model, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset,
                                                         custom_op_handlers=dict(CUSTOM_OPS))
                return model
        with Swap("tf2onnx", tf2onnx_graph.replacements()) as swap:
            model = _convert_fast(concrete, opset) if traced is None else _converted(
                *traced, opset, f"converted from {function.python_function.__name__}")
        swap.check()
        return model


#: False: always trace a ``tf.function`` (what tf2onnx's public path converts) instead of tracing in a plain graph
IN_A_GRAPH = True


def _traced_in_a_graph(forward, signature: Sequence):
    """``forward`` traced in a plain ``tf.Graph`` (placeholders named as ``signature``), as ``(loaded, inputs,
    outputs, renames)`` for :func:`_converted`; None where only a ``tf.function`` can trace it or where tf2onnx's
    loader would have more to do than :func:`_loaded_without_freezing` does.

    A ``tf.function`` traces the same TensorFlow ops into a ``FuncGraph`` and puts an ``Identity`` behind each output
    (a tapped DenseNet-121: 2,187 ops against 1,944), ops tf2onnx then converts one by one; and its tracing machinery
    is paid once per export. A plain graph cannot capture an eager tensor or variable: a model that computes with one
    (a ``Normalization`` layer's mean) fails here and is traced as a function, which freezes it. An output that is a
    graph input or another output gets an ``Identity`` of its own, as each output of a function has. The ONNX graph
    holds the same nodes but for those ``Identity`` nodes, and computes the same numbers bit for bit (tested on the
    fixtures and keras.applications models).
    """
    import tensorflow as tf

    graph = tf.Graph()
    try:
        with graph.as_default():
            placeholders = [tf.compat.v1.placeholder(s.dtype, s.shape, name=s.name) for s in signature]
            outputs, seen = [], {p.name for p in placeholders}
            for out in tf.nest.flatten(forward(*placeholders)):
                if not isinstance(out, tf.Tensor) or out.graph is not graph:
                    return None
                if out.name in seen:
                    out = tf.identity(out)
                seen.add(out.name)
                outputs.append(out)
    except Exception:  # what a plain graph cannot trace: the function path traces it, or raises the error itself
        return None
    inputs = [p.name for p in placeholders]
    names = [o.name for o in outputs]
    with tf.device("/cpu:0"):
        loaded = _loaded_without_freezing(graph, inputs, names)
    if loaded is None:
        return None
    return loaded, inputs, names, {p.name: s.name for p, s in zip(placeholders, signature, strict=True)}


def _convert_fast(concrete, opset: int) -> onnx.ModelProto:
    """``tf2onnx.convert.from_function``'s steps, from tf2onnx's public pieces, without optimizers or freezing."""
    import tensorflow as tf
    from tf2onnx import tf_loader
    from tf2onnx.convert import tensor_names_from_structed

    inputs = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    renames = tensor_names_from_structed(concrete, inputs, outputs)
    with tf.device("/cpu:0"):
        loaded = _loaded_without_freezing(concrete.graph, inputs, outputs)
        if loaded is None:
            loaded = tf_loader.from_function(concrete, inputs, outputs)
    return _converted(loaded, inputs, outputs, renames, opset, f"converted from {concrete.name}")


def _converted(loaded, inputs: list[str], outputs: list[str], renames: dict, opset: int, doc: str) -> onnx.ModelProto:
    """tf2onnx's conversion of ``loaded`` (a ``tf.Graph`` as it is, or a GraphDef imported first), no optimizers."""
    import tensorflow as tf
    from tf2onnx import optimizer, tfonnx

    with tf.device("/cpu:0"), tf.Graph().as_default() as tf_graph:  # a graph of its own, whichever is converted
        if not isinstance(loaded, tf.Graph):
            tf.import_graph_def(loaded, name="")
            loaded = tf_graph
        g = tfonnx.process_tf_graph(loaded, continue_on_error=True, opset=opset, custom_op_handlers=dict(CUSTOM_OPS),
                                    input_names=inputs, output_names=outputs, tensors_to_rename=renames)
        g = optimizer.optimize_graph(g, catch_errors=True, optimizers={})
        return g.make_model(doc)


def _loaded_without_freezing(graph, inputs: list[str], outputs: list[str]):
    """What tf2onnx's loader would give the conversion of ``graph`` (a ``tf.function``'s or a plain one), when
    freezing has nothing to do; else None.

    Freezing (``convert_variables_to_constants_v2``) turns captured variables into constants and inlines called
    functions, rebuilding the whole graph to do so (docs/performance.md). bnport's exports feed the
    weights as inputs: when the graph captures no variable and calls no function, it already is
    what freezing returns (the loader's fix of ``ResourceGather`` ops only touches called functions), and the rest
    of tf2onnx's loading runs on it, but for these steps:

    * the loader imports the whole graph into a session only to drop the inputs of resource dtype, and ``inputs``
      holds none (the caller leaves them out), so grappler is given the GraphDef directly, under an empty default
      graph as in the loader;
    * grappler is skipped where it could not change a value (:func:`grappler_could_change_a_value`);
    * without grappler, the loaded graph would be the GraphDef imported into a new graph: the same ops, by the same
      names, in the same order, which TensorFlow builds again one by one. The graph itself is returned
      instead where every tensor's rank is known (:func:`_ranks_known`).

    Plain tensors it captured stay placeholders either way. Returns a ``tf.Graph`` to convert as it is, or a
    GraphDef to import.
    """
    import tensorflow as tf
    from tf2onnx import tf_loader

    if any(out.dtype == tf.resource for op in graph.get_operations() for out in op.outputs):
        return None  # a variable, captured (a function's) or made while tracing: freezing has it to inline
    plain = graph.as_graph_def()  # what the checks read: ops, names and inputs (no shapes)
    if plain.library.function:
        return None
    if grappler_could_change_a_value(plain):
        with tf.Graph().as_default():  # what the loader's graph holds for grappler: no collections
            return tf_loader.tf_optimize(inputs, outputs, graph.as_graph_def(add_shapes=True))
    return graph if _ranks_known(graph) else graph.as_graph_def(add_shapes=True)


def _ranks_known(graph) -> bool:
    """Whether every tensor of ``graph`` has a known rank, so that tf2onnx converts it as it converts its imported
    copy. tf2onnx converts a function's graph as an imported one but for its shape inference, which it skips there;
    that inference only acts on tensors of unknown rank. The shapes are those TensorFlow inferred while tracing,
    which an import infers again. tf2onnx reads the graph and changes nothing in it (a constant's value would be
    written only for ``const_node_values``, which bnport does not pass): the same ONNX graph, node for node (tested
    on the fixtures and keras.applications models)."""
    from tf2onnx import tf_utils

    return all(tf_utils.get_tf_tensor_shape(out) is not None for op in graph.get_operations() for out in op.outputs)


#: TensorFlow ops of the Keras graphs bnport exports whose rewrites by grappler's optimizers in tf2onnx's loader
#: (``constfold``, ``function``, ``dependency``) need a constant operand, a constant subgraph or a control edge,
#: or only restructure the graph without changing a value (an Identity dropped, nested concatenations merged, a
#: Reshape to the same shape removed)
_PLAIN_OPS = frozenset({
    "Placeholder", "Const", "Identity", "Conv2D", "Conv3D", "DepthwiseConv2dNative", "BiasAdd", "MatMul", "Relu",
    "Relu6", "Sigmoid", "Tanh", "Mul", "AddV2", "Sub", "Rsqrt", "Reshape", "MaxPool", "AvgPool", "Mean", "Pad",
    "ConcatV2", "Squeeze", "Softmax",
})
#: arithmetic grappler's constant folding reassociates when two of its operands along a chain are constants
_ASSOCIATIVE = frozenset({"Mul", "AddV2", "Sub", "BiasAdd"})


def grappler_could_change_a_value(graph_def) -> bool:
    """Whether grappler, as tf2onnx's loader runs it, could change a value ``graph_def`` computes (and so must run).

    Its constant folding evaluates constant subgraphs with TensorFlow's kernels (where onnxruntime's would run),
    divides by a constant as a multiplication by its reciprocal and reassociates chains of arithmetic with two
    constants (``c1 * (c2 * x)`` as ``(c1 * c2) * x``), each a rounding of its own. A graph made only of
    :data:`_PLAIN_OPS`, no op of which has only constant inputs, with no control edge and no constant at two
    levels of an arithmetic chain gives grappler nothing but exact restructuring to do, and tf2onnx's own
    conversion does that restructuring too: grappler is skipped for it (0.1-0.2 s of a ResNet-50's export;
    the same ONNX nodes, bit-identical outputs: docs/performance.md, tests).
    """
    nodes = {n.name: n for n in graph_def.node}
    constants = {n.name for n in graph_def.node if n.op == "Const"}

    def producer(name: str):
        return nodes.get(name.split(":")[0])

    def has_constant_operand(node) -> bool:
        return any(i.split(":")[0] in constants for i in node.input)

    for node in graph_def.node:
        if node.op not in _PLAIN_OPS or any(i.startswith("^") for i in node.input):
            return True
        if node.op in ("Placeholder", "Const"):
            continue
        if node.input and all(i.split(":")[0] in constants for i in node.input):
            return True
        if node.op in _ASSOCIATIVE and has_constant_operand(node):
            for i in node.input:
                before = producer(i)
                if before is not None and before.op in _ASSOCIATIVE and has_constant_operand(before):
                    return True
    return False


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
