"""Keras's backend ops as bnport traces them for an export: the private backend functions it replaces meanwhile.

Each replacement gives the graph Keras's own function gives, bit for bit (tested), faster or in a form the
exporter takes; each acts in the exporting thread only, through :class:`bnport.adapters.swaps.Swap`, and where the
Keras installed lacks the function (or its arguments changed) the export traces Keras's own. What each one replaces
is listed in :data:`bnport.adapters.keras.compat.keras.PRIVATE`, whose ``probe`` checks it.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect

import keras

from bnport.adapters.swaps import Replacement, Swap

# -- convolutions (TensorFlow backend) --------------------------------------------------------------------------

def _tf_nn():
    """Keras's TensorFlow-backend ``nn`` module, if it has the parts :func:`convolutions_without_xla` replaces."""
    try:
        from keras.src.backend.tensorflow import nn as tf_nn
    except ImportError:
        return None
    return tf_nn if callable(getattr(tf_nn, "conv", None)) and callable(
        getattr(tf_nn, "_convert_data_format", None)) else None


def _conv_without_xla(original):
    import tensorflow as tf
    from keras.src import backend

    tf_nn = _tf_nn()

    def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
        fmt = tf_nn._convert_data_format(backend.standardize_data_format(data_format), len(inputs.shape))
        return tf.nn.convolution(inputs, kernel, strides, padding.upper(), data_format=fmt, dilations=dilation_rate)

    return conv


def convolutions_without_xla() -> contextlib.AbstractContextManager:
    """Keras convolutions traced as plain ``tf.nn.convolution`` ops while exporting (in this thread only).

    Keras's TensorFlow backend runs grouped convolutions (and channels-first 3-D ones) inside an XLA-compiled
    ``tf.function`` because TensorFlow's CPU kernels for them are broken; tf2onnx cannot convert that call. The
    exported graph only needs the op itself, which ONNX Runtime executes. On a Keras without that function the
    export goes on with Keras's own convolution (a grouped one then fails to export, said so by tf2onnx).
    """
    tf_nn = _tf_nn()
    if tf_nn is None:
        return contextlib.nullcontext()
    return Swap("keras", (Replacement(tf_nn, "conv", _conv_without_xla),))


# -- BatchNorm (TensorFlow and PyTorch backends) -----------------------------------------------------------------

_BATCHNORM_PARAMETERS = ["x", "mean", "variance", "axis", "offset", "scale", "epsilon"]


