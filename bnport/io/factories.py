"""Build a model from a ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY`` reference.

This runs the user's own model code (the definition of the architecture, never a checkpoint): the
factory is a function or class called with no arguments that returns a ``torch.nn.Module`` or a Keras model.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

from bnport.errors import UsageError, one_line


class FactoryError(UsageError):
    """The user's factory (or the file defining it) raised: the message names the factory, the exception and the
    line of the user's code it came from."""


def load_factory(reference: str) -> Callable[[], object]:
    """Resolve ``pkg.module:name`` or ``path/to/file.py:name`` to the callable it names."""
    module_ref, sep, name = reference.rpartition(":")
    if not sep or not module_ref or not name:
        raise UsageError(
            "a model factory is written MODULE:FACTORY or path/to/file.py:FACTORY. "
            f"Received: {reference!r}"
        )
    if module_ref.endswith(".py") or "/" in module_ref or "\\" in module_ref:
        module = _module_from_path(Path(module_ref))
    else:
        try:
            module = importlib.import_module(module_ref)
        except ImportError as exc:
            raise UsageError(f"cannot import module '{module_ref}' for factory {reference!r}: {exc}") from exc
    factory = getattr(module, name, None)
    if not callable(factory):
        raise UsageError(f"'{module_ref}' has no callable named '{name}' (from factory {reference!r})")
    return factory


def _module_from_path(path: Path):
    if not path.is_file():
        raise UsageError(f"model definition file not found: {path}")
    key = f"bnport_factory_{abs(hash(str(path.resolve())))}"
    if key in sys.modules:
        return sys.modules[key]
    spec = importlib.util.spec_from_file_location(key, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot load Python file {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[key] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[key]
        raise FactoryError(f"running {path} failed: {_raised(exc)}") from exc
    return module


def build(reference: str) -> object:
    """Call the factory named by ``reference`` and return the model it builds; what the factory raises becomes a
    :class:`FactoryError` with its own message and where in the user's code it was raised."""
    factory = load_factory(reference)
    try:
        return factory()
    except Exception as exc:
        raise FactoryError(f"factory {reference!r} failed: {_raised(exc)}") from exc


def _raised(exc: BaseException) -> str:
    """``Type: message (file:line)``, the line being the last frame in the user's code (outside bnport); a
    SyntaxError's message names its line itself."""
    import traceback

    package = str(Path(__file__).resolve().parents[1])
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not f.filename.startswith(package)]
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames and not isinstance(exc, SyntaxError) else ""
    return f"{type(exc).__name__}: {one_line(exc)}{where}"


def a_name(value: object) -> str:
    """``"a Tensor"``, ``"an int (3)"``: what a factory returned, for messages."""
    name = type(value).__name__
    shown = f" ({value!r})" if isinstance(value, (int, float, str, bool)) and len(repr(value)) < 40 else ""
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}{shown}"
