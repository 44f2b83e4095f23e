"""Every private part of Keras 3 bnport uses, each behind a function that checks it is there.

Keras 3 has no public way to walk a functional model's graph node by node, run it while recording chosen layers'
outputs, or save weights from values that are not in the variables; bnport uses Keras's own internals for these,
all of them here, and in :mod:`~bnport.adapters.keras.compat.keras_ops` the backend functions it replaces while
tracing an export. Where a public path exists, the function falls back to it when the private part is missing
(:func:`flatten_layers`, :func:`has_graph_runner` for the taps, :func:`weights_store` for saving,
:func:`skipsets_cached`, :func:`takes_training`, and each of ``keras_ops``' replacements); where none exists (the node
lists), a missing part is a :class:`~bnport.errors.UnsupportedLayerError` naming it and the Keras version.
:func:`probe` lists what the installed Keras lacks, of both modules.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
from collections.abc import Iterator

import keras

from bnport.adapters.keras.compat import keras_ops
from bnport.errors import UnsupportedLayerError

#: the private attributes of Keras objects bnport reads, and what for
PRIVATE = {
    "Operation._inbound_nodes": "the graph's wiring (no public equivalent)",
    "Operation._outbound_nodes": "taking off the nodes a composite layer's recording added",
    "KerasTensor._keras_history": "which layer call made a tensor",
    "Function._nodes_by_depth": "the graph's nodes (taps, composite layers)",
    "Function._run_through_graph": "running a model while recording layer outputs (public fallback: layer.output)",
    "Layer._flatten_layers": "every layer inside a layer (public fallback: .layers and attributes)",
    "saving_lib._save_state / H5IOStore": "saving given values without copies (public fallback: save_weights)",
    "backend.tensorflow.nn.conv": "tracing grouped convolutions without XLA (fallback: Keras's own conv)",
    "backend.tensorflow.nn.batch_normalization": "tracing BatchNorm over the last axis without reshapes (fallback: "
                                                 "Keras's own)",
    "backend.torch.nn._maybe_convert_to_channels_last": "exporting 3-D convolutions on the torch backend",
    "backend.torch.nn.batch_normalization": "exporting BatchNorm over the last axis without reshapes on the torch "
                                            "backend (fallback: Keras's own)",
    "utils.module_utils.tensorflow._available": "serializing a model off TensorFlow without importing it",
    "Variable._shape": "variable shapes without building a TensorFlow TensorShape (public fallback: .shape)",
}


def probe() -> str | None:
    """What the installed Keras lacks of :data:`PRIVATE`, or None."""
    layer, x = keras.layers.Identity(), keras.Input((2,))
    y = layer(x)
    fn = keras.Function(x, y)
    checks = {"Operation._inbound_nodes": hasattr(layer, "_inbound_nodes"),
              "Operation._outbound_nodes": hasattr(layer, "_outbound_nodes"),
              "KerasTensor._keras_history": hasattr(y, "_keras_history"),
              "Function._nodes_by_depth": hasattr(fn, "_nodes_by_depth"),
              "Function._run_through_graph": callable(getattr(fn, "_run_through_graph", None)),
              "Layer._flatten_layers": callable(getattr(layer, "_flatten_layers", None)),
              "saving_lib._save_state / H5IOStore": weights_store() is not None,
              "backend.tensorflow.nn.conv": keras.backend.backend() != "tensorflow" or keras_ops._tf_nn() is not None,
              "backend.tensorflow.nn.batch_normalization":
                  keras.backend.backend() != "tensorflow" or keras_ops._tf_batchnorm_nn() is not None,
              "backend.torch.nn._maybe_convert_to_channels_last":
                  keras.backend.backend() != "torch" or keras_ops._torch_nn() is not None,
              "backend.torch.nn.batch_normalization":
                  keras.backend.backend() != "torch" or keras_ops._torch_batchnorm_nn() is not None,
              "utils.module_utils.tensorflow._available": _lazy_tf() is not None,
              "Variable._shape": type(getattr(keras.Variable(keras.ops.zeros((2, 3))), "_shape", None)) is tuple}
    missing = [name for name, present in checks.items() if not present]
    return f"Keras {keras.__version__} lacks {', '.join(missing)}" if missing else None


def _missing(what: str, obj) -> UnsupportedLayerError:
    name = getattr(obj, "name", type(obj).__name__)
    return UnsupportedLayerError(f"Keras {keras.__version__}: {type(obj).__name__} '{name}' has no {what}, which "
                                 f"bnport needs for {PRIVATE.get(what, 'its graph')}")


def variable_shape(variable) -> tuple[int, ...]:
    """``tuple(variable.shape)``. Keras keeps each variable's shape as a tuple; on TensorFlow the public ``shape``
    builds a ``tf.TensorShape`` from it at every read (2 µs; a port of a DenseNet-121 reads a thousand)."""
    shape = getattr(variable, "_shape", None)
    return shape if type(shape) is tuple else tuple(variable.shape)


def inbound_nodes(op) -> list:
    """The nodes (calls) of ``op``, in call order (Keras's own list: appending or deleting changes the layer)."""
    try:
        return op._inbound_nodes
    except AttributeError:
        raise _missing("Operation._inbound_nodes", op) from None


def outbound_nodes(op) -> list:
    """The nodes reading ``op``'s outputs (Keras's own list)."""
    try:
        return op._outbound_nodes
    except AttributeError:
        raise _missing("Operation._outbound_nodes", op) from None


def history(tensor) -> tuple:
    """(operation, node index, tensor index) of the call that made the symbolic ``tensor``."""
    try:
        return tuple(tensor._keras_history)
    except AttributeError:
        raise _missing("KerasTensor._keras_history", tensor) from None


def has_graph_runner(fn) -> bool:
    """Whether the functional graph ``fn`` can be run by :func:`run_through_graph` (else: the public taps path)."""
    return callable(getattr(fn, "_run_through_graph", None)) and hasattr(fn, "_nodes_by_depth")


def has_nodes(fn) -> bool:
    """Whether ``fn`` (a model) is a graph of nodes (functional, or a built Sequential's inner graph)."""
    return hasattr(fn, "_nodes_by_depth")


def nodes(fn) -> list:
    """Every node of the functional graph ``fn`` (any order)."""
    try:
        by_depth = fn._nodes_by_depth
    except AttributeError:
        raise _missing("Function._nodes_by_depth", fn) from None
    return [node for depth in by_depth.values() for node in depth]


def run_through_graph(fn, x, operation_fn):
    """``fn``'s graph on ``x``, each operation called through ``operation_fn(op)`` (what ``Functional.call`` does)."""
    inputs = fn._standardize_inputs(x) if hasattr(fn, "_standardize_inputs") else x
    return fn._run_through_graph(inputs, operation_fn=operation_fn)


def takes_training(op) -> bool:
    """Whether ``op`` (a graph node's operation) is to be called with ``training=``: Keras's call-context record
    (3.15 passes it to every layer, which hands it on where ``call`` wants it; 3.5 records whether ``call`` takes
    it), else whether ``call`` names it. Every layer whose ``call`` takes ``training`` gets it either way."""
    if hasattr(op, "_call_context_args") or hasattr(op, "_call_has_training_arg"):
        return "training" in getattr(op, "_call_context_args", ()) or bool(getattr(op, "_call_has_training_arg",
                                                                                    False))
    try:
        return "training" in inspect.signature(op.call).parameters
    except (TypeError, ValueError, AttributeError):
        return False


def flatten_layers(layer) -> list:
    """Every layer inside ``layer`` (not itself), at any depth, each once (the public fallback may miss a nested
    Sequential's input layer, which holds nothing)."""
    flatten = getattr(layer, "_flatten_layers", None)
    if callable(flatten):
        return list(flatten(include_self=False))
    found: dict[int, object] = {}
    stack = [layer]
    while stack:
        current = stack.pop()
        if isinstance(current, keras.Model) or hasattr(current, "layers"):  # a model: its graph's layers
            children = list(getattr(current, "layers", None) or [])
        else:  # a layer holding others as attributes, or in lists of them
            children = []
            for value in vars(current).values():
                values = value if isinstance(value, (list, tuple)) else [value]
                children += [v for v in values if isinstance(v, keras.layers.Layer)]
        for child in children:
            if child is not layer and id(child) not in found:
                found[id(child)] = child
                stack.append(child)
    return list(found.values())


# -- Keras's per-thread state ------------------------------------------------------------------------------------

def global_attribute(name: str):
    """Keras's per-thread global attribute ``name`` (None when unset)."""
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute(name)


def set_global_attribute(name: str, value) -> None:
    from keras.src.backend.common import global_state

    global_state.set_global_attribute(name, value)


# -- saving ------------------------------------------------------------------------------------------------------

def save_state(model, store) -> None:
    """Keras's saver walking ``model`` and handing each variable to ``store`` (what ``save_weights`` does)."""
    from keras.src.saving import saving_lib

    saving_lib._save_state(model, weights_store=store, assets_store=None, inner_path="", visited_saveables=set())


@functools.cache
def weights_store() -> type | None:
    """Keras's HDF5 weights store class (subclassed by :mod:`bnport.adapters.keras.files`), or None if this Keras
    lacks the parts bnport relies on (then the files module saves through Keras's public ``save_weights``)."""
    try:
        from keras.src.saving import saving_lib

        base = saving_lib.H5IOStore
    except (ImportError, AttributeError):
        return None
    needed = ("make", "close", "_create_h5_group", "__setitem__")
    if not callable(getattr(saving_lib, "_save_state", None)) or not all(hasattr(base, n) for n in needed):
        return None
    return base


def write_array(store, key: str, array) -> bool:
    """What Keras's HDF5 store does with the array it would have made from a variable (the entry's group made on
    first write, the array stored under ``key``), given the array itself; False, writing nothing, when this Keras's
    store lacks the parts (the caller then hands Keras's own ``__setitem__`` a tensor)."""
    try:
        initialized, path = store._h5_entry_initialized, store._h5_entry_path
    except AttributeError:
        return False
    if not initialized:
        store._create_h5_group(path)
    store._h5_entry_group[key] = array
    return True


def memory_of(value: object):
    """A TensorFlow-backed Keras variable's current value as a tensor sharing its memory, else None."""
    own = getattr(value, "_value", None) if isinstance(value, keras.Variable) else None
    return own.read_value() if hasattr(own, "read_value") else None


@contextlib.contextmanager
def skipsets_cached() -> Iterator[None]:
    """Let Keras's saver find the attribute skip sets it computes (a measurable part of a save:
    docs/performance.md).

    Keras 3.15.1 caches ``get_attr_skipset`` under ``saving_attr_skipset_<type>`` but looks it up under
    ``saving_attr_skiplist_<type>``, so every layer it saves builds a throwaway ``Layer()`` to list that class's
    attributes. This stores the sets under the name looked up for one save, and leaves Keras's per-thread state as
    it was. Anything unexpected (Keras renamed things) just skips the shortcut.
    """
    try:
        from keras.src.saving import saving_lib

        names = {f"saving_attr_skiplist_{t}": t for t in ("Layer", "Functional", "Sequential")}
        before = {name: global_attribute(name) for name in names}
        for name, obj_type in names.items():
            if before[name] is None:
                set_global_attribute(name, saving_lib.get_attr_skipset(obj_type))
    except Exception:  # an optimisation only: without it Keras computes the sets itself
        yield
        return
    try:
        yield
    finally:
        for name, value in before.items():
            set_global_attribute(name, value)


# -- serialization off TensorFlow ------------------------------------------------------------------------------------

_TF_CHECK_LOCK = threading.Lock()
_tf_check_depth = 0


@contextlib.contextmanager
def serializing_without_tensorflow() -> Iterator[None]:
    """Keras's serialization, on the JAX or PyTorch backend, without importing TensorFlow.

    ``serialize_keras_object`` asks ``tf.available`` for every object that is not a plain value (is it a
    ``tf.TensorShape``, a ``tf.DType``?), and that question imports TensorFlow when it is installed: about 5 s the
    first time, in a process that never runs it (a ``model.to_json()``, a ``.keras`` save). While TensorFlow is not
    imported no object can be one of its types, so the answer is known: Keras's lazy module is told it is unavailable
    for the block (its cached answer, ``_available``, set to False and put back after; nested and concurrent blocks
    share one count). Where TensorFlow is already imported, on its backend, or on a Keras without that attribute,
    nothing changes.
    """
    global _tf_check_depth
    lazy = _lazy_tf()
    if lazy is None or keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        yield
        return
    with _TF_CHECK_LOCK:
        if _tf_check_depth == 0:
            _saved_answer[0] = lazy._available
            lazy._available = False
        _tf_check_depth += 1
    try:
        yield
    finally:
        with _TF_CHECK_LOCK:
            _tf_check_depth -= 1
            if _tf_check_depth == 0:
                lazy._available = _saved_answer[0]


_saved_answer: list = [None]  # Keras's cached answer while a block runs


def _lazy_tf():
    try:
        from keras.src.utils import module_utils
    except ImportError:
        return None
    lazy = getattr(module_utils, "tensorflow", None)
    return lazy if lazy is not None and hasattr(lazy, "_available") else None
