"""Seeded sample inputs shaped like a layer's real activations (numpy only)."""

from __future__ import annotations

import numpy as np

from bnport.core.spec import BatchNormSpec
from bnport.errors import IncompatibleLayerError

#: Spatial sizes of the default sample for each input rank: small, distinct so a swapped axis shows.
SPATIAL = {2: (), 3: (7,), 4: (5, 6), 5: (3, 4, 5)}


def batchnorm_inputs(spec: BatchNormSpec, ndim: int, *, seed: int = 0, batch: int = 2) -> np.ndarray:
    """A channels-first sample ``running_mean + sqrt(running_var) * z``, z standard normal (seeded).

    Centred on the layer's own statistics, so normalized values are of order 1, as in a trained network.
    """
    if ndim not in SPATIAL:
        raise IncompatibleLayerError(f"BatchNorm inputs have rank 2 to 5. Received: ndim={ndim}")
    rng = np.random.default_rng(seed)
    shape = (batch, spec.channels, *SPATIAL[ndim])
    z = rng.standard_normal(shape)
    per_channel = (1, spec.channels) + (1,) * (ndim - 2)
    if spec.track_running_stats:
        mean = spec.running_mean.astype(np.float64).reshape(per_channel)
        std = np.sqrt(np.abs(spec.running_var.astype(np.float64))).reshape(per_channel)
        z = mean + std * z
    return z.astype(spec.dtype)


def check_inputs(x: object, spec: BatchNormSpec, allowed_ndims: tuple[int, ...] | None) -> np.ndarray:
    """Validate user inputs (channels-first) against a layer; return them as an array of the spec's dtype."""
    array = np.asarray(x)
    if array.ndim < 2 or array.shape[1] != spec.channels:
        raise IncompatibleLayerError(
            f"inputs must be channels-first (N, C, ...) with C={spec.channels}. Received: shape {array.shape}"
        )
    if allowed_ndims and array.ndim not in allowed_ndims:
        raise IncompatibleLayerError(
            f"the layers take inputs of rank {allowed_ndims}. Received: shape {array.shape}"
        )
    return np.ascontiguousarray(array, dtype=spec.dtype)
