"""jax2onnx, as bnport calls it: its public ``to_onnx``, with the plugins for JAX's own primitives loaded alone and
its per-equation output check answered through each value's producer.

``jax2onnx.to_onnx`` first imports every plugin module it ships, those for Flax, Equinox and its example models
included, several of which compile JAX functions as they import: about 10 s on a first conversion, of which the
plugins for ``jax.lax``, ``jax.numpy``, ``jax.nn`` and ``jax.image`` (all that Keras's JAX backend calls) take about
1 s (docs/performance.md). And after lowering each equation it checks each output against every value of the graph
built so far, quadratic in the graph's size (:func:`_connected_through_producer`), and its graph optimizers look a
producer up by first collecting every node's id (:func:`_producer_in_list`). On the jax2onnx versions in
:data:`TESTED`, with the parts :func:`probe` checks present, bnport imports the JAX subtree of plugins with
jax2onnx's own importer, answers the check from the value's producer where it has one in the graph and the lookup
from the list itself, for its conversion only (through :class:`bnport.adapters.swaps.Swap`: the export lock held,
the calling thread only, restored on every exit). Nothing else changes: jax2onnx's registry only ever gains the
plugins it would have imported itself, and a later ``to_onnx`` of the user's still imports all of them. Elsewhere
the public path runs as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from bnport.adapters.swaps import EXPORT_LOCK, Replacement, Swap

#: jax2onnx versions (major.minor) whose private parts bnport's replacements were tested on
TESTED = ("0.17",)

#: False: always take jax2onnx's public path (the fallback, tested)
FAST = True

#: the plugin subtrees Keras's JAX backend needs (its ops are jax.numpy, jax.lax, jax.nn and jax.image calls)
SUBTREES = ("jax",)


def probe() -> str | None:
    """Why bnport's replacements cannot run on the installed jax2onnx, or None when they can."""
    import importlib.metadata

    try:
        version = importlib.metadata.version("jax2onnx")  # the package has no __version__
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    if not any(version == t or version.startswith(t + ".") for t in TESTED):
        return f"jax2onnx {version} is not a tested version ({', '.join(TESTED)})"
    try:
        from jax2onnx.converter import conversion_api
        from jax2onnx.plugins import plugin_system
    except ImportError as exc:
        return f"jax2onnx {version} lacks {exc.name}"
    try:
        from jax2onnx.converter import output_binding
    except ImportError as exc:
        return f"jax2onnx {version} lacks {exc.name}"
    try:
        from jax2onnx.converter import conv_transpose_bias_folding, ir_optimizations
    except ImportError as exc:
        return f"jax2onnx {version} lacks {exc.name}"
    missing = [name for owner, name in ((plugin_system, "_import_tree"), (conversion_api, "import_all_plugins"),
                                        (output_binding, "_value_is_graph_connected"),
                                        (ir_optimizations, "_producer_node"),
                                        (conv_transpose_bias_folding, "_producer_node"))
               if not callable(getattr(owner, name, None))]
    return f"jax2onnx {version} lacks {', '.join(missing)}" if missing else None


def to_onnx(fn, inputs: Sequence, *, names: Sequence[str], opset: int) -> onnx.ModelProto:
    """``jax2onnx.to_onnx(fn, inputs, ...)`` as an in-memory model, its inputs named ``names``."""
    import jax2onnx

    def convert() -> onnx.ModelProto:
        return jax2onnx.to_onnx(fn, inputs=list(inputs), input_names=list(names), opset=opset, return_mode="proto")

    with EXPORT_LOCK:
        if not FAST or probe() is not None:
            return convert()
        with Swap("jax2onnx", replacements()) as swap:
            model = convert()
        swap.check()
        return model


def replacements() -> tuple[Replacement, ...]:
    from jax2onnx.converter import conv_transpose_bias_folding, conversion_api, ir_optimizations, output_binding

    return (Replacement(conversion_api, "import_all_plugins", _import_jax_plugins),
            Replacement(output_binding, "_value_is_graph_connected", _connected_through_producer),
            *(Replacement(module, "_producer_node", _producer_in_list)
              for module in (ir_optimizations, conv_transpose_bias_folding)))


def _connected_through_producer(original):
    """``output_binding._value_is_graph_connected``, answered at once for a value whose producing node is in the graph.

    After lowering each JAX equation jax2onnx checks, twice, that every output is the graph's: it compares the value
    with each graph input, each initializer and each output of every node built so far, by identity or name. That is
    quadratic in the graph's size: 2.8 million comparisons for a tapped ResNet-50 (docs/performance.md). A value whose
    producer belongs to the builder's graph (``node.graph is graph``, onnx_ir's own test of membership) is one of that
    node's outputs, so the answer is yes; any other value (a graph input, an initializer, one without a producer)
    gets the original's full check.
    """

    def _value_is_graph_connected(ctx, value):
        builder = getattr(ctx, "builder", None)
        graph = getattr(builder, "graph", None)
        producer = getattr(value, "producer", None)
        node = producer() if callable(producer) else None
        if node is not None and graph is not None and getattr(builder, "nodes", None) is graph \
                and node.graph is graph:
            return True
        return original(ctx, value)

    return _value_is_graph_connected


def _producer_in_list(original):
    """jax2onnx's ``_producer_node(nodes, value)`` for its graph optimizers, without a set of every node per call.

    The original first builds the set of the ids of all ``nodes`` to test whether the value's producer is among them
    (2,238 calls over 3,000 nodes for a tapped ResNet-50), then, when it is not (a graph input: 531 of those calls),
    scans every node's outputs for the value or its name, through a helper call and a list copy per output. When
    ``nodes`` is a list and the value an onnx_ir ``Value``, ``producer in nodes`` is the same first test (onnx_ir nodes
    compare by identity), done in C and stopping at the match, and the scan is the original's, in one loop: the first
    node with an output that is the value or has its (non-empty) name. Any other case (a name, another kind of
    sequence, a producer of another node class) runs the original.
    """
    import onnx_ir as ir

    def _producer_node(nodes, value_or_name):
        if type(nodes) is not list or not isinstance(value_or_name, ir.Value):
            return original(nodes, value_or_name)
        producer = value_or_name.producer()
        if producer is not None:
            if type(producer) is not ir.Node or type(producer).__eq__ is not object.__eq__:
                return original(nodes, value_or_name)
            if producer in nodes:
                return producer
        name = value_or_name.name or None
        for node in nodes:
            for out in node.outputs:
                if out is value_or_name or (name is not None and out.name == name):
                    return node
        return None

    return _producer_node


def _import_jax_plugins(original):
    def import_jax_plugins() -> None:
        from pathlib import Path

        from jax2onnx.plugins import plugin_system

        root = Path(plugin_system.__file__).parent
        for helper in sorted(root.glob("_*.py")):  # the shared helpers at the top of the tree
            if helper.name != "__init__.py":
                __import__(f"jax2onnx.plugins.{helper.stem}")
        for subtree in SUBTREES:
            plugin_system._import_tree(root / subtree, f"jax2onnx.plugins.{subtree}")

    return import_jax_plugins
