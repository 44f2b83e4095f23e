"""bnport: port trained weights between PyTorch and Keras 3, BatchNorm first, checked through ONNX Runtime.

Importing bnport imports neither torch nor tensorflow; each public function loads its framework when called.
"""

from bnport._version import __version__
from bnport.api import from_keras, from_torch, to_keras, to_torch
from bnport.check import LayerCheck, check_layer
from bnport.errors import (
    BnportError,
    BnportWarning,
    CheckpointError,
    ExportError,
    IncompatibleLayerError,
    SpecError,
    UnsupportedLayerError,
)
from bnport.explain import Explanation, explain
from bnport.findings import Finding
from bnport.spec import BatchNormSpec

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
    "SpecError",
    "UnsupportedLayerError",
    "__version__",
    "check_layer",
    "explain",
    "from_keras",
    "from_torch",
    "to_keras",
    "to_torch",
]
