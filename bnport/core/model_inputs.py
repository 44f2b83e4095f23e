"""The inputs a verify feeds both models: given or drawn, one per model input, laid out for each framework.

Real models take more than one image batch: several inputs (named), integer token ids for an Embedding, inputs
of a size the model leaves open. Inputs are given channels-first (PyTorch's layout) as one array, a sequence in the
Keras model's input order, or a dict by Keras input name; the Keras model reads float inputs of rank 3 and more
channels-last when its layers are. Without inputs, each is drawn (seeded): standard normal floats, and integers
below the vocabulary of the Embedding the input feeds (else 0 or 1). No framework is imported here: the caller
reads the Keras model's input specs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bnport.core import layout
from bnport.errors import UsageError


@dataclass(frozen=True)
class InputSpec:
    """One model input as the Keras model declares it: name, shape (Keras layout, None where open), dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: str

    @property
    def integer(self) -> bool:
        return np.dtype(self.dtype).kind in "iub"


@dataclass(frozen=True)
class Inputs:
    """The arrays fed to each framework, in the Keras model's input order."""

    specs: tuple[InputSpec, ...]
    torch: tuple[np.ndarray, ...]
    keras: tuple[np.ndarray, ...]

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        """Channels-first shapes, as the report states them."""
        return tuple(tuple(x.shape) for x in self.torch)


def resolve(specs: Sequence[InputSpec], given: object, *, keras_last: bool, input_shape: object = None,
            batch: int = 2, seed: int = 0, vocab: Mapping[int, int] | None = None) -> Inputs:
    """The inputs to feed, from ``given`` (an array, a sequence, a dict by Keras input name, or None to draw).

    ``input_shape``: channels-first shape (batch included) of each drawn input, one tuple or one per input, for a
    model whose own shape leaves sizes open. ``vocab``: input index -> the vocabulary size of the Embedding it feeds.
    """
    specs = tuple(specs)
    if batch < 1:
        raise UsageError(f"the batch size must be at least 1. Received: batch={batch}")
    arrays = _given(specs, given) if given is not None else _drawn(specs, input_shape, batch, seed, vocab or {},
                                                                  keras_last)
    torch, keras = [], []
    for spec, array in zip(specs, arrays, strict=True):
        array = np.ascontiguousarray(array, dtype=np.int64 if spec.integer else np.float32)
        for_keras = layout.to_channels_last(array) if keras_last and not spec.integer and array.ndim > 2 else array
        _check(spec, for_keras, array)
        torch.append(array)
        keras.append(np.ascontiguousarray(for_keras, dtype=spec.dtype if spec.integer else np.float32))
    return Inputs(specs, tuple(torch), tuple(keras))


def _given(specs: tuple[InputSpec, ...], given: object) -> list[np.ndarray]:
    names = [s.name for s in specs]
    if isinstance(given, Mapping):
        unknown, missing = sorted(set(given) - set(names)), [n for n in names if n not in given]
        if unknown or missing:
            wrong = (f"; unknown {unknown}" if unknown else "") + (f"; missing {missing}" if missing else "")
            raise UsageError(f"inputs are named by the Keras model's inputs {names}. Received: {sorted(given)}{wrong}")
        return [np.asarray(given[n]) for n in names]
    if isinstance(given, np.ndarray) or not isinstance(given, Sequence):
        given = [given]
    arrays = [np.asarray(a) for a in given]
    if len(arrays) != len(specs):
        raise UsageError(f"the Keras model takes {len(specs)} inputs ({', '.join(names)}): give one array each, in "
                         f"that order, or a dict by name. Received: {len(arrays)} arrays")
    for spec, a in zip(specs, arrays, strict=True):
        if a.ndim < 1:
            raise UsageError(f"input '{spec.name}' must be a batch (N, ...). Received: shape {a.shape}")
    return arrays


def _drawn(specs, input_shape, batch: int, seed: int, vocab: Mapping[int, int], keras_last: bool) -> list:
    shapes = _shapes(specs, input_shape, batch, keras_last)
    rng = np.random.default_rng(seed)
    out = []
    for i, (spec, shape) in enumerate(zip(specs, shapes, strict=True)):
        if spec.integer:
            out.append(rng.integers(0, max(1, vocab.get(i, 2)), size=shape))
        else:
            out.append(rng.standard_normal(shape).astype(np.float32))
    return out


def _shapes(specs, input_shape, batch: int, keras_last: bool) -> list[tuple[int, ...]]:
    if input_shape is not None:
        shapes = [input_shape] if _is_shape(input_shape) else list(input_shape)
        if len(shapes) != len(specs):
            raise UsageError(f"give one input shape per model input ({len(specs)}). Received: {shapes}")
        return [tuple(int(d) for d in s) for s in shapes]
    out = []
    for spec in specs:
        rest = spec.shape[1:]
        if any(d is None for d in rest):
            raise UsageError(f"the Keras model's input '{spec.name}' has shape {spec.shape}, with sizes it leaves "
                             "open; give the inputs, or their shapes (input_shape=, --input-shape)")
        if keras_last and not spec.integer and len(spec.shape) > 2:
            rest = (rest[-1], *rest[:-1])
        out.append((batch, *rest))
    return out


def _is_shape(value: object) -> bool:
    return isinstance(value, (tuple, list)) and all(isinstance(d, (int, np.integer)) for d in value)


def _check(spec: InputSpec, for_keras: np.ndarray, given: np.ndarray) -> None:
    want = spec.shape
    if len(want) != for_keras.ndim or any(w is not None and w != g for w, g in zip(want[1:], for_keras.shape[1:],
                                                                                  strict=True)):
        raise UsageError(
            f"input '{spec.name}' has shape {tuple(given.shape)} (channels-first) but the Keras model takes "
            f"{tuple(want)} (its own layout, None where open)")
