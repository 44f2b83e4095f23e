"""tf2onnx, as bnport calls it: its public conversion, and the faster equivalent bnport runs on the tested version.

The public path is ``tf2onnx.convert.from_function``. On the tf2onnx versions in :data:`TESTED`, with every part
:func:`probe` checks present, bnport runs the same steps itself from tf2onnx's public pieces (load the function's
graph, ``tfonnx.process_tf_graph``, ``optimizer.optimize_graph`` with the optimizer set passed as an argument,
``make_model``) with these differences, each giving the same graph faster (pinned by tests over the fixtures):

* No graph optimizers (an empty set, through ``optimize_graph``'s own ``optimizers`` argument): they only tidy
  transposes, which ONNX Runtime's optimizer removes anyway (same outputs, same onnxruntime time).
* No freezing of a function that captures no variable and calls no other function
  (:func:`_graph_def_without_freezing`): freezing rebuilds the whole graph to inline variables bnport feeds as
  inputs anyway.
* Four ``tf2onnx.graph.Graph`` methods, ``GraphMatcher.match_ops`` and ``tfonnx.resolve_functions`` replaced for
  the conversion (:func:`replacements`), through :class:`bnport.adapters.swaps.Swap` (the export lock held, the
  calling thread only, restored on every exit).

Keras's own ``patch_tf2onnx`` (numpy 2 names) is not called: tf2onnx 1.17 no longer uses the names it patches, and
its patch is permanent and process-wide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx

from bnport.adapters.swaps import EXPORT_LOCK, Replacement, Swap

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
    ops tf2onnx cannot convert go through :data:`CUSTOM_OPS`.

    Runs under :data:`~bnport.adapters.swaps.EXPORT_LOCK` whichever path it takes.
    """
    import tensorflow as tf

    with EXPORT_LOCK:
        concrete = function.get_concrete_function(*signature)
        captured.update({internal.name: external.numpy() for external, internal in concrete.graph.captures
                         if external.dtype != tf.resource})
        if not FAST or probe() is not None:
            import tf2onnx

            model, _ = tf2onnx.convert.from_function(function, input_signature=signature, opset=opset,
                                                     custom_op_handlers=dict(CUSTOM_OPS))
            return model
        with Swap("tf2onnx", replacements()) as swap:
            model = _convert_fast(concrete, opset)
        swap.check()
        return model


def _convert_fast(concrete, opset: int) -> onnx.ModelProto:
    """``tf2onnx.convert.from_function``'s steps, from tf2onnx's public pieces, without optimizers or freezing."""
    import tensorflow as tf
    from tf2onnx import optimizer, tf_loader, tfonnx
    from tf2onnx.convert import tensor_names_from_structed

    inputs = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    renames = tensor_names_from_structed(concrete, inputs, outputs)
    with tf.device("/cpu:0"):
        graph_def = _graph_def_without_freezing(concrete, inputs, outputs)
        if graph_def is None:
            graph_def = tf_loader.from_function(concrete, inputs, outputs)
        with tf.Graph().as_default() as tf_graph:
            tf.import_graph_def(graph_def, name="")
            g = tfonnx.process_tf_graph(tf_graph, continue_on_error=True, opset=opset,
                                        custom_op_handlers=dict(CUSTOM_OPS), input_names=inputs,
                                        output_names=outputs, tensors_to_rename=renames)
            g = optimizer.optimize_graph(g, catch_errors=True, optimizers={})
            return g.make_model(f"converted from {concrete.name}")


def _graph_def_without_freezing(concrete, inputs: list[str], outputs: list[str]):
    """The graph tf2onnx's loader would return, when freezing has nothing to do; else None.

    Freezing (``convert_variables_to_constants_v2``) turns captured variables into constants and inlines called
    functions, rebuilding the whole graph to do so (docs/performance.md). bnport's exports feed the
    weights as inputs: when the function captures no variable and calls no other function, its graph already is
    what freezing returns, and the rest of tf2onnx's loading runs on it, but for two steps: the loader imports the
    whole graph into a session only to drop the inputs of resource dtype, and ``inputs`` holds none (the caller
    leaves them out), so grappler is given the graph directly, under an empty default graph as in the loader; and
    grappler is skipped where it could not change a value (:func:`grappler_could_change_a_value`). Plain tensors
    it captured stay placeholders either way.
    """
    import tensorflow as tf
    from tf2onnx import tf_loader

    if any(external.dtype == tf.resource for external, _ in concrete.graph.captures):
        return None
    graph_def = concrete.graph.as_graph_def(add_shapes=True)
    if graph_def.library.function:
        return None
    graph_def = tf_loader.fix_freezing_errors_part2(graph_def)
    if not grappler_could_change_a_value(graph_def):
        return graph_def
    with tf.Graph().as_default():  # what the loader's graph holds for grappler: no collections
        return tf_loader.tf_optimize(inputs, outputs, graph_def)


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


