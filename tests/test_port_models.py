"""Whole models, both directions, on every fixture architecture: real torch modules, real Keras models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import assert_bits_equal, numpy, terminal_stderr, torch_tensors
from models import SMALL, fresh, keras_model, sample, torch_model

import bnport
from bnport.core.layout import to_channels_last
from bnport.core.pairing import PlanError
from bnport.core.tolerance import output_depth, tolerance
from bnport.workflows.porting import plan, port


def run_torch(model, x):
    import torch

    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def run_keras(model, x):
    return numpy(model(to_channels_last(x), training=False))


def assert_same_outputs(t, k, x, report):
    yt, yk = run_torch(t, x), run_keras(k, x)
    tol = tolerance(output_depth(report.plan.torch_graph), yt)
    err = float(np.max(np.abs(yt - yk)))
    assert err <= tol, f"max |torch - keras| {err:.3g} > tolerance {tol:.3g}"
    return err, tol


@pytest.mark.parametrize("name", SMALL)
def test_torch_to_keras(name):
    t, k = torch_model(name), fresh(name, "keras")
    report = port(t, k)
    assert report.direction == "PyTorch -> Keras" and not report.unmatched_src and not report.unmatched_dst
    assert_same_outputs(t, k, sample(name), report)


@pytest.mark.parametrize("name", SMALL)
def test_keras_to_torch(name):
    k, t = keras_model(name), fresh(name, "torch")
    t.train()  # as a new nn.Module starts
    report = port(k, t)
    assert report.direction == "Keras -> PyTorch"
    assert not any(m.training for m in t.modules()), "the whole destination is left in eval mode, parent included"
    assert_same_outputs(t, k, sample(name), report)


@pytest.mark.parametrize("name", SMALL)
def test_round_trip_is_bit_exact(name):
    src = torch_model(name, seed=3)
    back = fresh(name, "torch")
    port(fresh(name, "keras"), back)  # make sure it starts different
    k = fresh(name, "keras")
    port(src, k)
    port(k, back)
    a, b = torch_tensors(src), torch_tensors(back)
    for key in [k for k in a if k.endswith("num_batches_tracked")]:
        assert b.pop(key) == 0
        a.pop(key)
    assert_bits_equal(a, b)


def test_blocks_defined_in_different_orders_are_paired_by_structure():
    p = plan(fresh("resnet", "torch"), fresh("resnet", "keras"))
    pairs = {x.torch_name: x.keras_name for x in p.pairs}
    assert pairs["layer2.downsample.0"] == "stage2_0_conv" and pairs["layer2.downsample.1"] == "stage2_0_bn"
    assert pairs["layer2.conv1"] == "stage2_1_conv" and pairs["layer2.bn2"] == "stage2_2_bn"
    assert pairs["fc"] == "head" and all(x.how == "structure" for x in p.pairs)


def test_flatten_dense_rows_are_permuted():
    t, k = torch_model("mlp"), fresh("mlp", "keras")
    g = plan(t, k).keras_graph
    assert g.nodes["fc1"].flatten_from == (6, 5, 4) and g.nodes["fc2"].flatten_from is None
    port(t, k)
    plain = np.asarray(k.get_layer("fc1").kernel)
    assert not np.array_equal(plain, t[4].weight.detach().numpy().T)  # a plain transpose would be wrong


def test_mismatched_architectures_list_every_problem():
    with pytest.raises(PlanError) as info:
        port(torch_model("resnet"), fresh("mobilenet", "keras"))
    text = str(info.value)
    assert "conflict: conv1 <-> Conv1: stride (1, 1) (PyTorch) vs (2, 2) (Keras)" in text  # same shapes
    assert "unmatched PyTorch layer: layer2.downsample.0" in text and "unmatched Keras layer: Conv_1" in text
    assert text.count("unmatched") > 10


def test_extra_layer_strict_and_non_strict(keras):
    t = torch_model("mlp")
    base = fresh("mlp", "keras")
    extra = keras.Model(base.inputs, keras.layers.Dense(2, name="extra")(base.outputs[0]))
    with pytest.raises(PlanError, match="unmatched Keras layer: extra"):
        port(t, extra)
    report = port(t, extra, strict=False)
    assert report.unmatched_dst == ["extra"] and len(report.pairs) == 5


def test_shape_conflict_is_refused_with_both_shapes():
    t = fresh("mlp", "torch")
    with pytest.raises(PlanError) as info:
        port(t, fresh("mlp", "keras"), mapping={"4": "fc2"})
    assert "PyTorch 4 is dense(weight[16, 120], bias[16]) but Keras fc2 is dense(weight[3, 16], bias[3])" \
        in str(info.value)


def test_symmetric_branches_are_ambiguous_until_mapped(torch, keras):
    from torch import nn

    class Twin(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 4, 1)
            self.b = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return torch.cat([self.a(x), self.b(x)], 1)

    inp = keras.Input((5, 5, 3))
    out = keras.layers.Concatenate()([keras.layers.Conv2D(4, 1, name="left")(inp),
                                      keras.layers.Conv2D(4, 1, name="right")(inp)])
    k = keras.Model(inp, out)
    t = Twin()
    with pytest.raises(PlanError, match=r'ambiguous: PyTorch a, b and Keras left, right .*"a": "left", "b": "right"'):
        port(t, k)
    report = port(t, k, mapping={"a": "left", "b": "right"})
    assert [p.how for p in report.pairs] == ["mapping", "mapping"]
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 5)).astype("float32")
    assert np.allclose(run_torch(t, x), np.moveaxis(run_keras(k, x), -1, 1), atol=1e-6)


def test_mapping_file_with_rules(tmp_path):
    t, k = torch_model("resnet"), fresh("resnet", "keras")
    rules = {"pairs": {"conv1": "stem_conv"},
             "rules": [{"torch": r"layer(\d)\.conv(\d)", "keras": r"stage\1_\2_conv"}]}
    path = tmp_path / "map.json"
    path.write_text(json.dumps(rules))
    report = port(t, k, mapping=path)
    how = {p.torch_name: p.how for p in report.pairs}
    assert how["conv1"] == "mapping" and how["layer1.conv2"] == "rule" and how["bn1"] == "structure"
    assert_same_outputs(t, k, sample("resnet"), report)


def test_mapping_naming_unknown_layers_is_a_conflict():
    with pytest.raises(PlanError, match="the mapping names PyTorch 'nope' and Keras 'nada'"):
        port(fresh("mlp", "torch"), fresh("mlp", "keras"), mapping={"nope": "nada"})


def test_untraceable_torch_model_and_subclassed_keras_model(torch, keras):
    from torch import nn

    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else x

    with pytest.raises(bnport.UnsupportedLayerError, match=r"torch\.fx cannot trace Branchy"):
        plan(Branchy(), fresh("mlp", "keras"))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.fc = keras.layers.Dense(2)

        def call(self, x):
            return self.fc(x)

    sub = Sub()
    sub(np.zeros((1, 2), "float32"))
    with pytest.raises(bnport.UnsupportedLayerError, match="has no layer graph"):
        plan(fresh("mlp", "torch"), sub)


def test_two_models_of_one_framework_are_refused():
    with pytest.raises(bnport.UsageError, match="one PyTorch and one Keras model"):
        plan(fresh("mlp", "torch"), fresh("mlp", "torch"))


@pytest.fixture(scope="module")
def resnet50_pair():
    """keras.applications.ResNet50 (weights=None, trained-looking stats) and a fresh PyTorch twin."""
    return keras_model("resnet50", seed=5), fresh("resnet50", "torch")


def test_keras_applications_resnet50_to_torch_and_back(resnet50_pair):
    k, t = resnet50_pair
    report = port(k, t)
    assert len(report.pairs) == 107 and sum(p.kind == "batchnorm" for p in report.pairs) == 53
    pairs = {p.torch_name: p.keras_name for p in report.pairs}
    # first stage: the shortcut conv and the third conv have identical shapes (64 -> 256, 1x1)
    assert pairs["layer1.0.downsample.0"] == "conv2_block1_0_conv"
    assert pairs["layer1.0.conv3"] == "conv2_block1_3_conv"
    assert t.bn1.eps == 1.001e-5 and t.bn1.momentum == 0.01
    x = sample("resnet50", batch=1)
    err, _ = assert_same_outputs(t, k, x, report)
    assert err > 0  # two real implementations, not one model compared with itself
    back = fresh("resnet50", "keras")
    port(t, back)
    for a, b in zip(k.weights, back.weights, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b)), a.path


def test_yaml_mapping_file(tmp_path):
    path = tmp_path / "map.yaml"
    path.write_text("pairs:\n  conv1: stem_conv\nrules:\n  - torch: 'layer(\\d)\\.bn(\\d)'\n"
                    "    keras: 'stage\\1_\\2_bn'\n")
    report = port(torch_model("resnet"), fresh("resnet", "keras"), mapping=path)
    how = {p.torch_name: p.how for p in report.pairs}
    assert how["conv1"] == "mapping" and how["layer2.bn1"] == "rule"


def test_embedding_and_layernorm_both_ways(torch, keras):
    from torch import nn

    class Text(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.norm = nn.LayerNorm(8, eps=1e-6)
            self.fc = nn.Linear(8, 3)

        def forward(self, ids):
            return self.fc(self.norm(self.embed(ids)).mean(1))

    def keras_text():
        ids = keras.Input((5,), dtype="int32")
        x = keras.layers.Embedding(20, 8, name="embed")(ids)
        x = keras.layers.LayerNormalization(epsilon=1e-3, name="norm")(x)  # the definition's own epsilon
        return keras.Model(ids, keras.layers.Dense(3, name="fc")(keras.layers.GlobalAveragePooling1D()(x)))

    ids = np.random.default_rng(0).integers(0, 20, (4, 5))
    src = Text().eval()
    with torch.no_grad():
        src.norm.weight.uniform_(0.5, 1.5)
        src.norm.bias.uniform_(-0.2, 0.2)
    k = keras_text()
    port(src, k)
    assert k.get_layer("norm").epsilon == 1e-6  # carried from the source
    with torch.no_grad():
        yt = src(torch.from_numpy(ids)).numpy()
    assert np.allclose(np.asarray(k(ids)), yt, rtol=0, atol=1e-6)
    back = Text().eval()
    port(k, back)
    assert back.norm.eps == 1e-6
    assert_bits_equal(torch_tensors(src), torch_tensors(back))


def test_channels_first_keras_model(torch, keras):
    from torch import nn

    t = torch_model_like(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                                       nn.Linear(4 * 5 * 6, 2)))
    inp = keras.Input((3, 5, 6))
    x = keras.layers.Conv2D(4, 3, padding="same", data_format="channels_first", name="conv")(inp)
    x = keras.layers.BatchNormalization(axis=1, epsilon=1e-5, name="bn")(x)
    x = keras.layers.Flatten(data_format="channels_last")(keras.layers.ReLU()(x))  # (C, H, W) order, as PyTorch
    k = keras.Model(inp, keras.layers.Dense(2, name="fc")(x))
    report = port(t, k)
    assert report.plan.keras_graph.nodes["fc"].flatten_from is None  # no rows move
    # TensorFlow cannot run a channels-first Conv2D on the CPU; ONNX Runtime runs the exported graph
    from bnport.workflows.verification import verify

    result = verify(t, k)
    assert result.ok, str(result)
    assert result.input_shape == (2, 3, 5, 6) and len(result.rows) == 3


def torch_model_like(model):
    """Non-default BN statistics and weights for an ad-hoc model."""
    import torch

    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                value.copy_(torch.rand(value.shape, generator=gen) + (0.5 if "running_var" in name else -0.5))
    return model.eval()


def test_progress_bar_only_on_a_terminal(monkeypatch, capsys):
    import io

    from bnport.workflows import progress

    term = terminal_stderr(monkeypatch)
    assert list(progress.bar(list(range(25)), True)) == list(range(25))
    assert "porting [##############################] 25/25" in term.getvalue()
    stage = progress.Stages(True, "verify")
    stage("exporting")
    stage.done()
    assert term.getvalue().endswith("\r\x1b[K  verify: exporting ...\r\x1b[K")  # one line, cleared at the end
    monkeypatch.setattr(progress.sys, "stderr", io.StringIO())  # a pipe or file: nothing
    assert list(progress.bar(list(range(25)), True)) == list(range(25))
    progress.Stages(True, "verify")("exporting")
    assert progress.sys.stderr.getvalue() == ""


def test_a_ported_model_is_freed_when_its_last_user_lets_go():
    """torch.fx's tracer and graph refer to each other: left alone, they would pin the source's weights until
    a garbage collection (a conversion would hold both checkpoints while it saves)."""
    import gc
    import weakref

    src, dst = torch_model("resnet"), fresh("resnet", "keras")
    alive = weakref.ref(next(src.parameters()))
    gc.disable()
    try:
        report = port(src, dst)
        report.plan = None
        del src, report
        assert alive() is None
    finally:
        gc.enable()
