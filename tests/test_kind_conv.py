"""Kind ``conv``: Conv1d/2d/3d <-> Conv1D/2D/3D (groups, bias, stride, dilation) and DepthwiseConv1D/2D, both ways."""

from __future__ import annotations

import numpy as np
import pytest
from kinds import check
from torch import nn

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)

DIRECTIONS = ["torch->keras", "keras->torch"]


def _pair(rank, channels, filters, kernel, *, groups=1, bias=True, stride=1, dilation=1):
    import keras

    padding = dilation * (kernel // 2) if stride == 1 else 0  # Keras "same" (stride 1, odd kernel) or "valid"
    conv = getattr(nn, f"Conv{rank}d")(channels, filters, kernel, stride=stride, padding=padding, dilation=dilation,
                                       groups=groups, bias=bias)
    x = keras.Input((*[9] * rank, channels))
    y = getattr(keras.layers, f"Conv{rank}D")(filters, kernel, strides=stride, dilation_rate=dilation,
                                              padding="same" if stride == 1 else "valid", groups=groups,
                                              use_bias=bias)(x)
    return nn.Sequential(conv).eval(), keras.Model(x, y)


def _input(rank, channels, seed=1):
    return np.random.default_rng(seed).standard_normal((2, channels, *[9] * rank)).astype("float32")


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_conv(rank, groups, bias, direction):
    t, k = _pair(rank, 4, 6, 3, groups=groups, bias=bias)
    check(t, k, _input(rank, 4), direction, products=4 // groups * 3**rank)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("rank, stride, dilation", [(1, 2, 1), (2, 2, 1), (1, 1, 2), (2, 1, 2)])
def test_conv_stride_and_dilation(rank, stride, dilation, direction):
    t, k = _pair(rank, 3, 5, 3, stride=stride, dilation=dilation)
    check(t, k, _input(rank, 3), direction, products=3 * 3**rank)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("rank", [1, 2])
def test_depthwise(rank, multiplier, direction):
    import keras

    t = nn.Sequential(getattr(nn, f"Conv{rank}d")(4, 4 * multiplier, 3, padding=1, groups=4)).eval()
    x = keras.Input((*[9] * rank, 4))
    k = keras.Model(x, getattr(keras.layers, f"DepthwiseConv{rank}D")(3, depth_multiplier=multiplier,
                                                                       padding="same")(x))
    check(t, k, _input(rank, 4), direction, products=3**rank)
