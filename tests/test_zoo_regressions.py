"""What went wrong on models people wrote, reduced to the smallest real models that show it (issue 12's list).

Each test fails on bnport before the fix: in-place activations read after they overwrote a tapped output, a
Keras layer computing with captured tensors crashed the export, layers with several inbound nodes or inside a
nested model were skipped under a false reason, a bias into a conv without one and padding differences were
only found late or not at all.
"""

from __future__ import annotations

import numpy as np
import pytest

from bnport.core.pairing import PlanError
from bnport.workflows.porting import plan, port
from bnport.workflows.verification import verify


def _trained(module, shape, seed=0):
    """Seeded weights and BatchNorm statistics away from their defaults (eval mode)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict(keep_vars=True).items():
            if t.dtype.is_floating_point:
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=gen) * (0.5 if t.ndim > 1 else 1.0))
    return module.eval()


def _x(shape, seed=1):
    return np.random.default_rng(seed).standard_normal((2, *shape)).astype("float32")


def _torch_cbr(inplace: bool, style: str):
    from torch import nn
    from torch.nn import functional as F

    class Net(nn.Module):
        """Conv-BN-ReLU twice, the ReLU in place as torchvision and timm run it (module, function or +=)."""

        def __init__(self):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
            self.relu = nn.ReLU(inplace=inplace)

        def forward(self, x):
            y = self.b1(self.c1(x))
            y = self.relu(y) if style == "module" else F.relu(y, inplace=inplace)
            z = self.b2(self.c2(y))
            if style == "iadd" and inplace:
                z += y  # torchvision's BasicBlock: out += identity
            elif style == "iadd":
                z = z + y
            return self.relu(z)

    return Net()


def _keras_cbr(style: str):
    import keras
    from keras import layers

    i = keras.Input((8, 8, 3))
    y = layers.BatchNormalization(name="b1")(layers.Conv2D(8, 3, padding="same", use_bias=False, name="c1")(i))
    y = layers.ReLU()(y)
    z = layers.BatchNormalization(name="b2")(layers.Conv2D(8, 3, padding="same", use_bias=False, name="c2")(y))
    if style == "iadd":
        z = layers.Add()([z, y])
    return keras.Model(i, layers.ReLU()(z))


@pytest.mark.parametrize("style", ["module", "function", "iadd"])
@pytest.mark.parametrize("inplace", [True, False])
def test_in_place_activations_do_not_overwrite_the_tapped_outputs(inplace, style):
    t, k = _trained(_torch_cbr(inplace, style), (3, 8, 8)), _keras_cbr(style)
    port(t, k)
    r = verify(t, k, _x((3, 8, 8)))
    assert r.ok, str(r)
    assert [row.torch_name for row in r.rows] == ["c1", "b1", "c2", "b2"]
    # an independent check: the BatchNorm's own output, computed by PyTorch eagerly, is what verify compared
    import torch

    with torch.no_grad():
        b1 = t.b1(t.c1(torch.from_numpy(_x((3, 8, 8))))).numpy()
    assert np.min(b1) < -0.1  # not a ReLU output: the in-place activation would have clipped it


@pytest.mark.backends
def test_taps_on_torchvision_models_need_no_copies_and_hold_what_the_layers_compute():
    """densenet121 runs every ReLU in place; resnet18 adds in place (``out += identity``): each tap equals the layer's
    output as a forward hook sees it, and none needs a copy (bnport/adapters/torch/snapshots.py)."""
    import torch
    import zoo
    from torch import nn
    from zoo_imports import torchvision

    from bnport.adapters.torch.export import with_taps

    tv = torchvision()
    for build, copies in [(tv.models.densenet121, 0), (tv.models.resnet18, 0)]:
        model = zoo.torch_trained(build(), (3, 32, 32))
        names = [n for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
        x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(2))
        held: dict[str, torch.Tensor] = {}
        hooks = [m.register_forward_hook(lambda _m, _i, o, n=n, held=held: held.__setitem__(n, o.clone()))
                 for n, m in model.named_modules() if n in names]
        with torch.no_grad():
            own = model(x)
        for hook in hooks:
            hook.remove()
        tapped, finals = with_taps(model, names)
        with torch.no_grad():
            got = tapped(x)
        assert torch.equal(got[0], own)
        assert all(torch.equal(v, held[n]) for n, v in zip(names, got[finals:], strict=True))
        assert sum(1 for n in tapped.graph.nodes if n.target is torch.clone) == copies


def _keras_with_normalization(mean, variance):
    import keras
    from keras import layers

    i = keras.Input((8, 8, 3))
    x = layers.Normalization(mean=mean, variance=variance, name="norm")(i) if mean is not None else \
        layers.Normalization(name="norm")(i)
    x = layers.Conv2D(4, 3, padding="same", name="conv")(x)
    return keras.Model(i, layers.BatchNormalization(name="bn")(x))


def _torch_conv_bn():
    from torch import nn

    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4))


def test_a_keras_normalization_layer_is_exported_with_its_values_and_named_as_preprocessing():
    # before: onnxruntime's raw ValueError (the layer's mean and variance were graph inputs nobody fed)
    t, k = _trained(_torch_conv_bn(), (3, 8, 8)), _keras_with_normalization([0.5, 0.4, 0.3], [0.2, 0.3, 0.4])
    with pytest.raises(PlanError, match=r"\[preprocessing\] .*Keras norm: Normalization"):
        port(t, k)
    port(t, k, strict=False)
    r = verify(t, k, _x((3, 8, 8)))
    assert not r.ok and r.first_divergence.torch_name == "0"
    assert [f.code for f in r.findings] == ["preprocessing"]
    # the Keras graph computes what Keras computes: its final output against Keras's own call
    want = np.moveaxis(np.asarray(k(np.moveaxis(_x((3, 8, 8)), 1, -1), training=False)), -1, 1)
    assert np.allclose(r.final[0].comparison.worst_actual, want.reshape(-1)[
        np.ravel_multi_index(r.final[0].comparison.worst_index, want.shape)], atol=1e-5)


def test_an_identity_normalization_layer_verifies():
    t, k = _trained(_torch_conv_bn(), (3, 8, 8)), _keras_with_normalization(None, None)  # adapt state: 0 and 1
    port(t, k)
    r = verify(t, k, _x((3, 8, 8)))
    assert r.ok, str(r)


def _keras_block(name):
    import keras
    from keras import layers

    i = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name=f"{name}_conv")(i)
    return keras.Model(i, layers.BatchNormalization(name=f"{name}_bn")(x), name=name)


def test_layers_with_several_inbound_nodes_are_compared():
    import keras

    k = _keras_block("block")
    other = keras.Input((8, 8, 3))
    keras.Model(other, k.layers[1](other))  # the conv is used in another model too: it now has two nodes
    assert len(k.get_layer("block_conv")._inbound_nodes) == 2
    t = _trained(_torch_conv_bn(), (3, 8, 8))
    t[0].bias = None
    port(t, k)
    r = verify(t, k, _x((3, 8, 8)))
    assert r.ok and [row.keras_name for row in r.rows] == ["block_conv", "block_bn"], str(r)


def test_layers_inside_a_nested_model_are_compared():
    import keras
    from keras import layers

    inner = _keras_block("inner")
    i = keras.Input((8, 8, 3))
    k = keras.Model(i, layers.Conv2D(2, 1, name="head")(inner(i)))
    from torch import nn

    t = _trained(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)),
                 (3, 8, 8))
    port(t, k)
    r = verify(t, k, _x((3, 8, 8)))
    assert r.ok and r.not_compared == [], str(r)
    assert [row.keras_name for row in r.rows] == ["inner/inner_conv", "inner/inner_bn", "head"]
    k.get_layer("inner").get_layer("inner_bn").epsilon = 0.1  # a fault inside the nested model is found there
    r = verify(t, k, _x((3, 8, 8)))
    assert r.first_divergence.keras_name == "inner/inner_bn" and [f.code for f in r.findings] == ["epsilon"]


def test_verify_with_no_pair_compared_is_not_ok():
    import keras
    from keras import layers
    from torch import nn

    i = keras.Input((4,))
    r = verify(nn.Sequential(nn.ReLU()).eval(), keras.Model(i, layers.ReLU()(i)), _x((4,)))
    assert r.rows == [] and r.final[0].passed
    assert not r.ok and r.not_compared and "no layer pair" in r.not_compared[0]
    assert "NOT OK" in str(r)


def test_plan_names_a_bias_the_destination_has_no_room_for():
    import keras
    from keras import layers
    from torch import nn

    i = keras.Input((8, 8, 3))
    k = keras.Model(i, layers.BatchNormalization(name="bn")(layers.Conv2D(4, 3, padding="same", name="conv")(i)))
    k.get_layer("conv").bias.assign(np.full(4, 0.5, "float32"))
    t = _trained(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)), (3, 8, 8))
    p = plan(k, t)  # Keras -> PyTorch: known before anything is written
    assert p.conflicts == ["0 <-> conv: the Keras layer adds a bias (not all zero) that the PyTorch layer has no "
                           "room for (build it with a bias)"]
    assert plan(t, k).conflicts == []  # PyTorch -> Keras: the Keras bias gets zeros
    report = verify(t, k, _x((3, 8, 8)))  # comparing the two as they are: the conflict is the finding
    assert report.first_divergence.torch_name == "0" and "conflict" in [f.code for f in report.findings]


def test_comparing_two_models_reads_keras_values_only_where_a_bias_could_conflict(monkeypatch):
    """verify plans the given Keras model for its shapes; a layer's values are read only to decide a conflict (a
    Keras bias going into a PyTorch layer without one), not for every pair."""
    import keras
    from keras import layers
    from torch import nn

    from bnport.adapters.keras import batchnorm as keras_bn
    from bnport.adapters.keras import layers as keras_layers
    from bnport.workflows.porting import _plan

    i = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="with_bias")(i)
    x = layers.BatchNormalization(name="bn")(x)
    k = keras.Model(i, layers.Conv2D(4, 3, padding="same", name="both_bias")(x))
    t = _trained(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),
                               nn.Conv2d(4, 4, 3, padding=1)), (3, 8, 8))
    reads = []
    for module in (keras_layers, keras_bn):
        real = module.variable_to_numpy
        monkeypatch.setattr(module, "variable_to_numpy", lambda v, real=real: reads.append(v.path) or real(v))
    p = _plan(t, k, None, source_first=False)
    assert p.conflicts == [] and len(p.pairs) == 3
    assert sorted(reads) == ["with_bias/bias", "with_bias/kernel"]  # zeros: no conflict, but it had to be read


def test_a_non_strict_port_lists_the_layers_it_left_out():
    import keras
    from keras import layers
    from torch import nn

    i = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(i)
    k = keras.Model(i, layers.SeparableConv2D(4, 3, padding="same", name="sep")(x))  # no mapping in bnport
    t = _trained(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False)), (3, 8, 8))
    report = port(t, k, strict=False)
    assert report.unsupported_dst == ["sep (SeparableConv2D)"]
    assert "left as it was (destination, no mapping in bnport): sep (SeparableConv2D)" in str(report)


def _keras_stride2(padding: str):
    import keras
    from keras import layers

    i = keras.Input((8, 8, 3))
    if padding == "zero-asymmetric":  # keras.applications' MobileNetV2 and EfficientNet: correct_pad
        x = layers.Conv2D(4, 3, 2, use_bias=False, name="conv")(layers.ZeroPadding2D(((0, 1), (0, 1)))(i))
    elif padding == "zero-symmetric":
        x = layers.Conv2D(4, 3, 2, use_bias=False, name="conv")(layers.ZeroPadding2D(1)(i))
    else:
        x = layers.Conv2D(4, 3, 2, padding="same", use_bias=False, name="conv")(i)
    return keras.Model(i, layers.BatchNormalization(name="bn")(x))


def _torch_stride2(padding: str):
    from torch import nn
    from torch.nn import functional as F

    class TFSame(nn.Module):
        """timm's way of padding like TensorFlow: F.pad, then a valid convolution."""

        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(3, 4, 3, 2, bias=False), nn.BatchNorm2d(4)

        def forward(self, x):
            return self.bn(self.conv(F.pad(x, (0, 1, 0, 1))))

    if padding == "tf-same":
        return TFSame()
    return nn.Sequential(nn.Conv2d(3, 4, 3, 2, padding=1, bias=False), nn.BatchNorm2d(4))


