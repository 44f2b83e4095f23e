"""Kind ``dense``: Linear <-> Dense (bias), alone and after a Flatten of a feature map (rows permuted), both ways."""

from __future__ import annotations

import numpy as np
import pytest
from kinds import check
from torch import nn

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)

DIRECTIONS = ["torch->keras", "keras->torch"]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("bias", [True, False])
def test_dense(bias, direction):
    import keras

    t = nn.Sequential(nn.Linear(7, 5, bias=bias)).eval()
    x = keras.Input((7,))
    k = keras.Model(x, keras.layers.Dense(5, use_bias=bias)(x))
    check(t, k, np.random.default_rng(1).standard_normal((3, 7)).astype("float32"), direction, products=7)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_dense_after_flatten(rank, direction):
    import keras

    t = nn.Sequential(getattr(nn, f"Conv{rank}d")(2, 3, 1), nn.Flatten(), nn.Linear(3 * 4**rank, 5)).eval()
    x = keras.Input((*[4] * rank, 2))
    y = keras.layers.Flatten()(getattr(keras.layers, f"Conv{rank}D")(3, 1)(x))
    k = keras.Model(x, keras.layers.Dense(5)(y))
    data = np.random.default_rng(1).standard_normal((2, 2, *[4] * rank)).astype("float32")
    check(t, k, data, direction, products=3 * 4**rank + 2)
