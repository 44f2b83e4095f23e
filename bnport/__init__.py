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
    PatchError,
    SpecError,
    UnsupportedLayerError,
    UsageError,
)

#: the public API: name -> module that defines it, imported on first access. This one table gives ``__all__``
#: (with the error types and ``__version__`` above); tests/test_public_api.py checks each entry resolves.
_LAZY = {
    # BatchNorm state, one layer at a time
    "from_torch": "bnport.workflows.batchnorm",
    "to_torch": "bnport.workflows.batchnorm",
    "from_keras": "bnport.workflows.batchnorm",
    "to_keras": "bnport.workflows.batchnorm",
    "BatchNormSpec": "bnport.core.spec",
    "check_layer": "bnport.workflows.layer_check",
    "LayerCheck": "bnport.workflows.layer_check",
    "explain": "bnport.workflows.explanation",
    "Explanation": "bnport.workflows.explanation",
    "Finding": "bnport.core.findings",
    # users' own layer pairs
    "register_pair": "bnport.workflows.registration",
    "unregister_pair": "bnport.workflows.registration",
    # whole models and files
    "plan": "bnport.workflows.porting",
    "port": "bnport.workflows.porting",
    "PortReport": "bnport.workflows.porting",
    "Plan": "bnport.core.pairing",
    "PlanError": "bnport.core.pairing",
    "LayerMapping": "bnport.core.pairing",
    "convert": "bnport.workflows.conversion",
    "ConvertReport": "bnport.workflows.conversion",
    "inspect": "bnport.workflows.inspection",
    "Entry": "bnport.workflows.inspection",
    # verification
    "verify": "bnport.workflows.verification",
    "VerifyReport": "bnport.workflows.verify_report",
    "Row": "bnport.workflows.verify_report",
    "Comparison": "bnport.core.compare",
}

_EAGER = ("BnportError", "BnportWarning", "CheckpointError", "ExportError", "IncompatibleLayerError", "PatchError",
          "SpecError", "UnsupportedLayerError", "UsageError", "__version__")

if TYPE_CHECKING:
    from bnport.core.compare import Comparison
    from bnport.core.findings import Finding
    from bnport.core.pairing import LayerMapping, Plan, PlanError
    from bnport.core.spec import BatchNormSpec
    from bnport.workflows.batchnorm import from_keras, from_torch, to_keras, to_torch
    from bnport.workflows.conversion import ConvertReport, convert
    from bnport.workflows.explanation import Explanation, explain
    from bnport.workflows.inspection import Entry, inspect
    from bnport.workflows.layer_check import LayerCheck, check_layer
    from bnport.workflows.porting import PortReport, plan, port
    from bnport.workflows.registration import register_pair, unregister_pair
    from bnport.workflows.verification import verify
    from bnport.workflows.verify_report import Row, VerifyReport


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'bnport' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted([*_EAGER, *_LAZY])
