"""Keras 3 side of the BatchNorm mapping: ``keras.layers.BatchNormalization``.

The only module of the BatchNorm core that imports keras; imported lazily by :mod:`bnport.workflows.batchnorm`.
"""

from __future__ import annotations

import keras
import numpy as np

from bnport.adapters.keras.compat import keras as keras_compat
from bnport.core.spec import BatchNormSpec, dtype_name
from bnport.errors import IncompatibleLayerError, UnsupportedLayerError, warn

CHANNELS_LAST = "channels_last"
CHANNELS_FIRST = "channels_first"


def variable_to_numpy(variable: keras.Variable) -> np.ndarray:
    """A Keras variable's value as a numpy array (a copy: later assignments do not change it)."""
    return keras.ops.convert_to_numpy(variable.value)


def _check_is_batchnorm(layer: object, what: str) -> None:
    if not isinstance(layer, keras.layers.BatchNormalization):
        raise UnsupportedLayerError(
            f"{what} must be a keras.layers.BatchNormalization. "
            f"Received: {type(layer).__module__}.{type(layer).__name__}"
        )
    if getattr(layer, "renorm", False):
        raise UnsupportedLayerError(
            f"Keras layer '{layer.name}' uses batch renormalization (renorm=True), which PyTorch "
            "BatchNorm has no equivalent for. Received: renorm=True"
        )


def built_ndim(layer: keras.layers.BatchNormalization) -> int | None:
    """Input rank the layer was built for, None when it is not built."""
    if not layer.built or layer.input_spec is None:
        return None
    return layer.input_spec.ndim


def data_format(layer: keras.layers.BatchNormalization) -> str:
    """``channels_last`` or ``channels_first`` for a layer whose axis is a PyTorch channel axis.

    Raises:
        UnsupportedLayerError: the axis is neither the last axis nor axis 1 (PyTorch normalizes dim 1).
    """
    ndim = built_ndim(layer)
    axis = layer.axis
    if axis == -1 or (ndim is not None and axis == ndim - 1):
        return CHANNELS_LAST
    if axis == 1 or (ndim is not None and axis == 1 - ndim):
        return CHANNELS_FIRST
    raise UnsupportedLayerError(
        f"Keras layer '{layer.name}' normalizes axis {axis} of a rank-{ndim} input; PyTorch BatchNorm "
        "normalizes the channel axis only, which is axis -1 (channels_last) or 1 (channels_first). "
        f"Received: axis={axis}"
    )


def from_keras(layer: keras.layers.BatchNormalization) -> BatchNormSpec:
    """Read a built Keras ``BatchNormalization`` layer into a :class:`~bnport.core.spec.BatchNormSpec`.

    The layer's own ``epsilon`` and ``momentum`` are carried exactly. Keras keeps no update counter, so
    ``num_batches_tracked`` is None. The input rank is the one the layer was built for.
    """
    _check_is_batchnorm(layer, "from_keras's layer")
    if not layer.built:
        raise IncompatibleLayerError(
            f"Keras layer '{layer.name}' is not built, so it holds no weights yet; call it on an input or "
            "call layer.build(input_shape) first"
        )
    data_format(layer)
    variables = {
        "gamma": layer.gamma if layer.scale else None,
        "beta": layer.beta if layer.center else None,
        "running_mean": layer.moving_mean,
        "running_var": layer.moving_variance,
    }
    arrays = {k: variable_to_numpy(v) for k, v in variables.items() if v is not None}
    return BatchNormSpec(
        channels=int(arrays["running_mean"].shape[0]),
        epsilon=float(layer.epsilon),
        momentum=float(layer.momentum),
        dtype=dtype_name(arrays["running_mean"]),
        input_ndims=(built_ndim(layer),),
        **arrays,
    )


