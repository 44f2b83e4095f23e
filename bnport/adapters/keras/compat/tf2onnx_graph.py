"""Faster equivalents of tf2onnx's graph walks, each built from the method it replaces (tf2onnx 1.17).

tf2onnx walks its whole graph again and again while it converts (after each of its 27 rewriters, each sort, once
per graph output), and several walks are quadratic in the graph's size; a tapped model, with an output per layer
and an input per weight, makes them the larger part of its export. Each function here takes tf2onnx's original
and returns a replacement giving the same result (tested against the original on real conversions), which
:func:`replacements` lists and bnport's fast conversion installs for bnport's conversions only.
"""

from __future__ import annotations

from collections.abc import Callable

from bnport.adapters.swaps import Replacement


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
        ordered = [None] * count  # filled from the end: the first node finished is the last one
        unvisited = dict.fromkeys(range(count))
        place = [0] * count
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
                    ordered[last] = ops[top]
                    last -= 1
        self.reset_nodes(ordered)

    return topological_sort


def replacements() -> tuple[Replacement, ...]:
    """What bnport's fast conversion (:mod:`~bnport.adapters.keras.compat.tf2onnx`) replaces of tf2onnx, and with
    what."""
    from tf2onnx import tfonnx
    from tf2onnx.graph import Graph
    from tf2onnx.graph_matcher import GraphMatcher

    return (Replacement(Graph, "extract_sub_graph_nodes", _extract_sub_graph_nodes_once),
            Replacement(GraphMatcher, "match_ops", _match_ops_by_root_type),
            Replacement(Graph, "replace_all_inputs", _replace_all_inputs_indexed),
            Replacement(Graph, "reset_nodes", _reset_nodes_in_one_pass),
            Replacement(Graph, "topological_sort", _topological_sort_linear),
            Replacement(tfonnx, "resolve_functions", _resolve_functions_if_any))