def _batchnorm_nn(backend: str):
    """Keras's ``nn`` module of ``backend``, if its ``batch_normalization`` takes the arguments
    :func:`batchnorm_without_reshapes` passes on."""
    try:
        nn = importlib.import_module(f"keras.src.backend.{backend}.nn")
        parameters = list(inspect.signature(nn.batch_normalization).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return nn if parameters == _BATCHNORM_PARAMETERS else None


def _tf_batchnorm_nn():
    return _batchnorm_nn("tensorflow")


def _torch_batchnorm_nn():
    return _batchnorm_nn("torch")


def _last_axis_as_minus_one(original):
    def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
        rank = getattr(x.shape, "rank", None)
        if isinstance(axis, int) and rank is not None and axis == rank - 1:
            axis = -1
        return original(x, mean, variance, axis, offset, scale, epsilon)

    return batch_normalization


def _vectors_kept_torch(original):
    import torch
    from torch.overrides import TorchFunctionMode

    class VectorsKept(TorchFunctionMode):
        """``torch.reshape`` of one of the 1-D ``vectors`` to ``[1, ..., 1, n]`` of length ``rank`` answered by the
        vector itself (function modes are thread-local). ``n`` is not compared: the reshape of a 1-D vector to that
        shape succeeds only when ``n`` is its length, and while tracing ``n`` is a traced value, whose comparison the
        tracer would record."""

        def __init__(self, vectors: list, rank: int):
            super().__init__()
            self.vectors, self.rank = vectors, rank

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.reshape and not kwargs and len(args) == 2 and any(args[0] is v for v in self.vectors):
                shape = args[1]
                if isinstance(shape, (list, tuple)) and len(shape) == self.rank and all(
                        type(d) is int and d == 1 for d in shape[:-1]):
                    return args[0]
            return func(*args, **(kwargs or {}))

    def batch_normalization(x, mean, variance, axis, offset=None, scale=None, epsilon=1e-3):
        vectors = [v for v in (mean, variance, offset, scale) if v is not None]
        rank = x.ndim if isinstance(x, torch.Tensor) else 0
        if rank == 0 or axis not in (-1, rank - 1) or not all(isinstance(v, torch.Tensor) and v.ndim == 1
                                                              for v in vectors):
            return original(x, mean, variance, axis, offset, scale, epsilon)
        with VectorsKept(vectors, rank):
            return original(x, mean, variance, axis, offset, scale, epsilon)

    return batch_normalization


def batchnorm_without_reshapes() -> contextlib.AbstractContextManager:
    """Keras BatchNorm over the last axis traced with its vectors broadcast, not reshaped, while exporting (in this
    thread only; TensorFlow and PyTorch backends).

    Keras reshapes the mean, variance, offset and scale to ``[1, ..., 1, C]``: on TensorFlow for any axis but -1
    (keras.applications gives 3), on PyTorch for every axis. A last axis gives the same values broadcasting the
    ``[C]`` vectors, but four reshapes per layer to trace and convert: on TensorFlow a third of a DenseNet-121's
    graph; on PyTorch each reshape's shape holds the traced ``mean.shape[0]``, so each becomes eight ONNX nodes (of a
    tapped ResNet-50's 3,133 nodes, 2,174). Keras's own function runs in both cases: on TensorFlow a last axis is
    passed on as -1, for which it broadcasts; on PyTorch its reshapes of those four vectors to ``[1, ..., 1, C]``
    return the vectors (a ``TorchFunctionMode`` for the call). Bit-identical outputs (tested); an unknown Keras, or
    another backend, traces its own.
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        nn, make = _tf_batchnorm_nn(), _last_axis_as_minus_one
    elif backend == "torch":
        nn, make = _torch_batchnorm_nn(), _vectors_kept_torch
    else:
        nn = None
    if nn is None:
        return contextlib.nullcontext()
    return Swap("keras", (Replacement(nn, "batch_normalization", make),))


# -- convolutions (PyTorch backend) -----------------------------------------------------------------------------

def _torch_nn():
    """Keras's PyTorch-backend ``nn`` module, if it has the part :func:`convolutions_in_default_layout` replaces."""
    try:
        from keras.src.backend.torch import nn as torch_nn
    except ImportError:
        return None
    return torch_nn if callable(getattr(torch_nn, "_maybe_convert_to_channels_last", None)) else None


def _unchanged(original):
    def keep(tensor):
        return tensor

    return keep


def convolutions_in_default_layout() -> contextlib.AbstractContextManager:
    """Keras's PyTorch-backend convolution traced without its memory-layout hint while exporting (this thread only).

    Before each convolution Keras asks PyTorch for a channels-last memory layout (``tensor.contiguous(memory_format=
    torch.channels_last_3d)`` for a 3-D one): a speed hint that changes no value, which PyTorch's TorchScript ONNX
    exporter refuses for 3-D tensors ("onnx memory_format support is not implemented"). An ONNX graph has no memory
    layouts, so the export leaves the tensor as it is. On a Keras without that function the export goes on with
    Keras's own convolution (a 3-D one then fails to export, said so by PyTorch).
    """
    torch_nn = _torch_nn()
    if torch_nn is None:
        return contextlib.nullcontext()
    return Swap("keras", (Replacement(torch_nn, "_maybe_convert_to_channels_last", _unchanged),))
