"""bnport: port trained weights between PyTorch and Keras 3, BatchNorm first, checked through ONNX Runtime.

Importing bnport imports neither torch, tensorflow, onnx nor numpy: the public names below load their
module on first use, and each function loads its framework when called.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bnport._version import __version__
from bnport.errors import (
    BnportError,
    BnportWarning,
    CheckpointError,
    ExportError,
    IncompatibleLayerError,
    SpecError,
    UnsupportedLayerError,
    UsageError,
)

#: public name -> module that defines it (imported on first access)
_LAZY = {
    "from_torch": "bnport.api",
    "to_torch": "bnport.api",
    "from_keras": "bnport.api",
    "to_keras": "bnport.api",
    "check_layer": "bnport.check",
    "LayerCheck": "bnport.check",
    "explain": "bnport.explanation",
    "Explanation": "bnport.explanation",
    "Finding": "bnport.findings",
    "BatchNormSpec": "bnport.spec",
    "plan": "bnport.porting",
    "port": "bnport.porting",
    "PortReport": "bnport.porting",
    "Plan": "bnport.pairing",
    "PlanError": "bnport.pairing",
    "convert": "bnport.conversion",
    "verify": "bnport.verification",
    "VerifyReport": "bnport.verification",
    "inspect": "bnport.inspect_file",
}

if TYPE_CHECKING:
    from bnport.api import from_keras, from_torch, to_keras, to_torch
    from bnport.check import LayerCheck, check_layer
    from bnport.conversion import convert
    from bnport.explanation import Explanation, explain
    from bnport.findings import Finding
    from bnport.inspect_file import inspect
    from bnport.pairing import Plan, PlanError
    from bnport.porting import PortReport, plan, port
    from bnport.spec import BatchNormSpec
    from bnport.verification import VerifyReport, verify


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bnport' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "BatchNormSpec",
    "BnportError",
    "BnportWarning",
    "CheckpointError",
    "Explanation",
    "ExportError",
    "Finding",
    "IncompatibleLayerError",
    "LayerCheck",
    "Plan",
    "PlanError",
    "PortReport",
    "SpecError",
    "UnsupportedLayerError",
    "UsageError",
    "VerifyReport",
    "__version__",
    "check_layer",
    "convert",
    "explain",
    "from_keras",
    "from_torch",
    "inspect",
    "plan",
    "port",
    "to_keras",
    "to_torch",
    "verify",
]
