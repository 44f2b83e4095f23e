"""One ONNX exporter per Keras backend, each the path Keras's own ``model.export(format="onnx")`` takes there.

``tensorflow``: tf2onnx on a ``tf.function``; ``jax``: jax2onnx on the traced function; ``torch``: PyTorch's
TorchScript exporter on the Keras model (a ``torch.nn.Module`` on that backend). Each module offers
``convert(forward, variables, shapes, dtypes, names, name=...)``, which exports ``forward`` (the inputs, then one
array per variable, substituted for the variables through a ``keras.StatelessScope``; ``names``: the graph's input
names, data inputs first) and returns the graph and whether it froze tensors that are not variables into
constants; ``STATIC_BATCH``: whether the graph is exported for the batch size of the example (the cache key
then holds it); and ``value_array(variable)``: the variable's value as the array onnxruntime is fed, a view of it
where the backend's tensors allow one (a copy of ResNet-50's 100 MB of weights takes 0.1 s in a fresh process).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from bnport.adapters.keras.startup import install_hint, installed
from bnport.errors import MissingExporterError

#: backend -> the packages its exporter needs (the module is bnport.adapters.keras.exporters.<backend>)
_NEEDS = {"tensorflow": ("tensorflow", "tf2onnx"), "jax": ("jax", "jax2onnx"), "torch": ("torch",)}


def for_backend(backend: str) -> ModuleType:
    """The exporter of Keras backend ``backend``; a :class:`~bnport.errors.MissingExporterError` naming the extra to
    install when its packages are missing."""
    if backend not in _NEEDS:
        raise MissingExporterError(f"bnport exports Keras models on the tensorflow, jax and torch backends; this "
                                   f"Keras runs on '{backend}'")
    missing = [p for p in _NEEDS[backend] if not installed(p)]
    if missing:
        raise MissingExporterError(f"exporting a Keras model to ONNX on the {backend} backend needs "
                                   f"{' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                                   f"installed: {install_hint(backend)}")
    return importlib.import_module(f"{__name__}.{backend}")

