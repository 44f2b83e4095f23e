"""verify through real exports and real onnxruntime sessions: correct ports pass, injected faults are named."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from xml.etree import ElementTree as ET

import jsonschema
import numpy as np
import pytest
from helpers import numpy, replay_tf2onnx_names
from kinds import has_3d_convolution
from models import FIXTURES, SMALL, architectures, fresh, keras_model, sample, torch_model

from bnport.core.pairing import PlanError
from bnport.errors import BnportWarning, ExportError
from bnport.reports import chart
from bnport.reports import writers as report
from bnport.testing import assert_ported
from bnport.workflows.porting import port
from bnport.workflows.verification import verify


@pytest.fixture(scope="module")
def resnet_pair():
    t, k = torch_model("resnet"), fresh("resnet", "keras")
    port(t, k)
    return t, k


@pytest.mark.backends
@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("direction", ["torch->keras", "keras->torch"])
def test_correct_ports_pass_in_both_directions(name, direction):
    if direction == "torch->keras":
        t, k = torch_model(name), fresh(name, "keras")
        port(t, k)
    else:
        k, t = keras_model(name), fresh(name, "torch")
        port(k, t)
    if os.environ.get("KERAS_BACKEND") == "jax" and has_3d_convolution(k):  # jax2onnx 0.17 has no 3-D convolution
        with pytest.raises(ExportError, match="1-D and 2-D convolutions only"):
            verify(t, k)
        return
    r = verify(t, k)
    assert r.ok, str(r)
    assert len(r.rows) == len(r.rows[0:]) > 0 and r.first_divergence is None and r.not_compared == []
    assert all(row.comparison.max_abs <= row.tolerance for row in r.rows + r.final)


@pytest.mark.backends
def test_keras_applications_resnet50_verifies():
    k, t = keras_model("resnet50", seed=2), fresh("resnet50", "torch")
    port(k, t)
    r = verify(t, k, per_layer=True)
    assert r.ok, str(r)
    assert len(r.rows) == 107 and sum(row.kind == "batchnorm" for row in r.rows) == 53


def _first(r):
    from bnport.core.findings import CODES

    assert not r.ok
    assert all(f.code in CODES for f in r.findings)  # every code is a documented, stable one
    return r.first_divergence.torch_name, r.first_divergence.keras_name, [f.code for f in r.findings]


@pytest.mark.backends
def test_changed_epsilon_is_named(resnet_pair):
    t, k = resnet_pair
    layer = k.get_layer("stage2_1_bn")
    layer.epsilon = 1e-2
    try:
        assert _first(verify(t, k)) == ("layer2.bn1", "stage2_1_bn", ["epsilon"])
    finally:
        layer.epsilon = 1e-5


@pytest.mark.backends
def test_batchnorm_left_in_training_mode_is_a_warning_not_a_drift(resnet_pair):
    t, k = resnet_pair
    t.layer1.bn2.train()
    try:
        with pytest.warns(BnportWarning, match=r"training mode \(1 module whose output depends on it: layer1.bn2\)"):
            r = verify(t, k)
        # verify compares the eval-mode exports, which agree: the verdict follows the numbers, the mode is a warning
        assert r.ok and r.first_divergence is None, str(r)
        assert len(r.warnings) == 1 and "call model.eval()" in r.warnings[0]
        assert "WARNING: the PyTorch model is in training mode" in str(r) and r.as_dict()["warnings"] == r.warnings
        assert t.layer1.bn2.training and not t.layer1.bn1.training  # verify changed no flag
    finally:
        t.layer1.bn2.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error", BnportWarning)  # an eval-mode model gets none
        assert verify(t, k).warnings == []


@pytest.mark.backends
def test_conv_kernel_with_h_and_w_swapped_is_named(resnet_pair):
    t, k = resnet_pair
    kernel = k.get_layer("stage1_2_conv").kernel
    good = np.array(kernel.numpy())
    kernel.assign(np.swapaxes(good, 0, 1))
    try:
        assert _first(verify(t, k)) == ("layer1.conv2", "stage1_2_conv", ["kernel-layout"])
    finally:
        kernel.assign(good)


@pytest.mark.backends
def test_every_faulty_layer_is_named_in_one_run(resnet_pair, tmp_path):
    """A swapped kernel early and a wrong epsilon later: both named at once, each with its own finding, the first
    divergence still the headline; the layers between them fail on their inputs and are not called faulty."""
    t, k = resnet_pair
    kernel, layer = k.get_layer("stage1_2_conv").kernel, k.get_layer("stage2_1_bn")
    good = np.array(kernel.numpy())
    kernel.assign(np.swapaxes(good, 0, 1))
    layer.epsilon = 1e-2
    try:
        r = verify(t, k)
    finally:
        kernel.assign(good)
        layer.epsilon = 1e-5
    assert _first(r) == ("layer1.conv2", "stage1_2_conv", ["kernel-layout"])
    assert [(row.keras_name, [f.code for f in row.findings]) for row in r.faults] == [
        ("stage1_2_conv", ["kernel-layout"]), ("stage2_1_bn", ["epsilon"])]
    failing = [row.keras_name for row in r.rows if not row.passed]
    assert len(failing) > 2  # the layers after the kernel fail too, on their inputs: no cause of their own
    text = str(r)
    assert "1 other faulty layer" in text and "layer2.bn1 <-> stage2_1_bn (batchnorm)\n    [epsilon]" in text
    assert r.as_dict()["faults"] == [{"torch_name": "layer1.conv2", "keras_name": "stage1_2_conv", "kind": "conv"},
                                     {"torch_name": "layer2.bn1", "keras_name": "stage2_1_bn", "kind": "batchnorm"}]
    report.write_html(r, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "<details open><summary>1 other faulty layer, each with a cause of its own</summary>" in page
    assert "<b>epsilon</b> at layer2.bn1 &harr; stage2_1_bn" in page


@pytest.mark.backends
def test_flatten_order_mistake_is_named():
    t, k = torch_model("mlp"), fresh("mlp", "keras")
    port(t, k)
    k.get_layer("fc1").kernel.assign(t[4].weight.detach().numpy().T)  # the plain transpose: wrong row order
    assert _first(verify(t, k)) == ("4", "fc1", ["flatten-order"])


@pytest.mark.backends
def test_stride2_same_padding_mismatch_is_named():
    t, k = torch_model("resnet"), architectures.keras_resnet(same_padding=True)
    with pytest.raises(PlanError, match=r"differs: layer2.conv1 <-> stage2_1_conv: \[same-padding\] the 16x16 "
                       r"input .* zero-padded \(1, 1\) x \(1, 1\) .* \(0, 1\) x \(0, 1\) \(padding='same'\)"):
        port(t, k)  # the weights fit, but the definitions pad differently: known before anything is written
    report = port(t, k, strict=False)
    assert [d.split(":")[0] for d in report.differences] == ["layer2.conv1 <-> stage2_1_conv"]
    assert _first(verify(t, k)) == ("layer2.conv1", "stage2_1_conv", ["same-padding"])


@pytest.mark.backends
def test_verify_leaves_models_unchanged(resnet_pair):
    t, k = resnet_pair
    before_t = {n: v.clone() for n, v in t.state_dict().items()}
    before_k = [np.array(v.numpy()) for v in k.weights]
    verify(t, k)
    assert all(np.array_equal(before_t[n].numpy(), v.numpy()) for n, v in t.state_dict().items())
    assert all(np.array_equal(a, np.array(v.numpy())) for a, v in zip(before_k, k.weights, strict=True))
    assert not t.training


@pytest.mark.backends
def test_the_keras_weights_are_fed_as_their_values_and_views_of_them_where_the_backend_allows(resnet_pair):
    """Every weight input of the exported Keras graph is fed the variable's value exactly; on JAX and PyTorch the
    array is a view of the variable's memory (no copy of the weights per verify), and the run leaves the values
    as they were."""
    import keras

    from bnport.adapters.keras import export
    from bnport.onnxcheck import session

    _, k = resnet_pair
    x = np.zeros((1, *k.input_shape[1:]), "float32")
    exported = export.export_keras(k, x.shape)
    feeds = exported.feeds(x)
    weights = dict(zip(export.weight_names(len(exported.variables)), exported.variables, strict=True))
    fed = {n: a for n, a in feeds.items() if n in weights}
    assert fed and all(np.array_equal(a, keras.ops.convert_to_numpy(weights[n].value)) for n, a in fed.items())
    backend = keras.backend.backend()
    if backend == "torch":
        assert all(np.shares_memory(a, weights[n].value.detach().numpy()) for n, a in fed.items())
    elif backend == "jax":
        assert all(a.base is not None and not a.flags.writeable for a in fed.values())
    before = {n: np.array(a) for n, a in fed.items()}
    session.run(exported.model, feeds)
    assert all(np.array_equal(before[n], keras.ops.convert_to_numpy(weights[n].value)) for n in fed)


@pytest.mark.backends
def test_tolerance_override_and_user_inputs(resnet_pair):
    t, k = resnet_pair
    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype("float32")
    r = verify(t, k, x, atol=0.0, rtol=0.0)
    assert r.input_shape == (1, 3, 16, 16)
    assert not r.ok  # two implementations are never bit-identical everywhere
    assert all(row.tolerance == 0.0 for row in r.rows)
    k.get_layer("stage2_1_bn").epsilon = 1e-2
    try:
        assert verify(t, k, x, atol=10.0).ok  # a loose tolerance hides the fault: the default does not
    finally:
        k.get_layer("stage2_1_bn").epsilon = 1e-5


@pytest.mark.backends
def test_final_outputs_only(resnet_pair):
    r = verify(*resnet_pair, per_layer=False)
    assert r.ok and r.rows == [] and len(r.final) == 1


def epsilon_drift(resnet_pair):
    """The verify report of the ResNet pair with stage2_1_bn's epsilon changed (put back afterwards)."""
    t, k = resnet_pair
    k.get_layer("stage2_1_bn").epsilon = 1e-2
    try:
        return verify(t, k)
    finally:
        k.get_layer("stage2_1_bn").epsilon = 1e-5


