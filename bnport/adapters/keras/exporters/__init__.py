"""One ONNX exporter per Keras backend, each the path Keras's own ``model.export(format="onnx")`` takes there.

``tensorflow``: tf2onnx on a ``tf.function``; ``jax``: jax2onnx on the traced function; ``torch``: PyTorch's
TorchScript exporter on the Keras model (a ``torch.nn.Module`` on that backend). Each module offers
``convert(forward, variables, shapes, dtypes, name=...)``, which exports ``forward`` (the inputs, then one array per
variable, substituted for the variables through a ``keras.StatelessScope``) and returns the graph and whether it
froze tensors that are not variables into constants; and ``STATIC_BATCH``: whether the graph is exported for the
batch size of the example (the cache key then holds it).
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from bnport.errors import MissingExporterError

#: backend -> (its exporter module, the packages it needs, the extra that installs them)
_EXPORTERS = {
    "tensorflow": ("bnport.adapters.keras.exporters.tensorflow", ("tensorflow", "tf2onnx"), "tensorflow"),
    "jax": ("bnport.adapters.keras.exporters.jax", ("jax", "jax2onnx"), "jax"),
    "torch": ("bnport.adapters.keras.exporters.torch", ("torch",), None),
}


def for_backend(backend: str) -> ModuleType:
    """The exporter of Keras backend ``backend``; a :class:`~bnport.errors.MissingExporterError` naming the extra to
    install when its packages are missing."""
    if backend not in _EXPORTERS:
        raise MissingExporterError(f"bnport exports Keras models on the tensorflow, jax and torch backends; this "
                                   f"Keras runs on '{backend}'")
    module, packages, extra = _EXPORTERS[backend]
    missing = [p for p in packages if _spec(p) is None]
    if missing:
        hint = f"pip install 'bnport[{extra}]'" if extra else f"pip install {' '.join(missing)}"
        raise MissingExporterError(f"exporting a Keras model to ONNX on the {backend} backend needs "
                                   f"{' and '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
                                   f"installed: {hint}")
    return importlib.import_module(module)


def _spec(package: str):
    try:
        return importlib.util.find_spec(package)
    except (ImportError, ValueError):  # None in sys.modules (made unimportable) raises ValueError
        return None