def keras_momentum(spec: BatchNormSpec) -> float:
    """The Keras momentum for a spec; warns and continues PyTorch's cumulative average when it has none.

    PyTorch ``momentum=None`` averages all batches so far: after ``n`` batches the next update keeps
    ``n / (n + 1)`` of the running value. Keras has only a fixed momentum, so bnport uses ``n / (n + 1)``
    with ``n = num_batches_tracked``: the next update is PyTorch's exactly, later ones weigh new batches
    more than PyTorch would. Inference is unaffected.
    """
    if spec.momentum is not None:
        return float(spec.momentum)
    n = spec.num_batches_tracked or 0
    momentum = n / (n + 1)
    warn(
        "PyTorch momentum=None (cumulative moving average) has no Keras equivalent; bnport set Keras "
        f"momentum={momentum:.6g} = n/(n+1) with n=num_batches_tracked={n}, which matches the next update "
        "only. Inference is unaffected; set layer.momentum yourself before further training.",
    )
    return momentum


def _build_shape(spec: BatchNormSpec, ndim: int, fmt: str) -> tuple[int | None, ...]:
    spatial = (None,) * (ndim - 2)
    if fmt == CHANNELS_LAST:
        return (None, *spatial, spec.channels)
    return (None, spec.channels, *spatial)


def _choose_ndim(spec: BatchNormSpec, input_ndim: int | None) -> int:
    if input_ndim is not None:
        if spec.input_ndims and input_ndim not in spec.input_ndims:
            raise IncompatibleLayerError(
                f"the source layer takes inputs of rank {spec.input_ndims}. Received: input_ndim={input_ndim}"
            )
        return input_ndim
    if spec.input_ndims and len(spec.input_ndims) == 1:
        return spec.input_ndims[0]
    raise IncompatibleLayerError(
        "a built Keras BatchNormalization is tied to one input rank, but the source accepts "
        f"{spec.input_ndims or 'any rank'} (BatchNorm1d takes (N, C) and (N, C, L)); pass input_ndim=2 "
        "or 3 (or the rank you use), or a built layer to fill"
    )


def _check_target(spec: BatchNormSpec, layer: keras.layers.BatchNormalization, input_ndim: int | None) -> None:
    _check_is_batchnorm(layer, "to_keras's layer")
    if not layer.built:
        ndim = _choose_ndim(spec, input_ndim)
        fmt = CHANNELS_FIRST if layer.axis == 1 and ndim > 2 else CHANNELS_LAST
        layer.build(_build_shape(spec, ndim, fmt))
    data_format(layer)
    size = int(keras_compat.variable_shape(layer.moving_mean)[0])
    ndim = built_ndim(layer)
    if size != spec.channels:
        raise IncompatibleLayerError(
            f"Keras layer '{layer.name}' normalizes {size} channels but the source has {spec.channels}"
        )
    if spec.input_ndims and ndim not in spec.input_ndims:
        raise IncompatibleLayerError(
            f"Keras layer '{layer.name}' is built for rank-{ndim} inputs but the source takes rank "
            f"{spec.input_ndims}"
        )
    for flag, field, identity in (("scale", "gamma", 1.0), ("center", "beta", 0.0)):
        value = getattr(spec, field)
        if not getattr(layer, flag) and value is not None and not np.all(value == identity):
            raise IncompatibleLayerError(
                f"Keras layer '{layer.name}' has {flag}=False but the source's {field} is not all "
                f"{identity:g}; build the layer with {flag}=True"
            )
    held = layer.moving_mean.dtype
    if held != spec.dtype:
        raise IncompatibleLayerError(
            f"Keras layer '{layer.name}' holds {held} but the source is {spec.dtype}; build it with "
            f"dtype='{spec.dtype}'"
        )
    check_precision(held, f"Keras layer '{layer.name}'")