def _reset_nodes_in_one_pass(reset: Callable) -> Callable:
    """``Graph.reset_nodes``: the same indexes, built in one pass over ``ops`` that reads each node's name once.

    tf2onnx resets the graph after each of its 27 rewriters and each sort (40 times for a tapped DenseNet-121 of
    3,100 nodes). The original reads each node's name (a protobuf field) once per output and input, registers each
    input through a method call, and checks every graph input against the list ``ops``: inputs times nodes
    comparisons, and bnport's graphs have an input per weight. Here the dtypes, shapes, subgraphs, name, producer and
    consumer indexes are built exactly as the original builds them, and the graph's inputs are checked against a set.
    A graph inside another (control flow, which also registers inputs with its parent) and a reset that would fail
    its checks run the original, which then raises its own error.
    """

    def reset_nodes(self, ops):
        if self.parent_graph is not None:
            return reset(self, ops)
        names = [op.name for op in ops]
        present = {id(op) for op in ops}
        dtypes, shapes, subgraphs = self._dtypes, self._output_shapes, self.contained_graphs
        kept_dtypes, kept_shapes, kept_subgraphs = {}, {}, {}
        producers: dict = {}
        consumers: dict = {}
        for op, name in zip(ops, names, strict=True):
            for output in op.output:
                if output in dtypes:
                    kept_dtypes[output] = dtypes[output]
                if output in shapes:
                    kept_shapes[output] = shapes[output]
            if name in subgraphs:
                kept_subgraphs[name] = subgraphs[name]
        for op, name in zip(ops, names, strict=True):
            for output in op.output:
                producers[output] = name
            for input_name in op.input:
                readers = consumers.get(input_name)
                if readers is None:
                    consumers[input_name] = readers = set()
                readers.add(name)
        if any(id(n) not in present for n in self.inputs) or any(o not in producers for o in self.outputs):
            return reset(self, ops)
        self._nodes = ops
        self.contained_graphs = kept_subgraphs
        self._nodes_by_name = dict(zip(names, ops, strict=True))
        self._output_to_node_name = producers
        self._output_to_consumers = consumers
        self._dtypes = kept_dtypes
        self._output_shapes = kept_shapes

    return reset_nodes


def _resolve_functions_if_any(resolve: Callable) -> Callable:
    """tf2onnx's ``resolve_functions``, answered at once for a graph that defines no function: the original walks
    the whole graph (``tflist_to_onnx``, a second time besides the conversion's own walk) to find the shapes each
    called function is given, then converts each function; with none the walk's result goes unused and the answer
    is the empty list."""

    def resolve_functions(tf_graph):
        functions = getattr(tf_graph, "_functions", None)
        if isinstance(functions, dict) and not functions:
            return []
        return resolve(tf_graph)

    return resolve_functions


def _replace_all_inputs_indexed(replace: Callable) -> Callable:
    """``Graph.replace_all_inputs``, through the consumer index when it is handed the whole graph.

    Given ``ops=graph.get_nodes()`` (as ``Graph.__init__`` does once per graph output, to put an Identity behind it)
    it checks every node; the nodes it can change are those reading ``old_input``, which the graph's
    ``_output_to_consumers`` index lists (tf2onnx's own path when ``ops`` is None). Graphs with subgraphs (control
    flow) keep the original behaviour.
    """

    def replace_all_inputs(self, old_input, new_input, ops=None):
        if ops is not None and ops is self._nodes and not self.contained_graphs and not self._input_to_graph:
            ops = None
        return replace(self, old_input, new_input, ops=ops)

    return replace_all_inputs


def _extract_sub_graph_nodes_once(extract: Callable) -> Callable:
    """``Graph.extract_sub_graph_nodes`` in one walk from all outputs, instead of one walk per output whose sets are
    then united: the same set of nodes, linear instead of quadratic for a tapped model with a hundred outputs."""

    def extract_sub_graph_nodes(self, outputs_name, input_checker=None, remove_unused_inputs=True):
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

    return extract_sub_graph_nodes


