"""One adapter per framework, the only places that import one: ``bnport.adapters.torch``, ``bnport.adapters.keras``.

Each imports its framework, bnport.core, bnport.io, bnport.onnxcheck and bnport.errors; never the other adapter.
Both implement :class:`bnport.adapters.base.Adapter`; workflows reach them through :func:`get` and :func:`of`.
Beside them: ``kinds/`` (one module per layer kind, both sides), ``loading`` (models from factories, files and
model objects, for the CLI and the adapters' ``load``), ``swaps`` (temporary third-party replacements), ``base``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bnport.core.frameworks import KERAS, TORCH, framework_of

if TYPE_CHECKING:
    from bnport.adapters.base import Adapter

_CLASSES = {TORCH: ("bnport.adapters.torch.adapter", "TorchAdapter"),
            KERAS: ("bnport.adapters.keras.adapter", "KerasAdapter")}
_MADE: dict[str, Adapter] = {}


def get(framework: str) -> Adapter:
    """The adapter of ``framework`` (``"torch"`` or ``"keras"``); its module is imported on first use."""
    if framework not in _MADE:
        module, name = _CLASSES[framework]
        _MADE[framework] = getattr(importlib.import_module(module), name)()
    return _MADE[framework]


def of(model: object) -> Adapter:
    """The adapter of the framework ``model`` belongs to."""
    return get(framework_of(model))
