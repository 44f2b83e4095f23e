"""Keras 3 side of every supported layer: read a layer into a neutral spec, write a spec into a layer."""

from __future__ import annotations

import functools

import keras
import numpy as np

from bnport.adapters import kinds as kind_defs
from bnport.adapters.keras import batchnorm as keras_bn
from bnport.adapters.keras.batchnorm import variable_to_numpy
from bnport.adapters.keras.compat import keras as keras_compat
from bnport.core import padding as pad
from bnport.core.layers import AnySpec, LayerSpec, Write, check_shape
from bnport.core.layers import check_droppable as _check_droppable
from bnport.core.spec import BatchNormSpec, dtype_name
from bnport.errors import IncompatibleLayerError, UnsupportedLayerError

L = keras.layers
kind_defs.definitions()  # every built-in kind declared (bnport/adapters/kinds/)
_CONV = (L.Conv1D, L.Conv2D, L.Conv3D)
_DEPTHWISE = (L.DepthwiseConv1D, L.DepthwiseConv2D)


def _hollow(variable) -> np.ndarray:
    """A read-only array of the variable's shape and dtype that holds no memory (for shape-only reads)."""
    return _hollow_array(variable.dtype, keras_compat.variable_shape(variable))


@functools.lru_cache(maxsize=4096)
def _hollow_array(dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)  # read-only, so one per shape serves every layer


def _hollow_batchnorm(layer) -> BatchNormSpec:
    """A BatchNorm spec with the layer's settings and shapes but no values (a destination about to be written)."""
    if not layer.built:
        return keras_bn.from_keras(layer)  # raises the usual error
    keras_bn.data_format(layer)
    vectors = {"gamma": layer.gamma if layer.scale else None, "beta": layer.beta if layer.center else None,
               "running_mean": layer.moving_mean, "running_var": layer.moving_variance}
    arrays = {k: _hollow(v) for k, v in vectors.items() if v is not None}
    return BatchNormSpec(channels=int(arrays["running_mean"].shape[0]), epsilon=float(layer.epsilon),
                         momentum=float(layer.momentum), dtype=dtype_name(arrays["running_mean"]),
                         input_ndims=(keras_bn.built_ndim(layer),), **arrays)


def _reader(layer):
    definition = kind_defs.keras_definition(layer)
    return None if definition is None else definition.keras_read


def supported(layer) -> bool:
    """Whether bnport can read and write this layer."""
    return isinstance(layer, L.BatchNormalization) or _reader(layer) is not None


def holds_weights(layer) -> bool:
    """Whether the layer itself owns variables (nested models are walked, not counted)."""
    return not isinstance(layer, keras.Model) and bool(getattr(layer, "weights", None))


def read(layer, *, flatten_from: tuple[int, ...] | None = None, hollow: bool = False) -> AnySpec:
    """The neutral spec of a supported, built layer (PyTorch convention; arrays may be views).

    ``flatten_from``: for a Dense fed by a Flatten of a channels-last feature map, that map's shape
    (*spatial, C); the kernel's rows are put in PyTorch's (C, *spatial) order.
    ``hollow``: shapes and dtypes only (arrays that hold no memory), for a destination about to be written.
    """
    if isinstance(layer, L.BatchNormalization):
        return _hollow_batchnorm(layer) if hollow else keras_bn.from_keras(layer)
    reader = _reader(layer)
    if reader is None:
        raise UnsupportedLayerError(f"bnport has no mapping for Keras {type(layer).__name__} '{layer.name}'")
    if not layer.built:
        raise IncompatibleLayerError(f"Keras layer '{layer.name}' is not built; build the model first")
    get = _hollow if hollow else variable_to_numpy
    return reader(layer, get, flatten_from)


def _targets(layer, spec: LayerSpec, flatten_from, name: str) -> list[tuple[str, object, np.ndarray | None]]:
    return kind_defs.keras_definition(layer).keras_targets(layer, spec, flatten_from, name)


def prepare(spec: AnySpec, layer, name: str, *, flatten_from: tuple[int, ...] | None = None,
            own: AnySpec | None = None) -> Write:
    """Check that a spec fits a built Keras layer (kind, shapes, dtypes) and return what writing it sets.

    Nothing is written: :func:`bnport.adapters.keras.writes.commit` does that, for many layers at once.
    ``flatten_from``: for a Dense fed by a Flatten of a channels-last feature map, that map's shape
    (*spatial, C) without the batch axis; its rows are permuted from PyTorch's (C, *spatial) order.
    ``own``: the layer's own spec when already read (a port's plan holds it), read here otherwise.
    """
    if isinstance(spec, BatchNormSpec):
        settings, values = keras_bn.prepare(spec, layer)
        return Write(layer, settings, values)
    own = own if own is not None else read(layer, hollow=True)
    if own.kind != spec.kind:
        raise IncompatibleLayerError(f"layer '{name}' is a {own.kind} but the source is a {spec.kind}")
    write = Write(layer)
    for key, variable, value in _targets(layer, spec, flatten_from, name):
        if variable is None:
            _check_droppable(name, key, value)
            continue
        shape = keras_compat.variable_shape(variable)
        if value is None:
            value = np.full(shape, 1.0 if key in ("gamma", "kernel") else 0.0, variable.dtype)
        check_shape(name, key, value.shape, shape)
        if dtype_name(value) != variable.dtype:
            raise IncompatibleLayerError(f"layer '{name}': {key} is {variable.dtype} but the source is {value.dtype}")
        if value.dtype.kind == "f":
            keras_bn.check_precision(variable.dtype, f"layer '{name}': {key}")
        write.values.append((variable, value))
    if "epsilon" in spec.attrs and hasattr(layer, "epsilon"):
        write.settings["epsilon"] = float(spec.attrs["epsilon"])
    return write


