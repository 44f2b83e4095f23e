"""Kind ``batchnorm``: BatchNorm1d/2d/3d <-> BatchNormalization (affine or not, epsilon), both ways."""

from __future__ import annotations

import numpy as np
import pytest
from kinds import check
from torch import nn

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)


@pytest.mark.parametrize("direction", ["torch->keras", "keras->torch"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("rank", [0, 1, 2, 3])
def test_batchnorm(rank, affine, direction):
    import keras

    cls = nn.BatchNorm1d if rank <= 1 else getattr(nn, f"BatchNorm{rank}d")
    t = nn.Sequential(cls(4, eps=1e-5, affine=affine)).eval()
    x = keras.Input((*[5] * rank, 4))
    k = keras.Model(x, keras.layers.BatchNormalization(epsilon=1e-3, center=affine, scale=affine)(x))
    data = np.random.default_rng(1).standard_normal((3, 4, *[5] * rank)).astype("float32")
    check(t, k, data, direction, products=1)  # the epsilon is the source's after the port, either way
