"""bnport in a process with other threads: concurrent verifies pass, and no third-party attribute stays changed.

bnport replaces a few tf2onnx and Keras attributes while it exports (bnport/adapters/swaps.py). These tests run
real exports from several threads at once and check every such attribute afterwards, and check that a thread that
is not bnport's exporter sees the libraries' own behaviour meanwhile.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest
from models import fresh, sample, torch_model

from bnport.adapters import swaps
from bnport.adapters.keras import export as keras_export
from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
from bnport.adapters.keras.compat import tf2onnx_graph
from bnport.errors import ExportError, PatchError
from bnport.workflows.porting import port
from bnport.workflows.verification import verify


def _watched() -> dict[str, object]:
    """Every third-party attribute bnport replaces (or used to replace) during an export, by name."""
    import keras  # noqa: F401 - keras.src is importable once keras is
    import tf2onnx
    import tf2onnx.optimizer
    from keras.src.backend.tensorflow import nn as tf_nn
    from tf2onnx import tf_loader, tfonnx
    from tf2onnx.graph import Graph, Node
    from tf2onnx.graph_matcher import GraphMatcher

    return {
        "Graph.extract_sub_graph_nodes": vars(Graph)["extract_sub_graph_nodes"],
        "Graph.replace_all_inputs": vars(Graph)["replace_all_inputs"],
        "Graph.reset_nodes": vars(Graph)["reset_nodes"],
        "GraphMatcher.match_ops": vars(GraphMatcher)["match_ops"],
        "Node.get_value_attr": vars(Node)["get_value_attr"],
        "tf2onnx.optimizer._get_optimizers": tf2onnx.optimizer._get_optimizers,
        "tf_loader.from_function": tf_loader.from_function,
        "tfonnx.resolve_functions": tfonnx.resolve_functions,
        "tfonnx.rewrite_constant_fold": tfonnx.rewrite_constant_fold,
        "keras tensorflow nn.conv": tf_nn.conv,
        "keras tensorflow nn.batch_normalization": tf_nn.batch_normalization,
        "numpy.object defined": "object" in vars(np),
        "warnings.filters": list(warnings.filters),
    }


def _pair(name):
    t, k = torch_model(name), fresh(name, "keras")
    port(t, k)
    return t, k


def _run_in_threads(jobs):
    results, errors = [None] * len(jobs), [None] * len(jobs)
    barrier = threading.Barrier(len(jobs))

    def work(i):
        barrier.wait()
        try:
            results[i] = jobs[i]()
        except BaseException as exc:  # collected: the assertion names it
            errors[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_two_threads_verifying_at_once_both_pass_and_leave_every_library_as_it_was():
    pairs = [_pair("resnet"), _pair("mobilenet")]  # two architectures: both run tf2onnx (no cached graph)
    keras_export._CACHE.clear()
    before = _watched()
    results, errors = _run_in_threads([lambda p=p: verify(*p) for p in pairs])
    assert errors == [None, None], errors
    assert all(r.ok for r in results), [str(r) for r in results]
    assert _watched() == before


def test_keras_own_tf2onnx_patch_is_not_applied():
    # Keras's patch_tf2onnx replaces tf2onnx functions and defines numpy.object for the rest of the process;
    # tf2onnx 1.17 does not need it. Checked in a fresh interpreter, where nothing else could have applied it.
    import subprocess
    import sys

    code = ("import numpy as np, sys; sys.path.insert(0, 'tests'); from models import fresh, torch_model;"
            "from bnport.workflows.porting import port; from bnport.workflows.verification import verify;"
            "t, k = torch_model('mlp'), fresh('mlp', 'keras'); port(t, k); assert verify(t, k).ok;"
            "from tf2onnx import tfonnx; from tf2onnx.graph import Node;"
            "print(tfonnx.rewrite_constant_fold.__module__, Node.get_value_attr.__module__, 'object' in vars(np))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-3:] == ["tf2onnx.tfonnx", "tf2onnx.graph", "False"]


class _Library:
    """Stands for a third-party class: ``value`` is what its method computes."""

    def value(self):
        return "original"


def _fast(original):
    def value(self):
        return "replaced"

    return value


def test_a_replacement_acts_only_in_the_thread_holding_the_swap():
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other_thread():
        inside.wait()
        seen["other"] = _Library().value()
        done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with swaps.Swap("library", (swaps.Replacement(_Library, "value", _fast),)):
        seen["holder"] = _Library().value()
        inside.set()
        done.wait(10)
    thread.join()
    assert seen == {"holder": "replaced", "other": "original"}
    assert vars(_Library)["value"] is _Library.__dict__["value"] and _Library().value() == "original"


def test_attributes_are_restored_when_the_export_raises_and_an_inherited_one_is_removed_again():
    class Child(_Library):
        pass

    with pytest.raises(KeyboardInterrupt), swaps.Swap("library", (swaps.Replacement(Child, "value", _fast),)):
        assert Child().value() == "replaced"
        raise KeyboardInterrupt
    assert "value" not in vars(Child) and Child().value() == "original"
    assert swaps.EXPORT_LOCK.acquire(blocking=False)  # released on the way out
    swaps.EXPORT_LOCK.release()


def test_a_failure_of_bnports_replacement_is_reported_as_that_even_when_the_library_swallows_it():
    def broken(original):
        def value(self):
            raise ZeroDivisionError("bnport bug")

        return value

    def library_call():  # a library that catches everything its helpers raise and goes on
        try:
            return _Library().value()
        except Exception:
            return "recovered"

    with swaps.Swap("library", (swaps.Replacement(_Library, "value", broken),)) as swap:
        assert library_call() == "recovered"
    with pytest.raises(PatchError, match=r"bnport's replacement of .*_Library\.value failed: ZeroDivisionError"):
        swap.check()


def test_the_originals_own_errors_pass_through_unchanged():
    class Strict(_Library):
        def value(self):
            raise KeyError("the library's own error")

    def delegate(original):
        return lambda self: original(self)

    with swaps.Swap("library", (swaps.Replacement(Strict, "value", delegate),)) as swap, \
            pytest.raises(KeyError, match="the library's own error"):
        Strict().value()
    assert swap.failures == []


def _keras_graph_outputs(k, x):
    import onnxruntime as ort

    keras_export._CACHE.clear()
    x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
    exported = keras_export.export_keras(k, (None, *x.shape[1:]))
    session = ort.InferenceSession(exported.model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, exported.feeds(x))[0], exported.model


@pytest.mark.parametrize("name", ["resnet", "mobilenet"])
def test_tf2onnx_public_path_gives_what_the_fast_path_gives(monkeypatch, name):
    _, k = _pair(name)
    x = sample(name)
    fast, fast_model = _keras_graph_outputs(k, x)
    monkeypatch.setattr(tf2onnx_compat, "FAST", False)
    before = _watched()
    public, public_model = _keras_graph_outputs(k, x)
    assert _watched() == before
    # the public path runs tf2onnx's optimizers (transposes merged or removed: exact) on the same ops; onnxruntime
    # may then order a sum differently: a few float32 roundings of the largest value
    assert np.abs(public - fast).max() <= 8 * np.finfo(np.float32).eps * np.abs(fast).max()
    ops = {n.op_type for n in fast_model.graph.node} - {"Transpose", "Identity"}
    assert ops <= {n.op_type for n in public_model.graph.node} | {"Transpose", "Identity"}


def test_an_unknown_tf2onnx_version_takes_the_public_path(monkeypatch):
    import tf2onnx

    monkeypatch.setattr(tf2onnx, "__version__", "9.9.0")
    assert "9.9.0 is not a tested version" in tf2onnx_compat.probe()
    monkeypatch.setattr(tf2onnx_compat, "_convert_fast", None)  # would raise TypeError if it were called
    _, k = _pair("mlp")
    x = sample("mlp")
    out, _ = _keras_graph_outputs(k, x)
    assert out.shape[0] == x.shape[0]


def test_a_failure_inside_bnports_tf2onnx_replacement_is_named_as_bnports(monkeypatch):
    def broken(original):
        def reset_nodes(self, ops):
            raise ZeroDivisionError("injected")

        return reset_nodes

    monkeypatch.setattr(tf2onnx_graph, "_reset_nodes_in_one_pass", broken)
    _, k = _pair("mlp")
    before = _watched()
    with pytest.raises(ExportError, match=r"bnport's replacement of tf2onnx\.graph\.Graph\.reset_nodes failed") as err:
        _keras_graph_outputs(k, sample("mlp"))
    assert "tf2onnx failed" not in str(err.value)
    assert _watched() == before