def check_precision(dtype: str, what: str) -> None:
    """Refuse a 64-bit variable that Keras's JAX backend stores in 32 bits: JAX computes in 32 bits unless its
    64-bit mode is on, and Keras then keeps a ``float64`` variable's values as float32, so a port would round every
    value without a word."""
    if dtype not in ("float64", "int64") or keras.backend.backend() != "jax":
        return
    import jax

    if not jax.config.read("jax_enable_x64"):
        raise IncompatibleLayerError(
            f"{what} is {dtype}, which Keras on JAX stores as {dtype.replace('64', '32')} unless JAX's 64-bit mode is "
            "on: the port would round every value. Set JAX_ENABLE_X64=1 (or jax.config.update('jax_enable_x64', "
            "True)) before Keras starts, or port in float32")


def to_keras(
    spec: BatchNormSpec,
    layer: keras.layers.BatchNormalization | None = None,
    *,
    data_format: str = CHANNELS_LAST,
    input_ndim: int | None = None,
) -> keras.layers.BatchNormalization:
    """Write a spec into a Keras ``BatchNormalization`` layer and return it (built).

    Args:
        spec: the layer to write.
        layer: a layer to fill (built or not; its axis, size, rank, flags and dtype are checked and its
            ``epsilon`` and ``momentum`` set to the source's); None builds a new one.
        data_format: for a new layer, ``channels_last`` (axis -1) or ``channels_first`` (axis 1).
        input_ndim: the input rank to build for, when the spec accepts several (BatchNorm1d) or none.

    Raises:
        UnsupportedLayerError: the source does not track running statistics (PyTorch
            ``track_running_stats=False`` normalizes with batch statistics even in eval, and Keras
            inference always uses its moving statistics).
    """
    if layer is None:
        _refuse_untracked(spec)
        if data_format not in (CHANNELS_LAST, CHANNELS_FIRST):
            raise IncompatibleLayerError(
                f"data_format must be '{CHANNELS_LAST}' or '{CHANNELS_FIRST}'. Received: {data_format!r}"
            )
        ndim = _choose_ndim(spec, input_ndim)
        layer = keras.layers.BatchNormalization(
            axis=-1 if data_format == CHANNELS_LAST else 1,
            epsilon=spec.epsilon,
            center=spec.center,
            scale=spec.scale,
            dtype=spec.dtype,
        )
        layer.build(_build_shape(spec, ndim, data_format))
    settings, values = prepare(spec, layer, input_ndim=input_ndim)
    for attr, value in settings.items():
        setattr(layer, attr, value)
    for variable, value in values:
        variable.assign(value)
    return layer


def prepare(
    spec: BatchNormSpec, layer: keras.layers.BatchNormalization, *, input_ndim: int | None = None
) -> tuple[dict[str, float], list[tuple[keras.Variable, np.ndarray]]]:
    """Check ``layer`` against ``spec`` and return what writing it would set, without writing a value.

    Returns the layer attributes (epsilon; momentum in Keras's convention) and each variable with the value
    it gets. An unbuilt layer is built for the spec's input rank (or ``input_ndim``).
    """
    _refuse_untracked(spec)
    momentum = keras_momentum(spec)
    _check_target(spec, layer, input_ndim)
    return {"epsilon": float(spec.epsilon), "momentum": momentum}, values_for(spec, layer)


def _refuse_untracked(spec: BatchNormSpec) -> None:
    if not spec.track_running_stats:
        raise UnsupportedLayerError(
            "the source has track_running_stats=False: it normalizes every batch with that batch's own "
            "statistics even in eval mode, while Keras BatchNormalization always uses its moving mean and "
            "variance in inference, so no Keras layer computes the same thing"
        )


def values_for(
    spec: BatchNormSpec, layer: keras.layers.BatchNormalization
) -> list[tuple[keras.Variable, np.ndarray]]:
    """Each variable of a checked, built ``layer`` with the value the spec gives it (identity where it has none)."""
    out = []
    if layer.scale:
        out.append((layer.gamma, spec.gamma if spec.scale else np.ones(spec.channels, dtype=spec.dtype)))
    if layer.center:
        out.append((layer.beta, spec.beta if spec.center else np.zeros(spec.channels, dtype=spec.dtype)))
    return [*out, (layer.moving_mean, spec.running_mean), (layer.moving_variance, spec.running_var)]
