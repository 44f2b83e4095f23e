"""explain: the README's cases and every finding code, on real layers."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import keras_bn, torch_bn

from bnport import explain, from_keras, from_torch, to_keras, to_torch
from bnport.core.reference import float32_error_bound


@pytest.fixture
def readme_pair(torch, keras):
    t = torch.nn.BatchNorm2d(100)
    k = keras.layers.BatchNormalization()
    x = torch.ones((20, 100, 35, 45))
    k.build((None, 35, 45, 100))
    return t, k, x


def test_readme_training_mode(readme_pair, keras):
    t, k, x = readme_pair
    t.train()
    e = explain(t, k, x.numpy())  # before the forward pass below updates the running statistics
    assert e.codes[0] == "train-mode"
    assert e.findings[0].predicted_max_abs == pytest.approx(1 / np.sqrt(1 + 1e-5), rel=1e-9)
    assert e.predicted_max_abs == pytest.approx(1 / np.sqrt(1 + 1e-3), rel=1e-9)
    assert t.training, "explain must not change the module's mode"
    assert float(t(x).detach().abs().max()) == 0.0
    keras_out = np.asarray(k(np.ones((20, 35, 45, 100), np.float32)))
    # Keras rounds four times (var + eps, rsqrt, the multiply, the add) on values below 1: 4 * 2**-24 (1.68 seen)
    assert np.allclose(keras_out, 1 / np.sqrt(1 + 1e-3), rtol=0, atol=4 * 2**-24)


def test_readme_epsilon_then_ported(readme_pair, torch):
    t, k, x = readme_pair
    t.eval()
    y_torch = t(x).detach()
    # float32 results within 2 units in the last place (2 * 2**-24 below 1) of the exact values
    assert float(y_torch[0, 0, 0, 0]) == pytest.approx(1 / np.sqrt(1 + 1e-5), abs=2**-23)
    assert f"{float(y_torch[0, 0, 0, 0]):.4f}" == "1.0000"
    y_keras = np.asarray(k(np.ones((20, 35, 45, 100), np.float32)))
    assert float(y_keras[0, 0, 0, 0]) == pytest.approx(1 / np.sqrt(1 + 1e-3), abs=2**-23)  # 0.9995004
    e = explain(t, k, x.numpy())
    assert e.codes == ("epsilon", "momentum")
    assert any("checkpoint was not loaded" in n for n in e.notes)
    gap = 1 / np.sqrt(1 + 1e-5) - 1 / np.sqrt(1 + 1e-3)
    assert e.findings[0].predicted_max_abs == pytest.approx(gap, rel=1e-9)
    assert e.findings[1].predicted_max_abs == 0.0
    ported = to_keras(from_torch(t))
    y_ported = np.asarray(ported(np.ones((20, 35, 45, 100), np.float32)))
    # the same computation, rounded by two implementations (TensorFlow's kernel differs by one unit on some CPUs)
    bound = float32_error_bound(x.numpy(), from_torch(t))
    assert np.all(np.abs(y_ported.transpose(0, 3, 1, 2) - y_torch.numpy()) <= bound)
    same = explain(t, ported, x.numpy())
    assert same.codes == () and same.predicted_max_abs == 0.0
    assert str(same).startswith("no difference found") and "checkpoint was not loaded" in str(same)


def test_training_forward_pass_overwrites_running_statistics(readme_pair):
    t, k, x = readme_pair
    t.train()
    t(x)  # one training-mode call: running mean 0.1, running variance 0.9
    t.eval()
    assert float(t(x).detach()[0, 0, 0, 0]) == pytest.approx(0.9 / np.sqrt(0.9 + 1e-5), abs=2**-23)  # 0.9487
    t.train()
    message = explain(t, k, x.numpy()).findings[0].message
    assert "overwrites the running statistics" in message and "reload the checkpoint" in message


def test_unbuilt_keras_layer_is_explained_as_built_for_the_torch_input(torch, keras):
    bn = torch.nn.BatchNorm2d(64)
    unbuilt = keras.layers.BatchNormalization()
    e = explain(bn.train(), unbuilt)  # the README's line
    assert e.codes[0] == "train-mode" and e.inputs_shape[1] == 64
    assert "epsilon" in e.codes and any("was not built" in n for n in e.notes)
    assert not unbuilt.built, "explain must not build the layer it was given"
    first = keras.layers.BatchNormalization(axis=1, epsilon=1e-5, momentum=0.9)
    assert explain(torch.nn.BatchNorm1d(3).eval(), first).codes == ()


def test_ported_trained_pair_has_no_findings():
    t = torch_bn(4, 5, eps=2e-5, seed=1)
    e = explain(t, to_keras(from_torch(t)))
    assert e.findings == () and e.predicted_max_abs == 0.0
    assert "no difference found" in str(e)


def test_keras_training_flag(torch):
    t = torch_bn(4, 5, seed=2)
    e = explain(t, to_keras(from_torch(t)), keras_training=True)
    assert e.codes == ("train-mode",) and e.findings[0].predicted_max_abs > 0.1


def test_affine_and_weights_and_stats():
    t = torch_bn(4, 6, eps=1e-3, momentum=0.01, seed=3)
    k_plain = keras_bn(4, 6, center=False, scale=False, seed=3)
    e = explain(t, k_plain)
    assert e.codes == ("affine", "affine")
    assert all(f.predicted_max_abs > 0 for f in e.findings)
    k_other = keras_bn(4, 6, seed=4)
    codes = explain(t, k_other).codes
    assert codes == ("weights", "weights", "stats", "stats")
    assert "differs in 6 of 6 channels" in str(explain(t, k_other).findings[0])


def test_fresh_stats_on_one_side(torch):
    t = torch_bn(4, 4, eps=1e-3, momentum=0.01, seed=5)
    k = to_keras(from_torch(torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.01)))
    e = explain(t, k)
    assert "fresh-stats" in e.codes
    assert "untrained running statistics" in str(e)


def test_untracked_stats(torch):
    t = torch_bn(4, 4, track=False)
    e = explain(t, keras_bn(4, 4, eps=1e-5, momentum=0.9))
    assert e.codes[0] == "stats-untracked" and e.findings[0].predicted_max_abs > 0


def test_axis_findings(keras):
    t = torch_bn(4, 4)
    k = keras.layers.BatchNormalization(axis=2)
    k.build((None, 3, 4, 5))
    assert explain(t, k).codes == ("axis",)
    wrong_size = keras_bn(4, 5)
    e = explain(t, wrong_size)
    assert e.codes == ("axis",) and e.predicted_max_abs is None
    first = to_keras(from_torch(t), data_format="channels_first")
    assert explain(t, first, data_format="channels_last").codes == ("axis",)
    assert explain(t, first, data_format="channels_first").codes == ()


def test_momentum_none_is_a_momentum_finding():
    t = torch_bn(4, 3, momentum=None)
    k = keras_bn(4, 3, eps=1e-5)
    found = {f.code: f for f in explain(t, k).findings}
    assert "cumulative average" in found["momentum"].message


def test_round_trip_through_torch_explains_nothing():
    k = keras_bn(3, 7, eps=1e-4, momentum=0.95, seed=6)
    assert explain(to_torch(from_keras(k)), k).codes == ()


def test_whole_models_are_explained_pair_by_pair():
    from models import FIXTURES

    from bnport.adapters.loading import keras_model, torch_model

    t = torch_model(f"{FIXTURES / 'models.py'}:torch_bn_layers", FIXTURES / "bn_layers.pt")
    naive = keras_model(str(FIXTURES / "bn_layers_naive.keras"))
    found = explain(t, naive)
    assert list(found) == [("bn1d", "bn1d"), ("bn2d", "bn2d"), ("bn3d", "bn3d")]
    assert found[("bn1d", "bn1d")].codes == ("epsilon", "momentum")
    assert found[("bn2d", "bn2d")].codes == ()
    text = str(found)
    assert text.startswith("3 BatchNorm pairs, 2 with findings") and "Explanation(" not in text
    assert "bn1d <-> bn1d\n  predicted max |difference|" in text and "  [epsilon] epsilon differs" in text