@pytest.mark.parametrize(("torch_padding", "keras_padding", "differs"), [
    ("symmetric", "zero-asymmetric", "padding"),
    ("symmetric", "same", "same-padding"),
    ("symmetric", "zero-symmetric", None),
    ("tf-same", "same", None),
    ("tf-same", "zero-asymmetric", None),
    ("tf-same", "zero-symmetric", "padding"),
])
def test_stride2_padding_differences_are_known_before_anything_runs(torch_padding, keras_padding, differs):
    import torch

    t, k = _trained(_torch_stride2(torch_padding), (3, 8, 8)), _keras_stride2(keras_padding)
    p = plan(t, k)
    assert [d.code for d in p.differences] == ([differs] if differs else [])
    if differs:
        with pytest.raises(PlanError, match=rf"\[{differs}\]"):
            port(t, k)
    port(t, k, strict=not differs)
    r = verify(t, k, _x((3, 8, 8)))
    # independent check: native outputs of the two frameworks agree exactly when no difference was predicted
    with torch.no_grad():
        yt = t(torch.from_numpy(_x((3, 8, 8)))).numpy()
    yk = np.moveaxis(np.asarray(k(np.moveaxis(_x((3, 8, 8)), 1, -1), training=False)), -1, 1)
    assert (np.max(np.abs(yt - yk)) < 1e-4) == (differs is None) == r.ok
    if differs:
        assert r.first_divergence.torch_name in ("0", "conv") and r.findings[0].code == differs


