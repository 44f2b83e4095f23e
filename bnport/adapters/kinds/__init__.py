"""The built-in layer kinds, one module each: everything bnport knows about a kind, on both sides, in one place.

Each module declares its :class:`~bnport.core.kinds.Kind` (name, channel axis, share of the tolerance) and a
:class:`Definition`: the PyTorch classes it covers and how to read one into the neutral spec, the Keras classes and
how to read one and which variables a spec writes into. The frameworks are imported inside the functions only, when
an adapter first asks. Adding a kind is adding a module here: the package finds its modules itself.

BatchNorm, the reason bnport exists, keeps its own richer spec and modules (``adapters/*/batchnorm.py``); its kind is
declared in :mod:`bnport.adapters.kinds.batchnorm`. A user's registered pair becomes a definition too
(:func:`custom_definition`), so the adapters read, check and write it through the same path.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bnport.core import kinds
from bnport.core.layers import LayerSpec
from bnport.errors import IncompatibleLayerError, SpecError, UnsupportedLayerError

#: the kind modules: every module of this package (their classes do not overlap, so the order does not matter)
MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def _default_torch_targets(module, spec, name: str = "") -> list[tuple[str, object, object]]:
    return [("weight", module.weight, spec.arrays.get("weight")),
            ("bias", getattr(module, "bias", None), spec.arrays.get("bias"))]


@dataclass(frozen=True)
class Definition:
    """One kind on both sides.

    Attributes:
        name: the kind's name (its :class:`~bnport.core.kinds.Kind`).
        torch_classes: the ``torch.nn`` classes it covers (instances of subclasses that compute the same match).
        torch_read: module -> LayerSpec (arrays as views of the module's memory).
        torch_targets: (module, spec, name) -> [(key, tensor or None, value or None)]: what a write sets (``name``:
            the layer's, for messages).
        keras_classes: the Keras classes it covers.
        keras_read: (layer, get, flatten_from) -> LayerSpec, ``get`` reading a variable (or its shape only).
        keras_targets: (layer, spec, flatten_from, name) -> [(key, variable or None, value or None)].
        keras_match: for a Keras class known by name rather than by import (keras.applications' LayerScale).
    """

    name: str
    torch_classes: Callable[[], tuple[type, ...]] = tuple
    torch_read: Callable | None = None
    keras_classes: Callable[[], tuple[type, ...]] = tuple
    keras_read: Callable | None = None
    keras_targets: Callable | None = None
    torch_targets: Callable = _default_torch_targets
    keras_match: Callable[[object], bool] | None = None


def torch_definition(module) -> tuple[type, Definition] | None:
    """The class in ``module``'s MRO a definition covers (a user's registered pair first: the module's own class),
    and that definition; None when no class of its MRO is mapped."""
    pair = kinds.custom_for(module, "torch")
    if pair is not None:
        return type(module), custom_definition(pair)
    readers = torch_readers()
    return next(((base, readers[base]) for base in type(module).__mro__ if base in readers), None)


@functools.cache
def definitions() -> tuple[Definition, ...]:
    """Every built-in kind's definition, in :data:`MODULES` order (importing them declares their kinds)."""
    return tuple(importlib.import_module(f"{__name__}.{m}").DEFINITION for m in MODULES)


@functools.cache
def torch_readers() -> dict[type, Definition]:
    """PyTorch class -> its kind's definition."""
    return {cls: d for d in definitions() for cls in d.torch_classes() if d.torch_read is not None}


@functools.cache
def keras_readers() -> tuple[tuple[tuple[type, ...], Definition], ...]:
    """(Keras classes, definition) in order, for ``isinstance`` checks."""
    return tuple((d.keras_classes(), d) for d in definitions() if d.keras_read is not None and d.keras_classes())


def keras_definition(layer) -> Definition | None:
    """The definition covering the Keras ``layer`` (a user's registered pair first), or None."""
    pair = kinds.custom_for(layer, "keras")
    if pair is not None:
        return custom_definition(pair)
    for classes, d in keras_readers():
        if isinstance(layer, classes):
            return d
    return next((d for d in definitions() if d.keras_match is not None and d.keras_match(layer)), None)


# -- users' registered pairs ------------------------------------------------------------------------------------

def own_state(module) -> dict:
    """The module's own parameters and buffers (not its children's), by name."""
    return {**{n: b for n, b in module.named_buffers(recurse=False) if b is not None},
            **dict(module.named_parameters(recurse=False))}


def variables_by_name(layer) -> dict:
    """The Keras layer's variables by their own names (``gamma``, not ``block/gamma``)."""
    out = {}
    for variable in layer.weights:
        if variable.name in out:
            raise UnsupportedLayerError(f"Keras {type(layer).__name__} '{layer.name}' holds two variables named "
                                        f"'{variable.name}'; a registered pair needs one name per variable")
        out[variable.name] = variable
    return out


def _call(pair: kinds.CustomPair, side: str, arrays: dict, name: str) -> dict:
    try:
        return {k: np.asarray(v) for k, v in dict(getattr(pair, side)(dict(arrays))).items()}
    except Exception as exc:
        raise SpecError(f"layer '{name}': the {side} function registered for kind '{pair.kind}' failed: "
                        f"{type(exc).__name__}: {exc}") from exc


def _all_given(layer, kind: str, holds: dict, given: dict, gave: str, name: str) -> list:
    if set(holds) != set(given):
        raise IncompatibleLayerError(f"layer '{name}' ({type(layer).__name__}, kind '{kind}') holds {sorted(holds)}, "
                                     f"but {gave} gave {sorted(given)}")
    return [(key, target, given[key]) for key, target in holds.items()]


@functools.cache
def custom_definition(pair: kinds.CustomPair) -> Definition:
    """A user's registered pair (:func:`bnport.register_pair`) as a definition: the neutral spec's arrays are the
    PyTorch module's own parameters and buffers by name, the Keras side goes through the pair's ``to_torch`` and
    ``to_keras``; its writes are checked like every kind's, and stricter: each tensor the destination holds must be
    given, and nothing else."""
    def torch_read(module) -> LayerSpec:
        from bnport.adapters.torch.batchnorm import tensor_view

        return LayerSpec(pair.kind, {n: tensor_view(t) for n, t in own_state(module).items()})

    def torch_targets(module, spec, name: str = "") -> list:
        return _all_given(module, pair.kind, own_state(module), dict(spec.arrays), "the source's to_torch", name)

    def keras_read(layer, get, flatten_from=None) -> LayerSpec:
        values = {n: get(v) for n, v in variables_by_name(layer).items()}
        return LayerSpec(pair.kind, _call(pair, "to_torch", values, layer.name))

    def keras_targets(layer, spec, flatten_from=None, name: str = "") -> list:
        given = _call(pair, "to_keras", dict(spec.arrays), name)
        return _all_given(layer, pair.kind, variables_by_name(layer), given, "to_keras", name)

    return Definition(pair.kind, lambda: (pair.torch_class,), torch_read, lambda: (pair.keras_class,), keras_read,
                      keras_targets, torch_targets)
