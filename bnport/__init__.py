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
    "from_torch": "bnport.workflows.batchnorm",
    "to_torch": "bnport.workflows.batchnorm",
    "from_keras": "bnport.workflows.batchnorm",
    "to_keras": "bnport.workflows.batchnorm",
    "check_layer": "bnport.workflows.layer_check",
    "LayerCheck": "bnport.workflows.layer_check",
    "explain": "bnport.workflows.explanation",
    "Explanation": "bnport.workflows.explanation",
    "Finding": "bnport.core.findings",
    "BatchNormSpec": "bnport.core.spec",
    "plan": "bnport.workflows.porting",
    "port": "bnport.workflows.porting",
    "PortReport": "bnport.workflows.porting",
    "Plan": "bnport.core.pairing",
    "PlanError": "bnport.core.pairing",
    "convert": "bnport.workflows.conversion",
    "verify": "bnport.workflows.verification",
    "VerifyReport": "bnport.workflows.verification",
    "inspect": "bnport.workflows.inspection",
}

if TYPE_CHECKING:
    from bnport.core.findings import Finding
    from bnport.core.pairing import Plan, PlanError
    from bnport.core.spec import BatchNormSpec
    from bnport.workflows.batchnorm import from_keras, from_torch, to_keras, to_torch
    from bnport.workflows.conversion import convert
    from bnport.workflows.explanation import Explanation, explain
    from bnport.workflows.inspection import inspect
    from bnport.workflows.layer_check import LayerCheck, check_layer
    from bnport.workflows.porting import PortReport, plan, port
    from bnport.workflows.verification import VerifyReport, verify


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
