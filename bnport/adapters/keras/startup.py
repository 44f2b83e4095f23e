"""Importing Keras (and TensorFlow) quietly, for the command line."""

from __future__ import annotations

import contextlib
import os
import sys


def import_keras_quietly() -> None:
    """Import keras (and TensorFlow) with the C++ start-up chatter on stderr silenced.

    TensorFlow's native code logs CUDA probing lines to file descriptor 2 before ``TF_CPP_MIN_LOG_LEVEL``
    applies; a command-line tool should print only its own output. Python exceptions are unaffected.
    """
    if "keras" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with contextlib.suppress(ImportError):
                import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