def _match_ops_by_root_type(original: Callable) -> Callable:
    """``GraphMatcher.match_ops``, matching the whole pattern only at ops of its root's type.

    Each of tf2onnx's rewriters matches its patterns against every op of the graph (about 107,000 ``match_op`` calls
    for a tapped DenseNet-121), and nearly every call ends at the root: the op's type is not the pattern's. Here the
    root's type is tested first and ``match_op`` runs where it passes, op by op and lazily as the original (a
    rewriter may change the graph between two results). A pattern whose root takes any type keeps the original.
    The pattern is read before the first op is matched, so a change of it in tf2onnx fails the swap's guard.
    """

    def match_ops(self, ops):
        root = self._pattern
        if root.op_type is None or root.op_type == "*":
            return original(self, ops)
        return _matches(self, ops, frozenset(root.op_type_set))

    return match_ops


def _matches(matcher, ops, types: frozenset[str]):
    for op in ops:
        if op.type in types:  # what the original's match_op tests first
            result = matcher.match_op(op)
            if result:
                yield result


def _topological_sort_linear(sort: Callable) -> Callable:
    """``Graph.topological_sort``: the same order, found in time linear in the graph's edges.

    tf2onnx sorts by name, then labels the nodes by a depth-first walk; two of its steps are quadratic: each new walk
    starts from the first unvisited node, found by listing every unvisited node (a tapped DenseNet-121 has a root per
    weight input: 606 lists of up to 3,100 nodes), and each return to a node scans its children from the first again.
    Here the first unvisited node is the dictionary's first key, and each node keeps its place among its children
    (those before it have been visited, and a node is never unvisited again); producers are looked up in the graph's
    index as ``get_node_by_output`` does, and implicit inputs asked for only when the graph has a subgraph. The
    caller's list is sorted by name in place as by the original, the same errors are raised, and the graph is reset
    through ``reset_nodes``. A graph inside another (control flow, whose inputs may come from outside it) runs the
    original.
    """
    from tf2onnx import utils

    def topological_sort(self, ops):
        if self.parent_graph is not None:
            return sort(self, ops)
        ops.sort(key=lambda op: op.name)
        count = len(ops)
        index = {op.name: i for i, op in enumerate(ops)}
        children: list[list[int]] = [[] for _ in range(count)]
        producers, nodes = self._output_to_node_name, self._nodes_by_name  # get_node_by_output's, without a parent
        bodies = bool(self.contained_graphs)  # without any, every node's implicit inputs are none
        for i, op in enumerate(ops):
            inputs = set(op.input)
            if bodies:
                inputs |= set(op.get_implicit_inputs())
            inputs.discard("")
            for name in sorted(inputs):
                producer = producers.get(name)
                producer = nodes.get(producer) if producer else None
                utils.make_sure(producer is not None, "Cannot find node with output %r in graph %r", name,
                                self.graph_name)
                children[index[producer.name]].append(i)
        label = [-1] * count
        unvisited = dict.fromkeys(range(count))
        place = [0] * count
        on_stack: set[int] = set()
        last = count - 1
        while unvisited:
            root = next(iter(unvisited))
            stack, on_stack = [root], {root}
            while stack:
                top = stack[-1]
                kids, at = children[top], place[top]
                while at < len(kids) and kids[at] not in unvisited:
                    at += 1
                place[top] = at
                if at < len(kids):
                    child = kids[at]
                    if child in on_stack:
                        raise ValueError(f"Graph has cycles, node.name={ops[child].name!r}.")
                    stack.append(child)
                    on_stack.add(child)
                else:
                    stack.pop()
                    on_stack.discard(top)
                    del unvisited[top]
                    label[top] = last
                    last -= 1
        ordered = [None] * count
        for i, at in enumerate(label):
            ordered[at] = ops[i]
        self.reset_nodes(ordered)

    return topological_sort


def replacements() -> tuple[Replacement, ...]:
    from tf2onnx import tfonnx
    from tf2onnx.graph import Graph
    from tf2onnx.graph_matcher import GraphMatcher

    return (Replacement(Graph, "extract_sub_graph_nodes", _extract_sub_graph_nodes_once),
            Replacement(GraphMatcher, "match_ops", _match_ops_by_root_type),
            Replacement(Graph, "replace_all_inputs", _replace_all_inputs_indexed),
            Replacement(Graph, "reset_nodes", _reset_nodes_in_one_pass),
            Replacement(Graph, "topological_sort", _topological_sort_linear),
            Replacement(tfonnx, "resolve_functions", _resolve_functions_if_any))

