"""Kinds ``embedding`` (Embedding <-> Embedding, integer inputs) and ``prelu`` (PReLU <-> PReLU with one alpha per
channel, shared over the other axes), both ways."""

from __future__ import annotations

import numpy as np
import pytest
from kinds import check
from torch import nn

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)

DIRECTIONS = ["torch->keras", "keras->torch"]


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_embedding(direction):
    import keras

    t = nn.Sequential(nn.Embedding(11, 4)).eval()
    x = keras.Input((5,), dtype="int64")
    k = keras.Model(x, keras.layers.Embedding(11, 4)(x))
    ids = np.random.default_rng(1).integers(0, 11, (3, 5)).astype("int64")
    check(t, k, ids, direction, products=1, channels=False)  # (N, L, E) in both frameworks


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("rank", [0, 1, 2])
def test_prelu(rank, direction):
    import keras

    t = nn.Sequential(nn.PReLU(4)).eval()
    x = keras.Input((*[5] * rank, 4))
    k = keras.Model(x, keras.layers.PReLU(shared_axes=list(range(1, rank + 1)) or None)(x))
    data = np.random.default_rng(1).standard_normal((3, 4, *[5] * rank)).astype("float32")
    check(t, k, data, direction, products=1)
