"""Starting Keras for the command line: which backend, and importing it quietly (standard library only here)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import sys
from pathlib import Path

from bnport.errors import MissingPackageError, UsageError

BACKENDS = ("tensorflow", "jax", "torch")



def install_hint(backend: str) -> str:
    """What to install for Keras ``backend`` and its exporter: bnport's extra (torch needs none: it is a
    dependency)."""
    return f"pip install 'bnport[{backend}]'" if backend in ("tensorflow", "jax") else f"pip install {backend}"


def configured_backend() -> str | None:
    """The backend the user configured for Keras, as Keras reads it: ``KERAS_BACKEND``, else the ``backend`` of
    ``$KERAS_HOME/keras.json`` (default ``~/.keras/keras.json``); None when neither says."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    with contextlib.suppress(OSError, ValueError, AttributeError):
        backend = json.loads(Path(home, "keras.json").read_text()).get("backend")
        if isinstance(backend, str) and backend:
            return backend
    return None


def choose_backend(requested: str | None) -> tuple[str, str | None]:
    """The Keras backend a command runs on, set in ``KERAS_BACKEND`` before Keras is imported, and a note when bnport
    chose it: ``requested`` (``--keras-backend``), else the user's configuration, else Keras's default (tensorflow)
    when TensorFlow is installed, else torch (installed with bnport)."""
    keras = sys.modules.get("keras")
    backend = requested or configured_backend()
    note = None
    if backend is None:
        backend = "tensorflow" if installed("tensorflow") else "torch"
        if backend == "torch":
            note = ("Keras backend: torch (no backend is configured and TensorFlow, Keras's default, is not "
                    "installed; choose with --keras-backend or KERAS_BACKEND)")
    if backend not in BACKENDS:
        raise UsageError(f"unknown Keras backend '{backend}'; bnport runs on {', '.join(BACKENDS)}")
    if keras is not None and keras.backend.backend() != backend:
        raise UsageError(f"Keras is already running on the {keras.backend.backend()} backend in this process; a "
                         f"backend is chosen before Keras is first imported (asked for: {backend})")
    if not installed(backend):  # each backend's package is named as the backend
        raise MissingPackageError(f"Keras is set to run on the {backend} backend, and {backend} is not installed: "
                                  f"{install_hint(backend)}, or choose another backend (--keras-backend or "
                                  "KERAS_BACKEND)")
    os.environ["KERAS_BACKEND"] = backend
    return backend, note


def installed(package: str) -> bool:
    """Whether ``package`` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):  # None in sys.modules (made unimportable) raises ValueError
        return False


def import_keras_quietly() -> None:
    """Import keras (and TensorFlow on that backend) with the C++ start-up chatter on stderr silenced.

    TensorFlow's native code logs CUDA probing lines to file descriptor 2 before ``TF_CPP_MIN_LOG_LEVEL``
    applies; a command-line tool should print only its own output. An import that fails is a
    :class:`~bnport.errors.MissingPackageError` saying what to install.
    """
    if "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # 2 still lets the later "failed call to cuInit" line out
    sys.stderr.flush()
    saved = os.dup(2)
    failure: ImportError | None = None
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            try:
                import keras  # noqa: F401
            except ImportError as exc:
                failure = exc
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    if failure is not None:
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        raise MissingPackageError(f"Keras could not start on the {backend} backend ({failure}): "
                                  f"{install_hint(backend) if backend in BACKENDS else 'pip install keras'}, or choose "
                                  "another backend (--keras-backend or KERAS_BACKEND)") from failure
