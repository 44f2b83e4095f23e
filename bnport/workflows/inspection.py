"""``bnport inspect``: the BatchNorm layers (and other weight-holding layers) of any supported checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnport.core import health
from bnport.core.frameworks import TORCH
from bnport.core.spec import BatchNormSpec
from bnport.errors import CheckpointError, one_line
from bnport.io.formats import KERAS_ARCHIVE, framework_of_file, is_torch_source, keras_kind

_BN_KEYS = ("running_mean", "running_var")


@dataclass(frozen=True)
class Entry:
    """One layer found in a file: its name, kind, tensor shapes and, for BatchNorm, a health line."""

    name: str
    kind: str
    shapes: dict[str, tuple[int, ...]]
    summary: str = ""

    def as_dict(self) -> dict:
        """A JSON-ready description."""
        return {"name": self.name, "kind": self.kind, "shapes": {k: list(v) for k, v in self.shapes.items()},
                "summary": self.summary}


def inspect(path: str | Path) -> list[Entry]:
    """List the weight-holding layers of a PyTorch or Keras checkpoint, BatchNorm first-class."""
    path = Path(path)
    if not (path.is_file() or is_torch_source(path)):
        raise CheckpointError(f"checkpoint not found: {path}")
    if framework_of_file(path) == TORCH:
        return _torch_entries(path)
    if keras_kind(path) == KERAS_ARCHIVE:
        return _keras_model_entries(path)
    return _h5_entries(path)


def _torch_entries(path: Path) -> list[Entry]:
    from bnport.adapters.torch.batchnorm import tensor_to_numpy
    from bnport.adapters.torch.files import read_state_dict

    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, tensor in read_state_dict(path).items():
        prefix, _, leaf = key.rpartition(".")
        groups.setdefault(prefix, {})[leaf] = tensor_to_numpy(tensor)
    entries = []
    for name, arrays in groups.items():
        shapes = {k: tuple(v.shape) for k, v in arrays.items()}
        if all(k in arrays for k in _BN_KEYS) and arrays["running_mean"].ndim == 1:
            spec = _bn_from_arrays(arrays, epsilon=1e-5)
            line = health.summary(spec).replace("eps 1e-05", "eps not stored in a state dict (PyTorch default 1e-5)")
            nbt = arrays.get("num_batches_tracked")
            if nbt is not None:
                line += f", num_batches_tracked {int(nbt)}"
            entries.append(Entry(name, "batchnorm", shapes, line))
        else:
            entries.append(Entry(name, "tensors", shapes))
    return entries


def _bn_from_arrays(arrays: dict[str, np.ndarray], epsilon: float, momentum: float | None = None) -> BatchNormSpec:
    mean = arrays["running_mean"]
    dtype = mean.dtype.name

    def vec(key):
        value = arrays.get(key)
        return None if value is None or value.shape != mean.shape else value.astype(dtype, copy=False)

    return BatchNormSpec(channels=int(mean.shape[0]), epsilon=epsilon, momentum=momentum, dtype=dtype,
                         gamma=vec("weight"), beta=vec("bias"), running_mean=mean, running_var=vec("running_var"))


def _keras_model_entries(path: Path) -> list[Entry]:
    import keras

    from bnport.adapters.keras import batchnorm as keras_bn
    from bnport.adapters.keras.files import load_model

    model = load_model(path)
    entries = []
    for layer in _walk(model):
        if not layer.weights or isinstance(layer, keras.Model):
            continue
        shapes = {v.path.rpartition("/")[2]: tuple(v.shape) for v in layer.weights}
        if isinstance(layer, keras.layers.BatchNormalization) and layer.built:
            entries.append(Entry(layer.name, "batchnorm", shapes, health.summary(keras_bn.from_keras(layer))))
        else:
            entries.append(Entry(layer.name, type(layer).__name__, shapes))
    return entries


def _walk(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _walk(layer)


def _h5_entries(path: Path) -> list[Entry]:
    import h5py

    groups: dict[str, dict[str, np.ndarray]] = {}

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            layer, _, leaf = name.rpartition("/")
            groups.setdefault(layer, {})[leaf] = obj[()]

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(visit)
    except Exception as exc:  # h5py raises OSError, KeyError, RuntimeError... on damaged files
        first = one_line(exc)
        raise CheckpointError(f"{path} is not a readable HDF5 file: {first}") from exc
    entries = []
    for name, arrays in groups.items():
        shapes = {k: tuple(np.shape(v)) for k, v in arrays.items()}
        named = {k.split(":")[0]: v for k, v in arrays.items()}
        if "moving_mean" in named and "moving_variance" in named:  # legacy Keras 2 names
            spec = _bn_from_arrays({"running_mean": named["moving_mean"], "running_var": named["moving_variance"],
                                    "weight": named.get("gamma"), "bias": named.get("beta")}, epsilon=1e-3)
            entries.append(Entry(name, "batchnorm", shapes, _no_eps(health.summary(spec))))
        elif _looks_like_bn(name, arrays):  # Keras 3 .weights.h5 stores variables by position
            vectors = [arrays[k] for k in sorted(arrays, key=lambda k: int(k) if k.isdigit() else 0)]
            gamma, beta = (vectors[0], vectors[1]) if len(vectors) == 4 else (None, None)
            spec = _bn_from_arrays({"running_mean": vectors[-2], "running_var": vectors[-1], "weight": gamma,
                                    "bias": beta}, epsilon=1e-3)
            entries.append(Entry(name, "batchnorm", shapes, _no_eps(health.summary(spec))))
        else:
            entries.append(Entry(name, "tensors", shapes))
    return entries


def _looks_like_bn(name: str, arrays: dict) -> bool:
    lowered = name.lower()
    vectors = [v for v in arrays.values() if np.ndim(v) == 1]
    return ("batch_norm" in lowered or "bn" in lowered.replace("/", "_").split("_")) and len(vectors) in (2, 3, 4) \
        and len(vectors) == len(arrays) and len({len(v) for v in vectors}) == 1


def _no_eps(line: str) -> str:
    return line.replace("eps 0.001", "eps not stored in a weights file")