def test_a_refused_port_leaves_no_copying_thread_behind(tmp_path):
    """A port into Keras copies kernels on a worker while it plans; when the plan is refused, the call used to return
    with the worker still copying, and the interpreter aborted at exit ("terminate called without an active
    exception", seen after a refused InceptionV3 port)."""
    import subprocess
    import sys

    script = tmp_path / "refused.py"
    script.write_text(
        "import torch, keras\nfrom bnport.workflows.porting import port\nfrom bnport.core.pairing import PlanError\n"
        "t = torch.nn.Sequential(*[torch.nn.Linear(4096, 4096) for _ in range(3)])\n"
        "i = keras.Input((4096,))\nk = keras.Model(i, keras.layers.Dense(3)(i))\n"
        "try:\n    port(t, k)\nexcept PlanError:\n    print('refused')\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "refused", done.stderr[-2000:]
    assert "terminate called" not in done.stderr


def test_a_comparison_not_made_is_said_in_every_report_and_is_not_ok(tmp_path):
    """A Keras Dense applying an activation bnport cannot apply to the PyTorch side is not compared: the report is
    not ok, and the text, JSON, JUnit and HTML reports all say which pair and why."""
    import json
    from xml.etree import ElementTree as ET

    import keras
    from torch import nn

    from bnport.reports import writers as report

    i = keras.Input((6,))
    k = keras.Model(i, keras.layers.Dense(4, activation=keras.activations.hard_shrink, name="fc")(i))
    t = _trained(nn.Sequential(nn.Linear(6, 4), nn.Hardshrink()), (6,))
    port(t, k)
    r = verify(t, k, _x((6,)))
    assert not r.ok and r.first_divergence is None
    assert r.not_compared == ["0 <-> fc: the Keras layer applies activation 'hard_shrink' inside itself, which bnport "
                              "cannot apply to the PyTorch layer's output to compare them"]
    assert "not compared: 0 <-> fc" in str(r) and "NOT OK" in str(r)
    report.write_json(r, tmp_path / "r.json")
    report.write_junit(r, tmp_path / "r.xml")
    report.write_html(r, tmp_path / "r.html")
    assert json.loads((tmp_path / "r.json").read_text())["not_compared"] == r.not_compared
    suite = ET.parse(tmp_path / "r.xml").getroot()
    assert suite.get("errors") == "1" and suite.find("testcase/error").get("type") == "not-compared"
    assert "hard_shrink" in (tmp_path / "r.html").read_text() and "NOT OK" in (tmp_path / "r.html").read_text()


def _keras_composite_model(reads_values: bool = False):
    """A user's Keras block holding a conv, a BatchNorm and an activation inside one layer (as keras-hub's
    MobileNet blocks do), twice, then a Dense head."""
    import keras
    from keras import layers

    class ConvBN(layers.Layer):
        def __init__(self, filters, **kwargs):
            super().__init__(**kwargs)
            self.conv = layers.Conv2D(filters, 3, padding="same", use_bias=False, name="conv")
            self.bn = layers.BatchNormalization(epsilon=1e-5, name="bn")

        def call(self, x):
            y = self.bn(self.conv(x))
            if reads_values:
                y = y * float(keras.ops.convert_to_numpy(keras.ops.mean(y)))  # needs a real tensor
            return keras.ops.relu(y)

        if reads_values:  # Keras builds the model from this instead of a symbolic call

            def compute_output_shape(self, shape):
                return (*shape[:-1], self.conv.filters)

            def build(self, shape):
                self.conv.build(shape)
                self.bn.build((*shape[:-1], self.conv.filters))

    i = keras.Input((8, 8, 3))
    x = ConvBN(4, name="block1")(i)
    x = ConvBN(4, name="block2")(x)
    return keras.Model(i, layers.Dense(2, name="head")(layers.GlobalAveragePooling2D()(x)))


def _torch_composite_twin():
    from torch import nn

    def block(cin):
        return nn.Sequential(nn.Conv2d(cin, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU())

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.b1, self.b2, self.head = block(3), block(4), nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.b2(self.b1(x)).mean((2, 3)))

    return Net()


def _node_counts(model):
    return {id(layer): (len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in model._flatten_layers()}


def test_a_keras_layer_holding_other_layers_is_paired_inside_and_left_as_it_was():
    k, t = _keras_composite_model(), _trained(_torch_composite_twin(), (3, 8, 8))
    counts = _node_counts(k)
    p = plan(t, k)
    assert p.ok and [pair.keras_name for pair in p.pairs] == [
        "block1/conv", "block1/bn", "block2/conv", "block2/bn", "head"], str(p)
    port(t, k)
    x = _x((3, 8, 8))
    r = verify(t, k, x)
    assert r.ok and len(r.rows) == 5, str(r)
    k.get_layer("block2").bn.epsilon = 0.1  # a fault inside the block is found inside it
    r = verify(t, k, x)
    assert r.first_divergence.keras_name == "block2/bn" and [f.code for f in r.findings] == ["epsilon"]
    assert _node_counts(k) == counts  # the symbolic calls that showed the inside were taken off again
    k.get_layer("block2").bn.epsilon = 1e-5
    back = _torch_composite_twin().eval()
    port(k, back)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(t.state_dict().values(),
                                                                    back.state_dict().values(), strict=True))


def test_a_composite_layer_that_needs_real_tensors_stays_one_unsupported_layer():
    k, t = _keras_composite_model(reads_values=True), _trained(_torch_composite_twin(), (3, 8, 8))
    counts = _node_counts(k)
    p = plan(t, k)
    assert p.unsupported_keras == [
        "block1 (ConvBN: a layer holding 2 other layers' weights, whose call bnport cannot see into to tell how "
        "they connect)",
        "block2 (ConvBN: a layer holding 2 other layers' weights, whose call bnport cannot see into to tell how "
        "they connect)"]
    assert _node_counts(k) == counts
