"""The corpus: models from torchvision, timm, keras.applications and keras-hub, as users port them.

Each expected outcome comes from the two definitions and from checks written here, never from bnport: where the
definitions agree layer for layer, the port runs both ways, the two frameworks' own outputs agree
(``zoo.NATIVE_RTOL``), verify passes on every pair, and, for keras-hub, bnport's port equals keras-hub's own
hand-written timm converter bit for bit. Where they differ (stride placement, padding, preprocessing, heads,
missing BatchNorms), bnport refuses before writing or verify fails at the first differing layer and names the
cause; the two frameworks' own outputs confirm that they differ. Models are small-input (64x64) builds of the real
definitions with seeded trained-looking weights.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import zoo

from bnport.core.pairing import PlanError
from bnport.workflows.porting import plan, port
from bnport.workflows.verification import verify

S64 = (3, 64, 64)


AGREE = zoo.agreeing(64)


#: zoo layer classes each agreeing pair must contain, so the corpus is known to exercise them
CLASSES = {
    "torchvision convnext_tiny / keras.applications ConvNeXtTiny": {"LayerNorm2d", "Conv2dNormActivation",
                                                                     "LayerScale"},
    "timm tf_efficientnetv2_b0 / keras.applications EfficientNetV2B0": {"Conv2dSame", "BatchNormAct2d"},
    "timm efficientnet_b0 / keras-hub EfficientNet": {"BatchNormAct2d"},
    "timm cspresnet50 / keras-hub CSPNet": {"BatchNormAct2d"},
    "torchvision resnet18 with FrozenBatchNorm2d / keras-hub ResNet": {"FrozenBatchNorm2d"},
    "timm mobilenetv3_small_100 / keras-hub MobileNet": {"InvertedResidualBlock", "DepthwiseConvBlock"},
}


def _apps():
    import keras

    return keras.applications


def _features(name):
    return zoo.features(name)


@pytest.mark.parametrize("name", list(CLASSES))
def test_the_corpus_exercises_the_zoo_layer_classes(name):
    torch_factory, keras_factory, _ = AGREE[name]
    found = {type(m).__name__ for m in torch_factory().modules()} | {type(layer).__name__ for layer in
                                                                     keras_factory()._flatten_layers()}
    assert CLASSES[name] <= found


@pytest.mark.parametrize("name", list(AGREE))
def test_agreeing_definitions_port_from_pytorch_verify_and_round_trip(name):
    torch_factory, keras_factory, shape = AGREE[name]
    t, k, x = zoo.torch_trained(torch_factory(), shape), keras_factory(), zoo.sample(shape)
    p = plan(t, k)
    assert p.ok, str(p)
    port(t, k)
    assert zoo.native_gap(t, k, x) <= zoo.NATIVE_RTOL  # the frameworks' own outputs: an independent check
    r = verify(t, k, x)
    assert r.ok and r.not_compared == [] and len(r.rows) == len(p.pairs), str(r)
    back = torch_factory()
    port(k, back)  # and back into a fresh PyTorch model: every tensor as it was, bit for bit
    want, got = t.state_dict(), back.state_dict()
    assert sorted(want) == sorted(got)
    differ = [key for key in want if not np.array_equal(want[key].numpy(), got[key].numpy())]
    assert all(key.endswith("num_batches_tracked") for key in differ), differ  # Keras keeps no counter: 0
    assert all(int(got[key]) == 0 for key in differ)


@pytest.mark.parametrize("name", list(AGREE))
def test_agreeing_definitions_port_from_keras_and_verify(name):
    torch_factory, keras_factory, shape = AGREE[name]
    k, t, x = zoo.keras_trained(keras_factory()), torch_factory().eval(), zoo.sample(shape)
    assert plan(k, t).ok
    port(k, t)
    assert not t.training
    assert zoo.native_gap(t, k, x) <= zoo.NATIVE_RTOL
    r = verify(t, k, x)
    assert r.ok and r.not_compared == [], str(r)


@pytest.mark.parametrize("architecture", ["resnet50", "efficientnet_b0", "cspresnet50", "mobilenetv3_small_100"])
def test_bnport_ports_what_keras_hubs_own_timm_converter_ports(architecture, tmp_path):
    """keras-hub converts timm checkpoints with a hand-written converter per architecture: an independent port.
    bnport, pairing by structure alone, must give every variable the same value, bit for bit."""
    if architecture.startswith("mobilenet"):  # keras-hub's backbone ends at the last block: timm's features
        whole = zoo.timm().create_model(architecture, pretrained=False)
        from torch import nn

        t = nn.Sequential(whole.conv_stem, whole.bn1, whole.blocks)
        zoo.torch_trained(t, S64)
        hub = whole
    else:
        t = hub = zoo.torch_trained(_features(architecture)(), S64)
    theirs = zoo.keras_hub_ported(zoo.hub_folder(hub, architecture, tmp_path / architecture))
    ours = zoo.keras_hub_backbone(architecture)
    port(t, ours)
    assert [v.path for v in ours.weights] == [v.path for v in theirs.weights]
    for a, b in zip(ours.weights, theirs.weights, strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b)), a.path


def _first(r):
    assert not r.ok and r.first_divergence is not None
    return r.first_divergence.torch_name, [f.code for f in r.findings]


def test_torchvision_resnet50_and_keras_resnet50_place_the_stride_differently():
    """torchvision's ResNet-50 is "v1.5" (the stride-2 of a downsampling block on its 3x3 convolution); Keras's
    ResNet50 is v1 (stride on the first 1x1), and its convolutions have biases. No port computes the same."""
    t = zoo.torch_trained(zoo.torchvision().models.resnet50(), S64)
    k = _apps().ResNet50(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    assert t.layer2[0].conv2.stride == (2, 2) and k.get_layer("conv3_block1_1_conv").strides == (2, 2)
    with pytest.raises(PlanError) as info:
        port(t, k)
    assert "conflict: layer2.0.conv1 <-> conv3_block1_1_conv: stride (1, 1) (PyTorch) vs (2, 2) (Keras)" in \
        str(info.value)
    with pytest.raises(PlanError, match=r"the Keras layer adds a bias \(not all zero\) that the PyTorch layer has"):
        port(zoo.keras_trained(k), zoo.torchvision().models.resnet50())


def test_torchvision_and_keras_mobilenetv2_pad_differently():
    """Keras's MobileNetV2 pads its stride-2 convolutions bottom/right only (padding="same", or ZeroPadding2D of
    correct_pad before a valid convolution); torchvision pads one pixel on every side."""
    t = zoo.torch_trained(zoo.torchvision().models.mobilenet_v2(), S64)
    k = _apps().MobileNetV2(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    assert k.get_layer("Conv1").padding == "same" and t.features[0][0].padding == (1, 1)
    assert k.get_layer("block_1_pad").padding == ((0, 1), (0, 1))
    with pytest.raises(PlanError) as info:
        port(t, k)
    text = str(info.value)
    assert "differs: features.0.0 <-> Conv1: [same-padding] the 64x64 input" in text
    assert re.search(r"features\.2\.conv\.1\.0 <-> block_1_depthwise: \[padding\] .* \(1, 1\) x \(1, 1\) .* "
                     r"\(0, 1\) x \(0, 1\) \(ZeroPadding2D \(0, 1\) x \(0, 1\) before padding='valid'\)", text)
    port(t, k, strict=False)
    x = zoo.sample(S64)
    assert zoo.native_gap(t, k, x) > 0.01
    assert _first(verify(t, k, x)) == ("features.0.0", ["same-padding"])


def test_torchvision_and_keras_efficientnet_b0_differ_in_preprocessing_and_padding():
    t = zoo.torch_trained(zoo.torchvision().models.efficientnet_b0(), S64)
    k = _apps().EfficientNetB0(weights=None, input_shape=(64, 64, 3), classifier_activation=None)
    with pytest.raises(PlanError) as info:
        port(t, k)
    text = str(info.value)
    assert "features.0.0 <-> stem_conv: [padding]" in text
    assert "features.0.0 <-> stem_conv: [preprocessing] the Keras model transforms its input before stem_conv " \
           "(Keras rescaling: Rescaling(scale=0.003922, offset=0))" in text
    port(t, k, strict=False)
    x = zoo.sample(S64)
    assert zoo.native_gap(t, k, x) > 0.01
    assert _first(verify(t, k, x)) == ("features.0.0", ["padding", "preprocessing"])


def test_keras_hubs_densenet_pads_its_stem_differently_from_timms(tmp_path):
    """keras-hub's DenseNet stem is a stride-2 7x7 convolution with padding="same" (TensorFlow pads (2, 3)) where
    timm's pads (3, 3): keras-hub's own converter gives a model whose outputs differ from timm's."""
    t = zoo.torch_trained(_features("densenet121")(), S64)
    theirs = zoo.keras_hub_ported(zoo.hub_folder(t, "densenet121", tmp_path / "densenet121"))
    x = zoo.sample(S64)
    assert zoo.native_gap(t, theirs, x) > 0.01  # keras-hub's own port: the definitions differ
    k = zoo.keras_hub_backbone("densenet121")
    with pytest.raises(PlanError, match=r"features\.conv0 <-> conv1_conv: \[same-padding\] the 64x64 input .* "
                                        r"\(3, 3\) x \(3, 3\) .* \(2, 3\) x \(2, 3\) \(padding='same'\)"):
        port(t, k)
    port(t, k, strict=False)
    assert _first(verify(t, k, x)) == ("features.conv0", ["same-padding"])


