"""A model over 2 GiB (two 16384x16384 Linear layers and a BatchNorm), for tests/test_large_models.py."""

from __future__ import annotations

N = 16384


def torch_large():
    import torch
    from torch import nn

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(N, N), nn.ReLU(), nn.BatchNorm1d(N), nn.Linear(N, N))
    with torch.no_grad():
        model[2].running_mean.normal_()
        model[2].running_var.uniform_(0.5, 2.0)
    return model.eval()


def keras_large():
    import keras

    i = keras.Input((N,))
    x = keras.layers.BatchNormalization(epsilon=1e-5, name="bn")(keras.layers.ReLU()(keras.layers.Dense(N)(i)))
    return keras.Model(i, keras.layers.Dense(N, name="out")(x))
