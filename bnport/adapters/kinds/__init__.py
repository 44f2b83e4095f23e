"""The built-in layer kinds, one module each: everything bnport knows about a kind, on both sides, in one place.

Each module declares its :class:`~bnport.core.kinds.Kind` (name, channel axis, share of the tolerance) and a
:class:`Definition`: the PyTorch classes it covers and how to read one into the neutral spec, the Keras classes and
how to read one and which variables a spec writes into. The frameworks are imported inside the functions only, when
an adapter first asks. Adding a kind is adding a module here: the package finds its modules itself.

BatchNorm, the reason bnport exists, keeps its own richer spec and modules (``adapters/*/batchnorm.py``); its kind is
declared in :mod:`bnport.adapters.kinds.batchnorm`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass

#: the kind modules: every module of this package (their classes do not overlap, so the order does not matter)
MODULES = tuple(sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")))


def _default_torch_targets(module, spec) -> list[tuple[str, object, object]]:
    return [("weight", module.weight, spec.arrays.get("weight")),
            ("bias", getattr(module, "bias", None), spec.arrays.get("bias"))]


@dataclass(frozen=True)
class Definition:
    """One kind on both sides.

    Attributes:
        name: the kind's name (its :class:`~bnport.core.kinds.Kind`).
        torch_classes: the ``torch.nn`` classes it covers (instances of subclasses that compute the same match).
        torch_read: module -> LayerSpec (arrays as views of the module's memory).
        torch_targets: (module, spec) -> [(key, tensor or None, value or None)]: what a write sets.
        keras_classes: the Keras classes it covers.
        keras_read: (layer, get, flatten_from) -> LayerSpec, ``get`` reading a variable (or its shape only).
        keras_targets: (layer, spec, flatten_from) -> [(key, variable or None, value or None)].
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
    """The definition covering the Keras ``layer``, or None."""
    for classes, d in keras_readers():
        if isinstance(layer, classes):
            return d
    return next((d for d in definitions() if d.keras_match is not None and d.keras_match(layer)), None)