def test_keras_classifier_softmax_is_named_at_the_output():
    """keras.applications ends in Dense(activation="softmax") by default; torchvision returns logits. Every layer
    agrees, the outputs do not, and verify says why."""
    t = zoo.torch_trained(zoo.torchvision().models.densenet121(), S64)
    k = _apps().DenseNet121(weights=None, input_shape=(64, 64, 3))
    port(t, k)
    r = verify(t, k, zoo.sample(S64))
    assert all(row.passed for row in r.rows) and not r.ok
    assert r.first_divergence.kind == "output" and [f.code for f in r.findings] == ["activation", "output"]
    assert "Keras predictions applies 'softmax' inside itself" in r.findings[0].message


@pytest.mark.parametrize(("name", "build", "expected"), [
    ("torchvision vgg11_bn / keras.applications VGG16 (no BatchNorm)",
     lambda: (zoo.torchvision().models.vgg11_bn(), _apps().VGG16(weights=None, input_shape=(32, 32, 3))),
     [r"unmatched PyTorch layer: features\.1\b", r"unmatched Keras layer: block1_conv2"]),
    ("torchvision mobilenet_v3_small / keras.applications MobileNetV3Small (head and preprocessing)",
     lambda: (zoo.torchvision().models.mobilenet_v3_small(),
              _apps().MobileNetV3Small(weights=None, input_shape=(64, 64, 3))),
     [r"unmatched PyTorch layer: classifier\.0", r"unmatched Keras layer: logits", r"\[preprocessing\]"]),
    ("torchvision inception_v3 / keras.applications InceptionV3 (parallel branches alike)",
     lambda: (zoo.torchvision().models.inception_v3(init_weights=False, aux_logits=False),
              _apps().InceptionV3(weights=None, input_shape=(96, 96, 3))),
     [r"ambiguous: PyTorch Mixed_5c\.branch1x1\.conv, Mixed_5c\.branch_pool\.conv and Keras .* settle it with "
      r"mapping lines"]),
])
def test_definitions_that_differ_are_refused_with_the_reason(name, build, expected):
    t, k = build()
    with pytest.raises(PlanError) as info:
        port(t.eval(), k)
    for pattern in expected:
        assert re.search(pattern, str(info.value)), pattern