def settings(layer) -> dict[str, object]:
    """Settings a weights file does not store (epsilon; momentum, in PyTorch's convention, for BatchNorm)."""
    out = {}
    if hasattr(layer, "epsilon"):
        out["epsilon"] = float(layer.epsilon)
    if isinstance(layer, L.BatchNormalization):
        out["momentum"] = round(1.0 - float(layer.momentum), 15)
    return out


#: layers that transform a model's raw input before its first weight-holding layer (PyTorch models leave this to
#: the data pipeline: torchvision's transforms, timm's ``resolve_data_config``)
PREPROCESSING = (L.Rescaling, L.Normalization)


def is_preprocessing(layer) -> bool:
    """Whether ``layer`` is an input preprocessing layer (:data:`PREPROCESSING`)."""
    return isinstance(layer, PREPROCESSING)


def preprocessing_step(layer, *, hollow: bool = False) -> str | None:
    """What a preprocessing layer does, in a few words; None when it is the identity (scale 1 and offset 0; mean 0
    and variance 1). A layer whose values cannot be read (a model built without values) is described as such."""
    if isinstance(layer, L.Rescaling):
        scale, offset = np.asarray(layer.scale, np.float64), np.asarray(layer.offset, np.float64)
        if np.all(scale == 1) and np.all(offset == 0):
            return None
        return f"Keras {layer.name}: Rescaling(scale={_short(scale)}, offset={_short(offset)})"
    try:
        mean, var = (np.asarray(keras.ops.convert_to_numpy(v), np.float64) for v in (layer.mean, layer.variance))
    except Exception:
        return f"Keras {layer.name}: Normalization (its mean and variance are not readable here)"
    if np.all(mean == 0) and np.all(var == 1):
        return None
    what = "x * sqrt(variance) + mean" if getattr(layer, "invert", False) else "(x - mean) / sqrt(variance)"
    return f"Keras {layer.name}: Normalization {what}, mean={_short(mean)}, variance={_short(var)}"


def _short(values: np.ndarray) -> str:
    flat = values.reshape(-1)
    shown = ", ".join(f"{v:.4g}" for v in flat[:3]) + (", ..." if flat.size > 3 else "")
    return shown if flat.size == 1 else f"[{shown}]"


def zero_padding(layer) -> pad.Sides:
    """(before, after) per spatial axis of a ``ZeroPadding1D/2D/3D`` layer."""
    value = layer.padding
    if isinstance(layer, L.ZeroPadding1D):
        return (tuple(int(v) for v in value),)
    return tuple((int(b), int(a)) for b, a in value)


def padding(layer, explicit: pad.Sides | None) -> pad.Padding | None:
    """The zero padding a convolution's input gets (``explicit``: from zero-padding layers feeding it directly);
    None for other layers."""
    if not isinstance(layer, (*_CONV, *_DEPTHWISE)):
        return None
    rank = len(layer.kernel_size)
    explicit = explicit or pad.none(rank)
    how = f"ZeroPadding{rank}D {pad.text(explicit)} before " if any(map(any, explicit)) else ""
    if layer.padding == "causal":
        k, d = layer.kernel_size[0], layer.dilation_rate[0]
        return pad.Padding(pad.add(explicit, (((k - 1) * d, 0),)), (0,), False, how + "padding='causal'")
    return pad.Padding(explicit, (0,) * rank, layer.padding == "same", how + f"padding='{layer.padding}'")


def activation(layer) -> str | None:
    """The Keras name of the activation a layer applies inside itself (``Dense(activation="softmax")``); None when
    it has none or it is linear."""
    fn = getattr(layer, "activation", None)
    if fn is None or isinstance(layer, L.Activation):
        return None
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return None if name == "linear" else name


def why_unsupported(layer) -> str:
    """A few words on why a weight-holding Keras layer has no mapping."""
    name = type(layer).__name__
    inner = [sub for sub in getattr(layer, "_layers", []) if getattr(sub, "weights", None)]
    if inner:
        return (f"{name}: a layer holding {len(inner)} other layers' weights, whose call bnport cannot see into to "
                "tell how they connect")
    return name
