"""The zoo's own layer classes, each in the smallest model that shows what bnport does with it.

timm's ``StdConv2d`` / ``ScaledStdConv2d`` standardize their weight each time they run: bnport ports the weight
they compute with (checked here against timm's own forward) and refuses to write into one. timm's
``BatchNormAct2d`` holds its activation inside: its tap is the BatchNorm part (checked here against a plain
``F.batch_norm``). Each Keras twin is written here; the PyTorch layers are timm's and torchvision's.
"""

from __future__ import annotations

import numpy as np
import pytest
import zoo

from bnport.errors import UnsupportedLayerError
from bnport.workflows.porting import plan, port
from bnport.workflows.verification import verify


def _keras_conv_bn(bias: bool, padding: str = "same", strides: int = 1, relu: bool = True):
    import keras
    from keras import layers

    i = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, strides, padding=padding, use_bias=bias, name="conv")(i)
    x = layers.BatchNormalization(epsilon=1e-5, name="bn")(x)
    return keras.Model(i, layers.ReLU()(x) if relu else x)


@pytest.mark.parametrize("cls", ["StdConv2d", "ScaledStdConv2d"])
def test_weight_standardized_convolutions_port_the_weight_they_compute_with(cls):
    from torch import nn

    layers = zoo.timm().layers
    conv = getattr(layers, cls)(3, 4, 3, bias=cls == "ScaledStdConv2d")
    t = zoo.torch_trained(nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU(inplace=True)), (3, 8, 8))
    k = _keras_conv_bn(bias=cls == "ScaledStdConv2d")
    report = port(t, k)
    kernel = np.asarray(k.get_layer("conv").kernel)
    stored = t[0].weight.detach().numpy()
    assert not np.allclose(np.transpose(stored, (2, 3, 1, 0)), kernel, atol=1e-3)  # not the stored weight
    x = zoo.sample((3, 8, 8))
    assert zoo.native_gap(t, k, x) <= zoo.NATIVE_RTOL  # timm's own forward agrees with Keras's
    assert verify(t, k, x).ok
    assert any("standardizes its weight" in n for n in report.notes)
    with pytest.raises(UnsupportedLayerError, match=rf"layer '0': timm {cls} standardizes whatever weight it holds"):
        port(k, t)  # no weight written into it would compute what the Keras kernel computes


def test_batchnorm_with_its_activation_inside_is_tapped_before_the_activation():
    from torch import nn

    layers = zoo.timm().layers
    t = zoo.torch_trained(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False),
                                        layers.BatchNormAct2d(4, act_layer=nn.ReLU, inplace=True)), (3, 8, 8))
    k = _keras_conv_bn(bias=False)
    port(t, k)
    x = zoo.sample((3, 8, 8))
    r = verify(t, k, x)
    assert r.ok and [row.kind for row in r.rows] == ["conv", "batchnorm"], str(r)
    assert zoo.native_gap(t, k, x) <= zoo.NATIVE_RTOL
    k.get_layer("bn").epsilon = 0.1  # a wrong epsilon is found at the BatchNorm, not after the activation
    r = verify(t, k, x)
    assert r.first_divergence.torch_name == "1" and [f.code for f in r.findings] == ["epsilon"]


def test_frozen_batchnorm_act_from_timm_ports_both_ways():
    from torch import nn

    layers = zoo.timm().layers
    t = zoo.torch_trained(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False),
                                        layers.FrozenBatchNormAct2d(4)), (3, 8, 8))
    k = _keras_conv_bn(bias=False)
    port(t, k)
    assert k.get_layer("bn").momentum == 1.0  # frozen: the moving statistics never move
    assert verify(t, k, zoo.sample((3, 8, 8))).ok
    back = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), layers.FrozenBatchNormAct2d(4))
    port(k, back)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(t.state_dict().values(),
                                                                    back.state_dict().values(), strict=True))


def test_timm_conv2d_same_is_keras_same_padding():
    from torch import nn

    layers = zoo.timm().layers
    t = zoo.torch_trained(nn.Sequential(layers.Conv2dSame(3, 4, 3, 2, bias=False), nn.BatchNorm2d(4)), (3, 8, 8))
    assert plan(t, _keras_conv_bn(False, "same", 2, relu=False)).differences == []
    assert [d.code for d in plan(t, _keras_conv_bn(False, "valid", 2, relu=False)).differences] == ["padding"]
    k = _keras_conv_bn(False, "same", 2, relu=False)
    port(t, k)
    x = zoo.sample((3, 8, 8))
    assert zoo.native_gap(t, k, x) <= zoo.NATIVE_RTOL and verify(t, k, x).ok


def test_a_subclass_with_its_own_forward_is_not_taken_for_its_base():
    from torch import nn

    class Doubled(nn.Conv2d):
        def forward(self, x):
            return 2 * super().forward(x)

    t = nn.Sequential(Doubled(3, 4, 3, padding=1), nn.BatchNorm2d(4)).eval()
    p = plan(t, _keras_conv_bn(True, relu=False))
    assert p.unsupported_torch == ["0 (Doubled: a Conv2d subclass with a forward of its own, which bnport does not "
                                   "know)"]
