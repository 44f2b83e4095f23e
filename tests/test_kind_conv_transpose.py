"""Kind ``conv_transpose``: ConvTranspose1d/2d/3d <-> Conv1D/2D/3DTranspose (stride, bias), both ways."""

from __future__ import annotations

import numpy as np
import pytest
from kinds import check
from torch import nn

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)


@pytest.mark.parametrize("direction", ["torch->keras", "keras->torch"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv_transpose(rank, stride, bias, direction):
    import keras

    t = nn.Sequential(getattr(nn, f"ConvTranspose{rank}d")(4, 3, 3, stride=stride, bias=bias)).eval()
    x = keras.Input((*[5] * rank, 4))
    k = keras.Model(x, getattr(keras.layers, f"Conv{rank}DTranspose")(3, 3, strides=stride, padding="valid",
                                                                       use_bias=bias)(x))
    data = np.random.default_rng(1).standard_normal((2, 4, *[5] * rank)).astype("float32")
    check(t, k, data, direction, products=4 * 3**rank)
