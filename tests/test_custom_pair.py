"""A user's own layer pair, registered through the public API, ported both ways and verified layer by layer.

The pair is defined here, as a user would: a PyTorch module computing ``x * scale + shift`` per channel and a Keras
layer computing ``x * gamma + beta`` over the last axis. The expected outcome comes from the two definitions (the
same function of the input once ``gamma = scale`` and ``beta = shift``) and from running both natively.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import bnport
from bnport.errors import BnportError, IncompatibleLayerError, UsageError


class Affine(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.register_buffer("shift", torch.zeros(channels))

    def forward(self, x):
        return x * self.scale[:, None, None] + self.shift[:, None, None]


def keras_affine_class():
    import keras

    class KerasAffine(keras.layers.Layer):
        def build(self, shape):
            self.gamma = self.add_weight(shape=(shape[-1],), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(shape[-1],), initializer="zeros", name="beta", trainable=False)

        def call(self, x):
            return x * self.gamma + self.beta

    return KerasAffine


KerasAffine = keras_affine_class()


def torch_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), Affine(4), nn.ReLU(),
                         nn.Conv2d(4, 2, 1)).eval()


def keras_net():
    import keras

    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, padding="same")(x)
    y = keras.layers.BatchNormalization(epsilon=1e-5)(y)
    y = KerasAffine(name="affine")(y)
    y = keras.layers.ReLU()(y)
    return keras.Model(x, keras.layers.Conv2D(2, 1)(y))


def trained_torch(seed: int = 0) -> nn.Module:
    net = torch_net()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*net.parameters(), *net.buffers()]:
            if tensor.dtype.is_floating_point:
                tensor.copy_(torch.randn(tensor.shape, generator=g) * 0.5)
        net[1].running_var.abs_().add_(0.1)
    return net


def trained_keras(seed: int = 0):
    net = keras_net()
    rng = np.random.default_rng(seed)
    for variable in net.weights:
        value = rng.standard_normal(tuple(variable.shape)).astype("float32") * 0.5
        variable.assign(np.abs(value) + 0.1 if "variance" in variable.path else value)
    return net


def sample() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((2, 3, 8, 8)).astype("float32")


@pytest.fixture
def registered():
    pair = bnport.register_pair("affine", Affine, KerasAffine, to_keras=lambda s: {"gamma": s["scale"],
                                                                                      "beta": s["shift"]},
                                to_torch=lambda w: {"scale": w["gamma"], "shift": w["beta"]})
    yield pair
    bnport.unregister_pair("affine")


def _native_agree(t, k):
    x = sample()
    with torch.no_grad():
        want = t(torch.from_numpy(x)).numpy()
    got = np.moveaxis(np.asarray(k(np.moveaxis(x, 1, -1), training=False)), -1, 1)
    # a 27-term and a 4-term float32 dot product, a BatchNorm and an affine: a few roundings of the largest value
    assert np.abs(got - want).max() <= 64 * np.finfo(np.float32).eps * np.abs(want).max()


def test_without_registration_the_custom_module_is_refused_by_name():
    with pytest.raises(BnportError, match="Affine"):
        bnport.port(trained_torch(), keras_net())


def test_a_registered_pair_ports_torch_to_keras_and_verifies_layer_by_layer(registered):
    t, k = trained_torch(), keras_net()
    bnport.port(t, k)
    layer = k.get_layer("affine")
    assert np.array_equal(np.asarray(layer.gamma), t[2].scale.detach().numpy())
    assert np.array_equal(np.asarray(layer.beta), t[2].shift.numpy())
    _native_agree(t, k)
    report = bnport.verify(t, k, per_layer=True)
    assert report.ok, str(report)
    assert [row.kind for row in report.rows] == ["conv", "batchnorm", "affine", "conv"]


def test_a_registered_pair_ports_keras_to_torch(registered):
    k, t = trained_keras(), torch_net()
    bnport.port(k, t)
    assert np.array_equal(t[2].shift.numpy(), np.asarray(k.get_layer("affine").beta))
    _native_agree(t, k)
    assert bnport.verify(t, k).ok


def test_a_wrong_mapping_function_is_caught_by_verify_at_that_layer():
    bnport.register_pair("affine", Affine, KerasAffine, to_keras=lambda s: {"gamma": s["shift"], "beta": s["scale"]},
                         to_torch=lambda w: {"scale": w["beta"], "shift": w["gamma"]})
    try:
        t, k = trained_torch(), keras_net()
        bnport.port(t, k)
        report = bnport.verify(t, k, per_layer=True)
    finally:
        bnport.unregister_pair("affine")
    assert not report.ok
    assert report.first_divergence.kind == "affine" and report.first_divergence.keras_name == "affine"


def test_a_mapping_that_misses_a_variable_is_refused_before_writing(registered):
    bnport.register_pair("affine", Affine, KerasAffine, to_keras=lambda s: {"gamma": s["scale"]},
                         to_torch=lambda w: {"scale": w["gamma"], "shift": w["beta"]})
    t, k = trained_torch(), keras_net()
    before = [np.asarray(v).copy() for v in k.weights]
    with pytest.raises(IncompatibleLayerError, match=r"layer 'affine' \(KerasAffine, kind 'affine'\) holds "
                                                      r"\['beta', 'gamma'\], but to_keras gave \['gamma'\]"):
        bnport.port(t, k)
    assert all(np.array_equal(a, np.asarray(v)) for a, v in zip(before, k.weights, strict=True))


@pytest.mark.parametrize("kind, classes, message", [
    ("batchnorm", (Affine, KerasAffine), "built-in kind"),
    ("affine", (Affine(2), KerasAffine), "torch_class must be a class"),
    ("two words", (Affine, KerasAffine), "is not a name"),
])
def test_bad_registrations_are_usage_errors(kind, classes, message):
    with pytest.raises(UsageError, match=message):
        bnport.register_pair(kind, *classes, to_keras=dict, to_torch=dict)
