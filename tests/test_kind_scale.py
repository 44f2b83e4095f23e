"""Kind ``scale``: a per-channel scale parameter multiplied in ``forward`` (torchvision ConvNeXt's ``layer_scale``,
held as (C,) or (C, 1, ..., 1)) <-> keras.applications ConvNeXt's ``LayerScale``, both ways."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kinds import check
from torch import nn

pytestmark = pytest.mark.backends  # every Keras backend (conftest.py)


class Scaled(nn.Module):
    """A 1x1 convolution and a per-channel scale, the scale held as ConvNeXt holds it for its input layout."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1) if rank == 2 else nn.Linear(3, 4)
        self.layer_scale = nn.Parameter(torch.ones(4, 1, 1) if rank == 2 else torch.ones(4))

    def forward(self, x):
        return self.layer_scale * self.conv(x)


@pytest.mark.parametrize("direction", ["torch->keras", "keras->torch"])
@pytest.mark.parametrize("rank", [0, 2])
def test_scale(rank, direction):
    import keras
    from keras.src.applications.convnext import LayerScale  # keras.applications' own class (no public path)

    x = keras.Input((*[5] * rank, 3))
    y = (keras.layers.Conv2D(4, 1) if rank == 2 else keras.layers.Dense(4))(x)
    k = keras.Model(x, LayerScale(1e-6, 4)(y))
    data = np.random.default_rng(1).standard_normal((2, 3, *[5] * rank)).astype("float32")
    check(Scaled(rank).eval(), k, data, direction, products=3)
