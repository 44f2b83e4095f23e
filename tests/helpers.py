"""Builders of real PyTorch and Keras BatchNorm layers with trained-looking state, for the tests."""

from __future__ import annotations

import io
import os

import numpy as np

#: Keras on JAX in JAX's default 32-bit mode: float64 variables are stored as float32 (bnport refuses to port into
#: them: IncompatibleLayerError), and a float64 Keras layer cannot be built at all
JAX_32_BIT = os.environ.get("KERAS_BACKEND") == "jax" and os.environ.get("JAX_ENABLE_X64", "").lower() not in (
    "1", "true")


def trained_stats(channels: int, seed: int, dtype: str = "float32") -> dict[str, np.ndarray]:
    """Non-default BN vectors, as after training: gamma around 1, beta and mean around 0, var in (0.05, 4)."""
    rng = np.random.default_rng(seed)
    return {
        "gamma": (1.0 + 0.3 * rng.standard_normal(channels)).astype(dtype),
        "beta": (0.2 * rng.standard_normal(channels)).astype(dtype),
        "running_mean": rng.standard_normal(channels).astype(dtype),
        "running_var": rng.uniform(0.05, 4.0, channels).astype(dtype),
    }


TORCH_CLASS_FOR_NDIM = {2: "BatchNorm1d", 3: "BatchNorm1d", 4: "BatchNorm2d", 5: "BatchNorm3d"}


def torch_bn(ndim: int, channels: int, *, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
             track: bool = True, seed: int = 0, dtype: str = "float32", nbt: int = 7):
    """A real PyTorch BatchNorm module of the class for ``ndim``, in eval mode, with trained-looking state."""
    import torch

    cls = getattr(torch.nn, TORCH_CLASS_FOR_NDIM[ndim])
    m = cls(channels, eps=eps, momentum=momentum, affine=affine, track_running_stats=track,
            dtype=getattr(torch, dtype))
    stats = trained_stats(channels, seed, dtype)
    with torch.no_grad():
        if affine:
            m.weight.copy_(torch.from_numpy(stats["gamma"]))
            m.bias.copy_(torch.from_numpy(stats["beta"]))
        if track:
            m.running_mean.copy_(torch.from_numpy(stats["running_mean"]))
            m.running_var.copy_(torch.from_numpy(stats["running_var"]))
            m.num_batches_tracked.fill_(nbt)
    return m.eval()


def keras_bn(ndim: int, channels: int, *, eps: float = 1e-3, momentum: float = 0.99, center: bool = True,
             scale: bool = True, channels_first: bool = False, seed: int = 0, dtype: str = "float32"):
    """A real built Keras BatchNormalization layer with trained-looking state."""
    import keras

    layer = keras.layers.BatchNormalization(axis=1 if channels_first else -1, epsilon=eps, momentum=momentum,
                                            center=center, scale=scale, dtype=dtype)
    spatial = (None,) * (ndim - 2)
    layer.build((None, channels, *spatial) if channels_first else (None, *spatial, channels))
    stats = trained_stats(channels, seed, dtype)
    if scale:
        layer.gamma.assign(stats["gamma"])
    if center:
        layer.beta.assign(stats["beta"])
    layer.moving_mean.assign(stats["running_mean"])
    layer.moving_variance.assign(stats["running_var"])
    return layer


def torch_tensors(module) -> dict[str, np.ndarray]:
    """Every tensor of a module's state dict as numpy (for bit-exact comparison)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def keras_tensors(layer) -> dict[str, np.ndarray]:
    """Every variable of a Keras layer as numpy, by variable name."""
    return {v.name: np.array(v.numpy()) for v in layer.weights}


def assert_bits_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """Same keys, dtypes, shapes and bytes."""
    assert sorted(a) == sorted(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert a[k].tobytes() == b[k].tobytes(), k


def numpy(value) -> np.ndarray:
    """A Keras output or variable as a numpy array, on any backend (on PyTorch's a tensor may require grad)."""
    import keras

    return keras.ops.convert_to_numpy(value)


class Terminal(io.StringIO):
    """A text buffer that says it is a terminal, as bnport's progress lines ask before they draw."""

    def isatty(self) -> bool:
        return True


def terminal_stderr(monkeypatch) -> Terminal:
    """Point the stderr bnport's progress lines write to at a fresh :class:`Terminal` (undone after the test)."""
    from bnport.workflows import progress

    term = Terminal()
    monkeypatch.setattr(progress.sys, "stderr", term)
    return term


def replay_tf2onnx_names():
    """A function that puts tf2onnx's name counter back where it is now, for comparing two conversions node for node.

    tf2onnx names the nodes it makes from one process-wide counter (``tf2onnx.utils.INTERNAL_NAME``), and the order of
    the nodes it emits follows those names: its rewriters walk sets of node names, which iterate in string-hash order.
    The same conversion started from another count can emit its nodes in another order (measured on the ``conv1d``
    fixture with PYTHONHASHSEED=0: of two identical conversions back to back, the second emits another op order when
    the first starts from count 59, 842 or 958 of 1-3000), so the second of two conversions compared op for op starts
    from the count the first started from. The counter only moves forward again from there.
    """
    from tf2onnx import utils

    start = utils.INTERNAL_NAME

    def replay() -> None:
        utils.INTERNAL_NAME = start

    return replay
