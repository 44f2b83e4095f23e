"""Kinds ``layernorm`` (LayerNorm <-> LayerNormalization over the last axis) and ``groupnorm`` (GroupNorm <->
GroupNormalization), both ways.

A norm without affine weights holds nothing, so it is no weight-holding layer: it is not paired and a port does not
carry its epsilon. It is checked here behind a layer that holds weights (paired and compared), and a weightless norm
whose epsilon differs between the definitions is shown to fail verify at the outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from kinds import check, seeded
from torch import nn

from bnport.workflows.porting import port
from bnport.workflows.verification import verify

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)

DIRECTIONS = ["torch->keras", "keras->torch"]


def _layernorm_pair(affine: bool, torch_eps=1e-6, keras_eps=1e-6):
    import keras

    t = nn.Sequential(nn.Linear(5, 6), nn.LayerNorm(6, eps=torch_eps, elementwise_affine=affine)).eval()
    x = keras.Input((5,))
    y = keras.layers.LayerNormalization(epsilon=keras_eps, center=affine, scale=affine)(keras.layers.Dense(6)(x))
    return t, keras.Model(x, y)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("affine", [True, False])
def test_layernorm(affine, direction):
    t, k = _layernorm_pair(affine)
    check(t, k, np.random.default_rng(1).standard_normal((3, 5)).astype("float32"), direction, products=5 + 6)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("rank", [1, 2])
def test_groupnorm(rank, affine, direction):
    import keras

    conv = getattr(nn, f"Conv{rank}d")(3, 6, 1)
    t = nn.Sequential(conv, nn.GroupNorm(2, 6, eps=1e-5, affine=affine)).eval()
    x = keras.Input((*[5] * rank, 3))
    y = getattr(keras.layers, f"Conv{rank}D")(6, 1)(x)
    k = keras.Model(x, keras.layers.GroupNormalization(2, epsilon=1e-5, center=affine, scale=affine)(y))
    data = np.random.default_rng(1).standard_normal((2, 3, *[5] * rank)).astype("float32")
    check(t, k, data, direction, products=3 + 3 * 5**rank)


def test_a_weightless_norm_with_another_epsilon_is_caught_at_the_outputs():
    t, k = _layernorm_pair(False, torch_eps=1e-5, keras_eps=0.5)
    port(seeded(t), k)
    report = verify(t, k, inputs=np.random.default_rng(1).standard_normal((3, 5)).astype("float32") * 0.1)
    assert not report.ok
    (dense,) = report.rows
    assert dense.kind == "dense" and dense.comparison.max_abs <= dense.tolerance
    assert report.first_divergence.kind == "output"


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_instancenorm_is_a_groupnorm_with_a_channel_per_group(rank, direction):
    import keras

    t = nn.Sequential(getattr(nn, f"Conv{rank}d")(3, 4, 1), getattr(nn, f"InstanceNorm{rank}d")(4, affine=True)).eval()
    x = keras.Input((*[5] * rank, 3))
    y = getattr(keras.layers, f"Conv{rank}D")(4, 1)(x)
    k = keras.Model(x, keras.layers.GroupNormalization(4, epsilon=1e-5)(y))
    data = np.random.default_rng(1).standard_normal((2, 3, *[5] * rank)).astype("float32")
    check(t, k, data, direction, products=3 + 5**rank)


def test_an_instancenorm_with_running_statistics_is_refused():
    import keras

    from bnport.errors import UnsupportedLayerError

    t = nn.Sequential(nn.Conv2d(3, 4, 1), nn.InstanceNorm2d(4, affine=True, track_running_stats=True)).eval()
    x = keras.Input((5, 5, 3))
    k = keras.Model(x, keras.layers.GroupNormalization(4)(keras.layers.Conv2D(4, 1)(x)))
    with pytest.raises(UnsupportedLayerError, match=r"InstanceNorm2d with track_running_stats=True normalizes with "
                                                    "running statistics"):
        port(t, k)
