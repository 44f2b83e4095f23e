"""Shared by the per-kind test modules (tests/test_kind_*.py): one layer of a kind, defined in each framework with
the same settings, trained-looking weights on the source side, ported in one direction, then checked two ways:

* natively: the PyTorch module and the Keras model run on the same input (moved to each one's layout) and agree
  within a float32 bound derived from the layer's arithmetic (below);
* through bnport.verify, per layer: every pair compared and ``ok``.

The expected outcome (agree) comes from the two definitions, which compute the same function once the weights are
carried over; the native check does not use bnport's tolerance or comparison.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from bnport.errors import ExportError
from bnport.workflows.porting import port
from bnport.workflows.verification import verify

EPS32 = float(np.finfo(np.float32).eps)


def channels_last(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 1, -1)) if x.ndim > 2 else x


def channels_first(y: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(y, -1, 1)) if y.ndim > 2 else y


def seeded(torch_module, seed: int = 0):
    """Trained-looking values for every floating parameter and buffer (variances positive), in eval mode."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*torch_module.named_parameters(), *torch_module.named_buffers()]:
            if not tensor.dtype.is_floating_point:
                continue
            value = torch.randn(tensor.shape, generator=g)
            if name.endswith("running_var"):
                value = value.abs() + 0.2
            elif name.endswith("weight") and tensor.ndim == 1:
                value = 1.0 + 0.3 * value
            elif tensor.ndim > 1:
                value = value / np.sqrt(max(1, int(np.prod(tensor.shape[1:]))))
            else:
                value = 0.2 * value
            tensor.copy_(value)
    return torch_module.eval()


def seeded_keras(model, seed: int = 0):
    """Trained-looking values for every Keras variable (variances positive)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "int" in str(variable.dtype):
            continue
        value = rng.standard_normal(shape)
        if "variance" in variable.path:
            value = np.abs(value) + 0.2
        elif "gamma" in variable.path or "alpha" in variable.path:
            value = 1.0 + 0.3 * value
        elif len(shape) > 1:
            value = value / np.sqrt(max(1, int(np.prod(shape[:-1]))))
        else:
            value = 0.2 * value
        variable.assign(value.astype(str(variable.dtype)))
    return model


def bound(reference: np.ndarray, products: int) -> float:
    """How far two correct float32 evaluations of a layer may differ: each output sums ``products`` terms (a
    rounding each, random signs: sqrt(K) roundings), plus a few for the bias, normalization or activation, for each
    of the two implementations, relative to the largest output."""
    return 2 * (np.sqrt(products) + 8) * EPS32 * float(np.max(np.abs(reference)) or 1.0)


def run_both(t, k, x: np.ndarray, channels: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The PyTorch output and the Keras output (moved to PyTorch's layout when the layer's output has a channel
    axis) on the channels-first input ``x``."""
    import torch

    with torch.no_grad():
        yt = t(torch.from_numpy(x)).numpy()
    import keras

    yk = keras.ops.convert_to_numpy(k(channels_last(x), training=False))
    return yt, channels_first(yk) if channels else yk


def check(t, k, x: np.ndarray, direction: str, products: int, *, seed: int = 0, channels: bool = True) -> None:
    """Seed the source, port it into the other, and check natively and through verify (see the module docstring)."""
    if direction == "torch->keras":
        seeded(t, seed)
        port(t, k)
    else:
        seeded_keras(k, seed)
        port(k, t)
        t.eval()
    yt, yk = run_both(t, k, x, channels)
    assert yt.shape == yk.shape
    err, allowed = float(np.max(np.abs(yt - yk))), bound(yt, products)
    assert err <= allowed, f"native outputs differ by {err:.3g} > {allowed:.3g}"
    if os.environ.get("KERAS_BACKEND") == "jax" and has_3d_convolution(k):
        # jax2onnx 0.17 lowers 1-D and 2-D convolutions only (its conv plugin has no 3-D layouts): the port above is
        # checked natively; verify must say why it cannot export, not fail somewhere inside jax2onnx
        with pytest.raises(ExportError, match="1-D and 2-D convolutions only"):
            verify(t, k, inputs=x, per_layer=True)
        return
    report = verify(t, k, inputs=x, per_layer=True)
    assert report.ok, str(report)
    assert report.rows and report.not_compared == []


def has_3d_convolution(model) -> bool:
    """Whether a Keras model holds a 3-D convolution (plain or transposed)."""
    import keras

    kinds = (keras.layers.Conv3D, keras.layers.Conv3DTranspose)
    return any(isinstance(layer, kinds) for layer in model._flatten_layers())
