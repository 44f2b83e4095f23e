"""The layer kinds bnport maps, and users' own pairs (framework-free: classes are held, never imported here).

A kind is what both frameworks agree a layer is: its classes on each side, whether its output has a channel axis
(which the two layouts place differently, so verify moves it), and how many products one output element sums (its
share of the float32 tolerance, :mod:`bnport.core.tolerance`). The built-in kinds are declared by their own modules,
one per kind, in ``bnport/adapters/kinds/`` (which also hold both frameworks' reading and writing of them).

A user's own pair (a custom PyTorch module and a custom Keras layer) is registered with
:func:`bnport.register_pair`: the two classes and the two functions that map one side's arrays to the other's.
The adapters then read, check and write it like a built-in kind, pairing, porting and verification included.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from bnport.errors import UsageError


@dataclass(frozen=True)
class Kind:
    """One layer kind.

    Attributes:
        name: the kind's name, as reports and findings show it.
        torch: what it is in PyTorch; keras: what it is in Keras (for people reading reports and docs).
        channels: the output has a channel axis (PyTorch's dim 1, Keras's last axis), which verify moves.
        reduction: spec -> how many products one output element sums (its share of the float32 tolerance);
            None for one.
        explain_weight: (key, PyTorch value, Keras value, PyTorch name, Keras name, flatten_from) -> a
            :class:`~bnport.core.findings.Finding` naming the mistake that turns one array into the other (a swapped
            kernel axis, an unpermuted Flatten), or None; verify's diagnosis asks it before saying "weights differ".
        explain_settings: (PyTorch spec, Keras spec) -> findings on settings that make the pair compute differently
            (a stride-2 "same" padding); verify's diagnosis adds them.
    """

    name: str
    torch: str
    keras: str
    channels: bool = True
    reduction: Callable[[object], int] | None = None
    explain_weight: Callable[..., object] | None = None
    explain_settings: Callable[..., list] | None = None


#: the built-in kinds, declared by their modules in ``bnport/adapters/kinds/`` (one module per kind, both sides)
BUILT_IN: dict[str, Kind] = {}


def declare(kind: Kind) -> Kind:
    """Declare a built-in kind (from its module in ``bnport/adapters/kinds/``)."""
    BUILT_IN[kind.name] = kind
    return kind


@dataclass(frozen=True)
class CustomPair:
    """A user's own pair of layer classes; see :func:`bnport.register_pair`."""

    kind: str
    torch_class: type
    keras_class: type
    to_keras: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]
    to_torch: Callable[[dict[str, np.ndarray]], Mapping[str, np.ndarray]]
    channels: bool = True
    reduction_length: int = 1

    @property
    def info(self) -> Kind:
        length = self.reduction_length
        return Kind(self.kind, self.torch_class.__qualname__, self.keras_class.__qualname__, self.channels,
                    lambda spec: length)


_CUSTOM: dict[str, CustomPair] = {}
_LOCK = threading.Lock()


def register(pair: CustomPair) -> CustomPair:
    """Add (or replace, same kind name) a user's pair; the checks :func:`bnport.register_pair` documents."""
    if not re.fullmatch(r"[A-Za-z_][\w.-]*", pair.kind or ""):
        raise UsageError(f"register_pair: kind {pair.kind!r} is not a name (letters, digits, '_', '.', '-')")
    if pair.kind in BUILT_IN:
        raise UsageError(f"register_pair: '{pair.kind}' is a built-in kind of bnport; give your pair its own name")
    for side in ("torch_class", "keras_class"):
        if not isinstance(getattr(pair, side), type):
            raise UsageError(f"register_pair: {side} must be a class, not {getattr(pair, side)!r}")
    for side in ("to_keras", "to_torch"):
        if not callable(getattr(pair, side)):
            raise UsageError(f"register_pair: {side} must be a function of a dict of arrays")
    if not isinstance(pair.reduction_length, int) or pair.reduction_length < 1:
        raise UsageError(f"register_pair: reduction_length must be a positive int, not {pair.reduction_length!r}")
    with _LOCK:
        for other in _CUSTOM.values():
            if other.kind != pair.kind and pair.torch_class in (other.torch_class, other.keras_class):
                raise UsageError(f"register_pair: {pair.torch_class.__qualname__} is already registered as kind "
                                 f"'{other.kind}'")
            if other.kind != pair.kind and pair.keras_class in (other.torch_class, other.keras_class):
                raise UsageError(f"register_pair: {pair.keras_class.__qualname__} is already registered as kind "
                                 f"'{other.kind}'")
        _CUSTOM[pair.kind] = pair
    return pair


def unregister(kind: str) -> None:
    """Remove a user's pair (no error if it is not registered)."""
    with _LOCK:
        _CUSTOM.pop(kind, None)


def custom_for(obj: object, side: str) -> CustomPair | None:
    """The user's pair whose ``side`` class (``"torch"`` or ``"keras"``) ``obj`` is an instance of, or None."""
    for pair in list(_CUSTOM.values()):
        if isinstance(obj, pair.torch_class if side == "torch" else pair.keras_class):
            return pair
    return None


def get(kind: str) -> Kind | None:
    """The kind of that name, built-in or registered, or None."""
    pair = _CUSTOM.get(kind)
    return BUILT_IN.get(kind) if pair is None else pair.info


def has_channels(kind: str) -> bool:
    """Whether layers of that kind give outputs with a channel axis (unknown kinds: no)."""
    found = get(kind)
    return bool(found and found.channels)
