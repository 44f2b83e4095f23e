"""bnport's exception and warning types (standard library only).

Every error bnport raises on bad input is a :class:`BnportError`; each also subclasses the built-in
it resembles, so ``except ValueError`` keeps working in callers that predate bnport.
"""

from __future__ import annotations


class BnportError(Exception):
    """Base class of every error bnport raises on purpose."""


class SpecError(BnportError, ValueError):
    """A layer's weights or settings are inconsistent (shapes, dtypes, epsilon, momentum)."""


class UnsupportedLayerError(BnportError, TypeError):
    """A layer, or a setting of it, has no equivalent in the other framework."""


class IncompatibleLayerError(BnportError, ValueError):
    """A destination layer cannot receive the source's weights (size, axis, rank or flags differ)."""


class CheckpointError(BnportError, OSError):
    """A file cannot be read or written safely."""


class ExportError(BnportError, RuntimeError):
    """A framework's ONNX exporter or ONNX Runtime failed on a model bnport built or was given."""


class MissingPackageError(BnportError, ImportError):
    """A package the call needs is not installed (the message names what to install: an extra of bnport)."""


class MissingExporterError(ExportError, MissingPackageError):
    """The ONNX exporter of the active Keras backend is not installed (the message names the extra to install)."""


class PatchError(ExportError):
    """One of bnport's own temporary replacements inside a third-party library failed (a bug of bnport, or a library
    version it does not know): not a failure of that library."""


class BnportWarning(UserWarning):
    """A port that is exact for inference but not for every use (for example further training)."""


class UsageError(BnportError, ValueError):
    """A command line or API call names something that does not exist or cannot be used."""


def warn(message: str) -> None:
    """Issue a :class:`BnportWarning` attributed to the first caller outside bnport (whatever the call depth)."""
    import sys
    import warnings
    from pathlib import Path

    package = str(Path(__file__).resolve().parent)
    frame, level = sys._getframe(1), 1
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, BnportWarning, stacklevel=level + 1)



def one_line(exc: BaseException, limit: int = 800) -> str:
    """A third-party exception's whole message on one line (its lines joined, never cut at the first: Keras puts the
    cause on a later line), at most ``limit`` characters; its type's name when it says nothing."""
    import re

    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)  # terminal colour codes (torch.load's messages have some)
    if not text:
        return type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."