@pytest.mark.backends
def test_reports_json_junit_html(resnet_pair, tmp_path):
    r = epsilon_drift(resnet_pair)
    report.write_json(r, tmp_path / "r.json")
    data = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(data, json.loads(report.SCHEMA_PATH.read_text()))
    assert data["ok"] is False and data["first_divergence"]["torch_name"] == "layer2.bn1"
    bad = dict(data, ok="no")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(report.SCHEMA_PATH.read_text()))

    report.write_junit(r, tmp_path / "r.xml")
    suite = ET.parse(tmp_path / "r.xml").getroot()
    cases = suite.findall("testcase")
    assert suite.tag == "testsuite" and len(cases) == int(suite.get("tests")) == len(r.rows) + len(r.final)
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed[0] == "layer2.bn1 <-> stage2_1_bn" and int(suite.get("failures")) == len(failed)
    assert "[epsilon]" in cases[[c.get("name") for c in cases].index(failed[0])].find("failure").text
    assert set(r.seconds) == {"export_torch", "export_keras", "onnxruntime", "total"}
    assert float(suite.get("time")) == pytest.approx(r.seconds["total"], abs=1e-3)  # wall time: stages overlap
    assert r.seconds["total"] >= max(r.seconds["export_torch"], r.seconds["export_keras"])

    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["keras backend"] == os.environ["KERAS_BACKEND"]
    assert props["torch model"].startswith("architectures.torch_resnet")
    assert props["version torch"] and props["input shapes"] == "[2, 3, 16, 16] (channels-first)"

    report.write_html(r, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "DRIFT: first divergence at layer2.bn1" in page
    assert f"<th>keras backend</th><td>{os.environ['KERAS_BACKEND']}</td>" in page
    check_chart(page, r)


def check_chart(page: str, r) -> None:
    """The SVG chart: one labelled bar per compared layer, its length the log of error/tolerance on the drawn axis,
    its colour the verdict, every element inside the picture."""
    svg = ET.fromstring(re.search(r"<svg.*?</svg>", page, re.S).group(0))
    ns = {"s": "http://www.w3.org/2000/svg"}
    width, height = float(svg.get("width")), float(svg.get("height"))
    bars = svg.findall("s:rect", ns)
    compared = r.rows + r.final
    assert len(bars) == len(compared)
    labels = [t.text for t in svg.findall("s:text", ns)]
    low, high = chart.decades([chart.Bar("", row.comparison.max_abs / row.tolerance, True) for row in compared])
    assert labels.count("1e0") == 1 and f"1e{low}" in labels and f"1e{high}" in labels  # a labelled log axis
    x0 = float(bars[0].get("x"))
    for bar, row in zip(bars, compared, strict=True):
        ratio = row.comparison.max_abs / row.tolerance
        assert bar.get("fill") == (chart.GREEN if row.passed else chart.RED)
        assert row.torch_name in labels or f"{row.torch_name} / {row.keras_name}" in labels
        if ratio > 0:  # the bar's length is its decade position on the axis (within a pixel)
            expected = chart.PLOT * (min(max(np.log10(ratio), low), high) - low) / (high - low)
            assert abs(float(bar.get("width")) - expected) < 1.0, (row.torch_name, ratio)
        assert float(bar.get("x")) == x0 and x0 + float(bar.get("width")) <= width
        assert float(bar.get("y")) + float(bar.get("height")) <= height
    longest = max(len(t) for t in labels)
    assert x0 >= chart.CHAR * longest  # room for the longest label: nothing clipped at the left


@pytest.mark.backends
def test_assert_ported(resnet_pair):
    t, k = resnet_pair
    assert assert_ported(t, k).ok
    k.get_layer("stage2_1_bn").epsilon = 1e-2
    try:
        with pytest.raises(AssertionError) as info:
            assert_ported(t, k)
    finally:
        k.get_layer("stage2_1_bn").epsilon = 1e-5
    text = str(info.value)
    assert "first divergence at layer2.bn1 <-> stage2_1_bn (batchnorm)" in text
    assert "[epsilon]" in text and "layer1.conv1" in text and "max abs" in text


def cli(*args):
    return subprocess.run([sys.executable, "-m", "bnport", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.backends
def test_cli_verify_exit_codes(tmp_path):
    arch = FIXTURES / "architectures.py"
    good = tmp_path / "resnet.keras"
    conv = cli("convert", str(FIXTURES / "resnet.pt"), str(good), "--torch-model", f"{arch}:torch_resnet",
               "--keras-model", f"{arch}:keras_resnet")
    assert conv.returncode == 0, conv.stderr
    base = ["verify", "--torch-model", f"{arch}:torch_resnet", "--torch-weights", str(FIXTURES / "resnet.pt")]
    ok = cli(*base, "--keras-model", str(good), "--json", str(tmp_path / "r.json"), "--junit",
             str(tmp_path / "r.xml"), "--html", str(tmp_path / "r.html"))
    assert ok.returncode == 0, ok.stderr + ok.stdout
    assert "ok: 13 layers and 1 output within tolerance" in ok.stdout
    assert all((tmp_path / f).is_file() for f in ("r.json", "r.xml", "r.html"))
    drift = cli(*base, "--keras-model", f"{arch}:keras_resnet", "--keras-weights", str(FIXTURES / "resnet.weights.h5"))
    assert drift.returncode == 1 and "DRIFT: first divergence at conv1 <-> stem_conv" in drift.stdout
    bad = cli(*base, "--keras-model", str(tmp_path / "missing.keras"))
    assert bad.returncode == 2 and "Keras file not found" in bad.stderr and "Traceback" not in bad.stderr
    np.savez(tmp_path / "x.npz", np.ones((1, 3, 16, 16), np.float32))
    with_inputs = cli(*base, "--keras-model", str(good), "--inputs", str(tmp_path / "x.npz"), "--no-per-layer")
    assert with_inputs.returncode == 0 and "output 0" in with_inputs.stdout


@pytest.mark.backends
def test_keras_graph_is_cached_per_architecture_and_fed_current_weights():
    from bnport.adapters.keras import export as keras_export
    from bnport.onnxcheck import session as runtime

    k = fresh("mlp", "keras")
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 3)).astype("float32")
    first = keras_export.export_keras(k, x.shape)
    kernel = k.get_layer("fc2").kernel
    kernel.assign(np.asarray(kernel.numpy()) * 3.0)  # new weights, same architecture
    second = keras_export.export_keras(k, x.shape)
    assert second.model is first.model  # no second export
    (y,) = runtime.run(second.model, second.feeds(x))
    assert np.allclose(y, numpy(k(x, training=False)), rtol=0, atol=1e-5)
    k.get_layer("bn").epsilon = 0.5  # a setting is part of the architecture: exported again
    assert keras_export.export_keras(k, x.shape).model is not first.model


@pytest.mark.parametrize("name", SMALL)
def test_keras_export_skips_freezing_and_computes_the_same(name, monkeypatch):
    """The export passes a function that captures no variable to tf2onnx unfrozen; tf2onnx's own loader
    (which freezes) must give a graph that computes exactly the same, op for op."""
    from tf2onnx import tf_loader

    from bnport.adapters.keras import export as keras_export
    from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
    from bnport.onnxcheck import session as runtime

    monkeypatch.setattr(tf2onnx_compat, "IN_A_GRAPH", False)  # freezing is a step of the function path
    k = keras_model(name)
    x = np.ascontiguousarray(np.moveaxis(sample(name), 1, -1))
    frozen = []
    load = tf_loader.from_function
    monkeypatch.setattr(tf_loader, "from_function", lambda *a, **kw: frozen.append(1) or load(*a, **kw))
    monkeypatch.setattr(keras_export, "_CACHE", keras_export.OrderedDict())
    replay = replay_tf2onnx_names()
    fast = keras_export.export_keras(k, x.shape)
    assert not frozen, "the export fell back to freezing"
    monkeypatch.setattr(tf2onnx_compat, "_loaded_without_freezing", lambda *args: None)
    keras_export._CACHE.clear()
    replay()
    slow = keras_export.export_keras(k, x.shape)
    assert frozen, "the comparison did not take tf2onnx's own path"
    assert [n.op_type for n in fast.model.graph.node] == [n.op_type for n in slow.model.graph.node]
    for a, b in zip(runtime.run(fast.model, fast.feeds(x)), runtime.run(slow.model, slow.feeds(x)), strict=True):
        assert np.array_equal(a, b)


def _tapped_export_both_ways(name: str, monkeypatch, back_to_original):
    """The Keras export of fixture or zoo model ``name`` (:func:`_zoo_or_fixture`) tapped at every weight-holding
    layer (as verify exports it) through bnport's tf2onnx path; then again after ``back_to_original()`` has put one of
    tf2onnx's own functions back (or forced one of bnport's decisions), the export cache emptied and tf2onnx's name
    counters replayed, so the two graphs compare op for op. Returns both exports, the input and the number of
    outputs."""
    import tf2onnx.tfonnx  # noqa: F401  (imported before the name counter is read: its import takes a name)

    from bnport.adapters.keras import export as keras_export
    from bnport.adapters.keras import taps as keras_taps
    from bnport.adapters.keras.graph import graph

    k, x = _zoo_or_fixture(name)
    tapped = keras_taps.tapped(k, list(graph(k).nodes))
    monkeypatch.setattr(keras_export, "_CACHE", keras_export.OrderedDict())
    replay = replay_tf2onnx_names()
    fast = keras_export.export_keras(tapped, x.shape)
    back_to_original()
    keras_export._CACHE.clear()
    replay()
    slow = keras_export.export_keras(tapped, x.shape)
    return fast, slow, x, tapped.finals + len(tapped.taps)


def _recorded(monkeypatch, owner, name: str) -> list:
    """What ``owner.<name>`` answers from now on, one entry per call (the function itself still answers)."""
    answers: list = []
    decide = getattr(owner, name)
    monkeypatch.setattr(owner, name, lambda arg: answers.append(decide(arg)) or answers[-1])
    return answers


def _assert_same_graph_and_numbers(fast, slow, x, outputs: int) -> None:
    from bnport.onnxcheck import session as runtime

    assert [n.op_type for n in fast.model.graph.node] == [n.op_type for n in slow.model.graph.node]
    assert [o.name for o in fast.model.graph.output] == [o.name for o in slow.model.graph.output]
    got, want = runtime.run(fast.model, fast.feeds(x)), runtime.run(slow.model, slow.feeds(x))
    assert len(got) == outputs and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("name", SMALL)
def test_keras_export_rewires_outputs_through_the_index_and_computes_the_same(name, monkeypatch):
    """With a tap on every weight-holding layer (as verify exports), tf2onnx puts an Identity behind each output;
    bnport has it find the readers of each output from its index instead of scanning the graph: same ops, same
    numbers as tf2onnx's own scan."""
    from bnport.adapters.keras.compat import tf2onnx_graph

    indexed = []
    patched = tf2onnx_graph._replace_all_inputs_indexed

    def counting(replace):
        fast = patched(replace)
        return lambda self, old, new, ops=None: indexed.append(ops is self._nodes) or fast(self, old, new, ops)

    monkeypatch.setattr(tf2onnx_graph, "_replace_all_inputs_indexed", counting)
    fast, slow, x, outputs = _tapped_export_both_ways(name, monkeypatch, lambda: monkeypatch.setattr(
        tf2onnx_graph, "_replace_all_inputs_indexed", lambda original: original))
    assert sum(indexed) >= outputs - 1, "the indexed path was not taken"
    _assert_same_graph_and_numbers(fast, slow, x, outputs)


@pytest.mark.parametrize("name", SMALL)
def test_keras_export_matches_rewriter_patterns_at_their_root_type_only_and_computes_the_same(name, monkeypatch):
    """tf2onnx's rewriters match each pattern against every op; bnport tests the op's type against the pattern's
    root first. The tapped export (as verify makes it) skips ops that way and gives the same ops, outputs and
    numbers as tf2onnx's own matching of every op."""
    from tf2onnx.graph_matcher import GraphMatcher

    from bnport.adapters.keras.compat import tf2onnx_graph

    calls = {"now": 0, "fast": 0}
    match_op = GraphMatcher.match_op

    def counted(self, op):
        calls["now"] += 1
        return match_op(self, op)

    def back_to_original():
        calls["fast"], calls["now"] = calls["now"], 0
        monkeypatch.setattr(tf2onnx_graph, "_match_ops_by_root_type", lambda original: original)

    monkeypatch.setattr(GraphMatcher, "match_op", counted)
    fast, slow, x, outputs = _tapped_export_both_ways(name, monkeypatch, back_to_original)
    assert 0 < calls["fast"] < calls["now"] / 2, calls
    _assert_same_graph_and_numbers(fast, slow, x, outputs)


def test_rewriter_matching_by_root_type_finds_what_matching_every_op_finds():
    """The root-type test gives the matches of the original, in its order, for patterns rooted at one type, at
    several and at any type (where the original runs), and matches lazily (a rewriter changes the graph between
    two results)."""
    from tf2onnx.graph_matcher import GraphMatcher, OpTypePattern

    from bnport.adapters.keras.compat import tf2onnx_graph

    class Op:
        def __init__(self, name, type_, inputs=()):
            self.name, self.type, self.inputs = name, type_, list(inputs)
            self.input = [i.name for i in self.inputs]

    x = Op("x", "Placeholder")
    ops = [x, Op("a", "Relu", [x]), Op("b", "Mul", [x]), Op("c", "Relu", [x]), Op("d", "AddV2", [x])]
    ops.append(Op("e", "Relu", [ops[2]]))
    fast = tf2onnx_graph._match_ops_by_root_type(GraphMatcher.match_ops)
    for pattern in (OpTypePattern("Relu"), OpTypePattern("Relu|AddV2"), OpTypePattern("*"),
                    OpTypePattern("Relu", inputs=[OpTypePattern("Mul")])):
        want = [m.get_op(pattern).name for m in GraphMatcher(pattern).match_ops(ops)]
        got = [m.get_op(pattern).name for m in fast(GraphMatcher(pattern), ops)]
        assert got == want and want, (pattern.op_type, got, want)
    relu = OpTypePattern("Relu")
    for matching in (GraphMatcher.match_ops, fast):
        for op, type_ in zip(ops, ["Placeholder", "Relu", "Mul", "Relu", "AddV2"], strict=False):
            op.type = type_
        lazy = matching(GraphMatcher(relu), ops)
        assert next(lazy).get_op(relu).name == "a"
        ops[3].type = "Sigmoid"  # changed after the first result: no longer a match
        assert [m.get_op(relu).name for m in lazy] == ["e"]


@pytest.mark.parametrize("name", SMALL)
def test_keras_export_traced_without_autograph_computes_the_same(name, monkeypatch):
    """Tracing without autograph (as Keras's own export does) gives the graph tracing with it gives."""
    from bnport.adapters.keras import export as keras_export
    from bnport.adapters.keras import taps as keras_taps
    from bnport.adapters.keras.graph import graph
    from bnport.onnxcheck import session as runtime

    k = keras_model(name)
    tapped = keras_taps.tapped(k, list(graph(k).nodes))
    outputs = tapped.finals + len(tapped.taps)
    x = np.ascontiguousarray(np.moveaxis(sample(name), 1, -1))
    from bnport.adapters.keras.exporters import tensorflow as tf_exporter

    monkeypatch.setattr(keras_export, "_CACHE", keras_export.OrderedDict())
    assert tf_exporter.AUTOGRAPH is False
    replay = replay_tf2onnx_names()
    fast = keras_export.export_keras(tapped, x.shape)
    monkeypatch.setattr(tf_exporter, "AUTOGRAPH", True)
    keras_export._CACHE.clear()
    replay()
    slow = keras_export.export_keras(tapped, x.shape)
    assert [n.op_type for n in fast.model.graph.node] == [n.op_type for n in slow.model.graph.node]
    got, want = runtime.run(fast.model, fast.feeds(x)), runtime.run(slow.model, slow.feeds(x))
    assert len(got) == outputs and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("name", SMALL)
def test_keras_export_resets_nodes_in_one_pass_to_the_indexes_tf2onnx_builds(name, monkeypatch):
    """After every reset of a real conversion (each rewriter and sort), tf2onnx's own reset_nodes, run again on the
    same nodes, builds the same indexes as bnport's; and the conversion gives the same ops and numbers."""
    from tf2onnx.graph import Graph

    from bnport.adapters.keras import export as keras_export
    from bnport.adapters.keras import taps as keras_taps
    from bnport.adapters.keras.compat import tf2onnx_graph
    from bnport.adapters.keras.graph import graph
    from bnport.onnxcheck import session as runtime

    k = keras_model(name)
    tapped = keras_taps.tapped(k, list(graph(k).nodes))
    x = np.ascontiguousarray(np.moveaxis(sample(name), 1, -1))
    original, compared = vars(Graph)["reset_nodes"], []
    one_pass = tf2onnx_graph._reset_nodes_in_one_pass

    def indexes(g):
        return (list(g._nodes), dict(g._nodes_by_name), dict(g._output_to_node_name), dict(g._output_to_consumers),
                dict(g._dtypes), dict(g._output_shapes), dict(g.contained_graphs))

    def checked(reset):
        fast = one_pass(reset)

        def reset_nodes(self, ops):
            fast(self, ops)
            mine = indexes(self)
            original(self, list(ops))
            assert indexes(self) == mine
            compared.append(len(ops))

        return reset_nodes

    monkeypatch.setattr(tf2onnx_graph, "_reset_nodes_in_one_pass", checked)
    monkeypatch.setattr(keras_export, "_CACHE", keras_export.OrderedDict())
    replay = replay_tf2onnx_names()
    fast = keras_export.export_keras(tapped, x.shape)
    assert len(compared) > 20 and max(compared) > 10, compared
    monkeypatch.setattr(tf2onnx_graph, "_reset_nodes_in_one_pass", lambda reset: reset)
    keras_export._CACHE.clear()
    replay()
    slow = keras_export.export_keras(tapped, x.shape)
    assert [n.op_type for n in fast.model.graph.node] == [n.op_type for n in slow.model.graph.node]
    got, want = runtime.run(fast.model, fast.feeds(x)), runtime.run(slow.model, slow.feeds(x))
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize("name", SMALL)
def test_keras_export_sorts_nodes_in_tf2onnxs_order(name, monkeypatch):
    """At every sort of a real tapped conversion, tf2onnx's own topological sort run on the same nodes gives the
    order bnport's linear one gives, and sorts the caller's list by name the same way; the conversion gives the same
    ops and numbers as with tf2onnx's sort."""
    from tf2onnx.graph import Graph

    from bnport.adapters.keras.compat import tf2onnx_graph

    original, compared = vars(Graph)["topological_sort"], []
    linear = tf2onnx_graph._topological_sort_linear

    def checked(sort):
        fast = linear(sort)

        def topological_sort(self, ops):
            theirs = list(ops)
            original(self, theirs)
            want = list(self._nodes)
            fast(self, ops)
            assert list(self._nodes) == want and list(ops) == theirs
            compared.append(len(ops))

        return topological_sort

    monkeypatch.setattr(tf2onnx_graph, "_topological_sort_linear", checked)
    fast, slow, x, outputs = _tapped_export_both_ways(name, monkeypatch, lambda: monkeypatch.setattr(
        tf2onnx_graph, "_topological_sort_linear", lambda sort: sort))
    assert len(compared) >= 2 and max(compared) > 10, compared
    _assert_same_graph_and_numbers(fast, slow, x, outputs)


def test_the_linear_sort_orders_a_graph_as_tf2onnx_does_and_raises_its_errors():
    """On a small graph with shared inputs, several roots and a node reading one tensor twice, both sorts give one
    order; on a cycle and on an input nobody produces both raise tf2onnx's errors."""
    from tf2onnx.graph import Graph

    from bnport.adapters.keras.compat.tf2onnx_graph import _topological_sort_linear

    class Node:
        def __init__(self, name, inputs):
            self.name, self.input, self.output = name, list(inputs), [name + ":0"]

        def get_implicit_inputs(self):
            return []

    class Stub:
        parent_graph, graph_name, contained_graphs = None, "stub", {}

        def __init__(self, nodes):
            self._nodes_by_name = {n.name: n for n in nodes}
            self._output_to_node_name = {n.output[0]: n.name for n in nodes}
            self.get_node_by_output = lambda output: self._nodes_by_name.get(self._output_to_node_name.get(output))

        def reset_nodes(self, ops):
            self.order = [n.name for n in ops]

    def sorted_by(sort, nodes):
        stub = Stub(nodes)
        sort(stub, list(nodes))
        return stub.order

    fast = _topological_sort_linear(Graph.topological_sort)
    z, a = Node("z", []), Node("a", [])
    m = Node("m", ["z:0", "a:0", ""])
    nodes = [m, Node("b", ["m:0", "m:0"]), z, Node("y", ["a:0"]), a, Node("c", ["b:0", "y:0", "z:0"])]
    want = sorted_by(Graph.topological_sort, nodes)
    assert sorted_by(fast, nodes) == want and want.index("m") < want.index("b") < want.index("c")
    p, q = Node("p", ["q:0"]), Node("q", ["p:0"])
    for sort in (Graph.topological_sort, fast):
        with pytest.raises(ValueError, match="Graph has cycles"):
            sorted_by(sort, [Node("r", []), p, q])
        with pytest.raises(ValueError, match="Cannot find node with output 'w:0'"):
            sorted_by(sort, [Node("r", ["w:0"])])


def test_the_reset_keeps_tf2onnxs_error_for_a_missing_input():
    from tf2onnx.graph import Graph

    from bnport.adapters.keras.compat.tf2onnx_graph import _reset_nodes_in_one_pass

    class Stub:
        name = "w7"

    graph = Graph.__new__(Graph)
    graph.inputs, graph.outputs, graph.parent_graph = [Stub()], [], None
    graph._dtypes, graph._output_shapes, graph.contained_graphs = {}, {}, {}
    with pytest.raises(ValueError, match="graph input 'w7' not exist"):
        _reset_nodes_in_one_pass(Graph.reset_nodes)(graph, [])  # tf2onnx's own check runs and raises
    assert [n.name for n in graph.inputs] == ["w7"]


def _concrete_function(model, shape, monkeypatch):
    """The tf.function bnport's TensorFlow export of ``model`` (tapped at every layer) converts."""
    from bnport.adapters.keras import export as keras_export
    from bnport.adapters.keras import taps as keras_taps
    from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
    from bnport.adapters.keras.graph import graph

    seen = []
    convert_fast = tf2onnx_compat._convert_fast
    with monkeypatch.context() as patch:
        patch.setattr(tf2onnx_compat, "IN_A_GRAPH", False)
        patch.setattr(tf2onnx_compat, "_convert_fast", lambda concrete, opset: seen.append(concrete)
                      or convert_fast(concrete, opset))
        patch.setattr(keras_export, "_CACHE", keras_export.OrderedDict())
        keras_export.export_keras(keras_taps.tapped(model, list(graph(model).nodes)), shape)
    return seen[0]


@pytest.mark.parametrize("name", ["resnet", "mobilenet"])
def test_the_graph_grappler_is_given_is_the_one_tf2onnxs_loader_gives_it(name, monkeypatch):
    """bnport's loading without freezing skips the loader's import of the graph into a session (it only drops
    resource inputs, and there are none): grappler returns the same graph, byte for byte."""
    import tensorflow as tf
    from tf2onnx import tf_loader

    from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat

    concrete = _concrete_function(keras_model(name), np.moveaxis(sample(name), 1, -1).shape, monkeypatch)
    inputs = [t.name for t in concrete.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in concrete.outputs if t.dtype != tf.resource]
    graph_def = tf_loader.fix_freezing_errors_part2(concrete.graph.as_graph_def(add_shapes=True))
    with tf.Graph().as_default() as tf_graph, tf_loader.tf_session(graph=tf_graph) as sess:  # the loader's steps
        tf.import_graph_def(graph_def, name="")
        loader = tf_loader.tf_optimize(tf_loader.inputs_without_resource(sess, inputs), outputs, graph_def)
    monkeypatch.setattr(tf2onnx_compat, "grappler_could_change_a_value", lambda graph_def: True)
    mine = tf2onnx_compat._loaded_without_freezing(concrete.graph, inputs, outputs)
    assert mine.SerializeToString(deterministic=True) == loader.SerializeToString(deterministic=True)


def _zoo_or_fixture(name):
    """The Keras model ``name`` (a fixture, or keras.applications' MobileNetV2 or InceptionV3) and an input for it:
    the fixture's sample, or a seeded batch of two."""
    import keras

    zoo = {"MobileNetV2": (keras.applications.MobileNetV2, 64),
           # grappler merges InceptionV3's nested concatenations; tf2onnx keeps them: the same values
           "InceptionV3": (keras.applications.InceptionV3, 75)}
    if name not in zoo:
        return keras_model(name), np.ascontiguousarray(np.moveaxis(sample(name), 1, -1))
    build, size = zoo[name]
    x = np.random.default_rng(3).standard_normal((2, size, size, 3)).astype(np.float32)
    return build(weights=None, input_shape=(size, size, 3)), x


@pytest.mark.parametrize("name", ["resnet", "mobilenet", "MobileNetV2", "InceptionV3"])
def test_where_grappler_is_skipped_the_graph_computes_bit_for_bit_what_grappler_gives(name, monkeypatch):
    from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
    from bnport.onnxcheck import session as runtime

    decided = _recorded(monkeypatch, tf2onnx_compat, "grappler_could_change_a_value")
    skipped, grappled, x, _ = _tapped_export_both_ways(name, monkeypatch, lambda: monkeypatch.setattr(
        tf2onnx_compat, "grappler_could_change_a_value", lambda graph_def: True))
    assert decided == [False], "grappler was not skipped for this graph"
    got, want = runtime.run(skipped.model, skipped.feeds(x)), runtime.run(grappled.model, grappled.feeds(x))
    assert len(got) == len(want) > 10
    assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_grappler_runs_where_it_could_change_a_value():
    """A constant subgraph (folded by TensorFlow's kernels), two constants along an arithmetic chain (reassociated),
    a division, a control edge: grappler runs. The plain layers alone: it is skipped."""
    import tensorflow as tf

    from bnport.adapters.keras.compat.tf2onnx import grappler_could_change_a_value

    def graph_def(body):
        with tf.Graph().as_default() as g:
            x = tf.compat.v1.placeholder(tf.float32, (None, 4), name="x")
            w = tf.compat.v1.placeholder(tf.float32, (4, 4), name="w")
            tf.identity(body(x, w), name="out")
        return g.as_graph_def()

    assert not grappler_could_change_a_value(graph_def(lambda x, w: tf.nn.relu(tf.matmul(x, w) * 2.0)))
    assert grappler_could_change_a_value(graph_def(lambda x, w: tf.matmul(x, w) * tf.sqrt(tf.constant(2.0))))
    assert grappler_could_change_a_value(graph_def(lambda x, w: (tf.matmul(x, w) * 2.0) * 3.0))
    assert grappler_could_change_a_value(graph_def(lambda x, w: (tf.matmul(x, w) + 1.0) - 3.0))
    assert grappler_could_change_a_value(graph_def(lambda x, w: tf.matmul(x, w) / 3.0))

    def with_control_edge(x, w):
        with tf.control_dependencies([tf.identity(w)]):
            return tf.matmul(x, w) * 2.0

    assert grappler_could_change_a_value(graph_def(with_control_edge))


@pytest.mark.parametrize("name", ["resnet", "mobilenet", "MobileNetV2", "InceptionV3"])
def test_the_traced_graph_converts_to_the_graph_its_imported_copy_converts_to(name, monkeypatch):
    """Where nothing is frozen and grappler is skipped, tf2onnx is given the traced graph itself instead of a copy
    imported from its GraphDef: the same ONNX model, byte for byte (but the traced function's name in its doc
    string), for a model tapped at every layer as verify exports it."""
    from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat

    taken = _recorded(monkeypatch, tf2onnx_compat, "_ranks_known")
    traced, imported, _, _ = _tapped_export_both_ways(name, monkeypatch, lambda: monkeypatch.setattr(
        tf2onnx_compat, "_ranks_known", lambda graph: False))
    assert taken == [True], "the traced graph was not converted"
    traced, imported = traced.model, imported.model
    traced.graph.doc_string = imported.graph.doc_string = ""  # the traced function's name
    assert len(traced.graph.node) > 50  # not a trivial graph
    assert traced.SerializeToString(deterministic=True) == imported.SerializeToString(deterministic=True)


def test_the_traced_graph_is_converted_only_where_its_import_would_change_nothing():
    """An unknown rank (tf2onnx's shape inference would act on it), something grappler could change, a captured
    variable (freezing would inline it): each takes the import. The plain graph is converted as traced."""
    import tensorflow as tf

    from bnport.adapters.keras.compat.tf2onnx import _loaded_without_freezing

    def loaded(body, shape=(None, 4)):
        concrete = tf.function(body, input_signature=[tf.TensorSpec(shape, tf.float32)]).get_concrete_function()
        names = [[t.name for t in ts if t.dtype != tf.resource] for ts in (concrete.inputs, concrete.outputs)]
        return concrete, _loaded_without_freezing(concrete.graph, *names)

    plain, graph = loaded(lambda x: tf.nn.relu(x * 2.0))
    assert graph is plain.graph
    assert isinstance(loaded(lambda x: tf.nn.relu(x * 2.0), shape=None)[1], tf.compat.v1.GraphDef)
    assert isinstance(loaded(lambda x: x / 3.0)[1], tf.compat.v1.GraphDef)
    variable = tf.Variable(tf.ones((4,)))
    assert loaded(lambda x: tf.nn.relu(x * variable))[1] is None


@pytest.mark.parametrize("name", ["resnet", "mobilenet", "conv1d", "MobileNetV2", "InceptionV3"])
def test_the_plain_graph_trace_gives_the_functions_nodes_but_its_identities_and_the_same_numbers(name, monkeypatch):
    """Traced in a plain ``tf.Graph`` instead of as a ``tf.function``, a model tapped at every layer (as verify
    exports it) gives the ONNX nodes of the function's graph, in their order, but for the ``Identity`` the function
    puts behind each output; and the same outputs bit for bit."""
    from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
    from bnport.onnxcheck import session as runtime

    trace = tf2onnx_compat._traced_in_a_graph
    taken: list = []
    monkeypatch.setattr(tf2onnx_compat, "_traced_in_a_graph", lambda *a: taken.append(trace(*a)) or taken[-1])
    plain, function, x, outputs = _tapped_export_both_ways(name, monkeypatch, lambda: monkeypatch.setattr(
        tf2onnx_compat, "IN_A_GRAPH", False))
    assert len(taken) == 1 and taken[0] is not None, "the plain-graph trace was not taken"

    def without_identities(model):
        return [n.op_type for n in model.graph.node if n.op_type != "Identity"]

    assert without_identities(plain.model) == without_identities(function.model)
    identities = [sum(n.op_type == "Identity" for n in e.model.graph.node) for e in (plain, function)]
    # the function's graph has an Identity behind each output; the plain one only behind an output repeated
    assert 0 < identities[1] - identities[0] <= outputs, identities
    got, want = runtime.run(plain.model, plain.feeds(x)), runtime.run(function.model, function.feeds(x))
    assert len(got) == outputs and all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_the_plain_graph_trace_gives_repeated_outputs_their_own_and_leaves_captures_to_the_function_path():
    """An output that is an input or an output already is given an ``Identity`` of its own, so the graph has one
    output per value returned; a function that computes with an eager tensor or a variable (which a plain graph
    cannot capture) is traced as a ``tf.function``, the tensor frozen as before."""
    import tensorflow as tf

    from bnport.adapters.keras.compat import tf2onnx as tf2onnx_compat
    from bnport.onnxcheck import session as runtime

    signature = [tf.TensorSpec((None, 3), tf.float32, name="x0")]
    x = np.array([[-1.0, 0.5, 2.0]], np.float32)

    def repeated(x):
        y = tf.nn.relu(x)
        return [x, y, y]

    assert tf2onnx_compat._traced_in_a_graph(repeated, signature) is not None
    captured: dict = {}
    model = tf2onnx_compat.convert(tf.function(repeated), signature, opset=17, captured=captured)
    assert len({o.name for o in model.graph.output}) == 3 and not captured
    got = runtime.run(model, {"x0": x})
    assert [a.tolist() for a in got] == [x.tolist(), np.maximum(x, 0).tolist(), np.maximum(x, 0).tolist()]

    scale, variable = tf.constant([2.0, 3.0, 4.0]), tf.Variable([1.0, 1.0, 1.0])
    for body in (lambda x: x * scale, lambda x: x + variable):
        assert tf2onnx_compat._traced_in_a_graph(body, signature) is None
    captured = {}
    model = tf2onnx_compat.convert(tf.function(lambda x: x * scale), signature, opset=17, captured=captured)
    assert len(captured) == 1  # the function path took it: the eager tensor became a graph input to feed
    assert np.array_equal(runtime.run(model, {"x0": x, **captured})[0], x * [2.0, 3.0, 4.0])


def test_keras_export_walks_the_tensorflow_graph_once(monkeypatch):
    """tf2onnx's resolve_functions walks the whole graph to find the functions it calls; bnport's graphs call none,
    so the conversion's own walk is the only one."""
    import tensorflow as tf
    from tf2onnx import tf_loader, tf_utils

    from bnport.adapters.keras import export as keras_export
    from bnport.adapters.keras.compat import tf2onnx_graph

    walks = []
    walk = tf_utils.tflist_to_onnx
    monkeypatch.setattr(tf_utils, "tflist_to_onnx", lambda *a, **kw: walks.append(1) or walk(*a, **kw))
    monkeypatch.setattr(tf_loader, "tflist_to_onnx", tf_utils.tflist_to_onnx)
    monkeypatch.setattr(keras_export, "_CACHE", keras_export.OrderedDict())
    keras_export.export_keras(keras_model("resnet"), np.moveaxis(sample("resnet"), 1, -1).shape)
    assert walks == [1]

    @tf.function
    def double(x):
        return 2 * x

    with tf.Graph().as_default() as with_function:
        double(tf.constant(1.0))
    resolve = tf2onnx_graph._resolve_functions_if_any(lambda g: ["the original's answer"])
    assert resolve(with_function) == ["the original's answer"]
    assert resolve(tf.Graph()) == []


class _Shift:
    """A Keras layer adding a tensor it holds (not a variable), as preprocessing layers do with given statistics."""

    @staticmethod
    def model(offset):
        import keras

        class Shift(keras.layers.Layer):
            def __init__(self, offset, **kwargs):
                super().__init__(**kwargs)
                self.offset = keras.ops.convert_to_tensor(np.asarray(offset, "float32"))

            def call(self, x):
                return x + self.offset

        x = keras.Input((4,), name="x")  # the same names each time: the same architecture, but for the tensor
        return keras.Model(x, keras.layers.Dense(2, name="dense")(Shift(offset, name="shift")(x)), name="shifted")


@pytest.mark.backends
def test_a_keras_graph_holding_tensors_that_are_not_variables_is_not_cached():
    """A layer computing with a tensor that is no variable has it frozen into the graph by every exporter, so a
    second export must not reuse a graph made with another value of it."""
    import keras

    from bnport.adapters.keras import export as keras_export
    from bnport.onnxcheck import session as runtime

    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    keras_export._CACHE.clear()
    k = _Shift.model([0.0] * 4)
    for offset in ([0.0] * 4, [3.0] * 4):  # the same config both times: only the tensor the layer holds changes
        k.get_layer("shift").offset = keras.ops.convert_to_tensor(np.asarray(offset, "float32"))
        exported = keras_export.export_keras(k, x.shape)
        (y,) = runtime.run(exported.model, exported.feeds(x))
        assert np.allclose(y, numpy(k(x, training=False)), rtol=0, atol=1e-5), offset


def _browser() -> str | None:
    import shutil

    return next((shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no Chromium on this machine (Debian package: chromium); the page's "
                                               "structure is checked without one in test_reports_json_junit_html")
def test_the_html_report_renders_in_a_headless_browser(resnet_pair, tmp_path):
    r = epsilon_drift(resnet_pair)
    page = tmp_path / "r.html"
    report.write_html(r, page)
    bare = tmp_path / "bare.html"
    bare.write_text(re.sub(r"<svg.*?</svg>", "", page.read_text(), flags=re.S))
    shots = []
    for source in (page, bare):
        shot = tmp_path / f"{source.stem}.png"
        subprocess.run([_browser(), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1280,2400", source.as_uri()], capture_output=True, timeout=120, check=True)
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1280, 2400)
        shots.append(data)
    assert len(shots[0]) > len(shots[1]) + 2000  # the chart draws something: bars, labels and the axis


def test_both_exports_run_before_onnxruntime_is_loaded():
    # a fresh process, as `bnport verify` starts: onnxruntime's module makes every C++ exception dearer, and the
    # TorchScript exporter raises one per node (docs/performance.md), so neither export may run after its import
    script = f"""
import sys
sys.path.insert(0, {str(FIXTURES)!r})
import architectures, numpy as np
import bnport
from bnport.adapters.keras import export as keras_export
from bnport.adapters.torch import export as torch_export
seen = []
for module, name in ((keras_export, "export_keras"), (torch_export, "export_torch")):
    def spy(*args, _real=getattr(module, name), _name=name, **kwargs):
        out = _real(*args, **kwargs)
        seen.append((_name, "onnxruntime" in sys.modules))
        return out
    setattr(module, name, spy)
t, k = architectures.torch_resnet().eval(), architectures.keras_resnet()
bnport.port(t, k)
assert bnport.verify(t, k, np.zeros((2, 3, 16, 16), np.float32)).ok
print(sorted(seen), "onnxruntime" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split("\n")[-2] == "[('export_keras', False), ('export_torch', False)] True"
