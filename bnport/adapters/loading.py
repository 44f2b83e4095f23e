"""Build the models a command names and load their weights: the shared start of explain, demo, convert."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bnport.errors import UsageError
from bnport.io.factories import FactoryError, a_name, build
from bnport.io.formats import KERAS_ARCHIVE, keras_kind


def torch_model(factory: str | object, weights: str | Path | None = None, *, key: str | None = None,
                notes: list[str] | None = None):
    """A PyTorch model from its factory, with ``weights`` loaded strictly, in eval mode.

    ``weights`` is a state-dict file, a shard index or a hub folder (:mod:`bnport.adapters.torch.checkpoints`); ``key``
    picks a nested state dict (an EMA copy); what was adapted on the way (prefixes, tied tensors, dtypes) is
    appended to ``notes``. With weights, the model is first built on PyTorch's ``meta`` device (no memory, no
    random initialisation) and the file's tensors become its parameters (``load_state_dict(assign=True)``): one
    copy of the weights in memory instead of two. A factory that cannot build on ``meta``, or a model with state
    the file does not hold, is built normally and loaded by copy.

    ``factory`` may also be a ``torch.nn.Module``: it is used as it is (its mode left alone), ``weights`` copied in.
    """

    from bnport.adapters.torch import checkpoints as torch_checkpoints
    from bnport.adapters.torch import files as torch_files

    notes = notes if notes is not None else []
    _refuse_file_as_factory(factory, "torch", "PyTorch")
    if weights is None:
        if not is_reference(factory):
            return _checked(factory, "the torch_model given is")
        return _checked(build(factory), f"factory {factory!r} returned").eval()
    checkpoint = torch_checkpoints.read(weights, key)
    notes += checkpoint.notes
    if not is_reference(factory):
        model = _checked(factory, "the torch_model given is")
        torch_files.load_into(model, checkpoint.state, weights, notes=notes)
        return model
    model = _built_on_meta(factory)
    if model is not None:
        attempt: list[str] = []
        torch_files.load_into(model, checkpoint.state, weights, assign=True, notes=attempt)
        if not on_meta(model):
            notes += attempt
            return model.eval()
    model = _checked(build(factory), f"factory {factory!r} returned")
    torch_files.load_into(model, checkpoint.state, weights, notes=notes)
    return model.eval()


def torch_destination(factory: str | object):
    """A PyTorch model to convert into: a model object as it is; a factory's model built on the ``meta`` device
    (shapes and dtypes, no memory, no random initialisation: the conversion saves the ported values without
    writing them into it, see :func:`bnport.adapters.torch.layers.state_after`), or normally if it cannot be built
    there."""
    if not is_reference(factory):
        return _checked(factory, "the torch_model given is")
    model = _built_on_meta(factory)
    return torch_model(factory) if model is None else model.eval()


def _built_on_meta(factory: str):
    """The factory's model built on the ``meta`` device, or None if it cannot be built there (the normal build
    then raises the factory's own error, if it has one)."""
    import torch

    try:
        with torch.device("meta"):
            return _checked(build(factory), f"factory {factory!r} returned")
    except FactoryError:  # it may not build on meta: the normal build raises its own error, if it has one
        return None
    except UsageError:
        raise
    except Exception:
        return None


def _refuse_file_as_factory(ref: object, side: str, framework: str) -> None:
    """A weights file given where the model definition goes: say where it belongs."""
    from bnport.io.formats import framework_of_file

    if not isinstance(ref, (str, os.PathLike)) or ":" in Path(ref).name or _is_archive(str(ref)):
        return
    try:
        holder = "Keras" if framework_of_file(Path(ref)) == "keras" else "PyTorch"
    except UsageError:
        return  # not a checkpoint name: the factory syntax error says what is expected
    what = "a .keras file or " if side == "keras" else ""
    raise UsageError(f"{ref} is a {holder} weights file, not a model "
                     f"definition: pass it as --{side}-weights ({side}_weights=), with --{side}-model {what}a factory "
                     f"MODULE:FUNCTION or path/to/file.py:FUNCTION building the {framework} model")


def on_meta(model) -> bool:
    """Whether any parameter or buffer of a PyTorch model has no memory (built on the ``meta`` device)."""
    return any(t.is_meta for t in (*model.parameters(), *model.buffers()))


def is_reference(model: object) -> bool:
    """A factory reference or a file (text or path), as opposed to a model object."""
    return isinstance(model, (str, os.PathLike))


def _checked(model, origin: str):
    import torch

    # a Keras model is a torch.nn.Module too on Keras's PyTorch backend
    if not isinstance(model, torch.nn.Module) or _is_keras(model):
        raise UsageError(f"{origin} {a_name(model)}, not a torch.nn.Module")
    return model


def _is_keras(model) -> bool:
    keras = sys.modules.get("keras")
    return keras is not None and isinstance(model, keras.layers.Layer)


@contextmanager
def keras_destination(model_ref: str | object) -> Iterator[object]:
    """A Keras model to convert into, for the ``with`` block: a factory's model is built without initial values
    (:mod:`bnport.adapters.keras.hollow`: its variables must be saved with the converted values); a ``.keras`` file is
    loaded as it is; a ``keras.Model`` is used as it is."""

    from bnport.adapters.keras import hollow as keras_hollow

    if not is_reference(model_ref):
        yield _checked_keras(model_ref, "the keras_model given is")
        return
    if _is_archive(model_ref):
        yield keras_model(model_ref)
        return
    with keras_hollow.built(lambda: build(model_ref)) as model:
        yield _checked_keras(model, f"{model_ref!r} gave")


def keras_model(model_ref: str | object, weights: str | Path | None = None):
    """A Keras model from a ``.keras`` file (safe mode) or a factory, with optional weights loaded; a
    ``keras.Model`` given instead is used as it is, the weights loaded into it."""

    from bnport.adapters.keras import files as keras_files

    _refuse_file_as_factory(model_ref, "keras", "Keras")
    if not is_reference(model_ref):
        model = _checked_keras(model_ref, "the keras_model given is")
    else:
        model = _checked_keras(keras_files.load_model(model_ref) if _is_archive(model_ref) else build(model_ref),
                               f"{model_ref!r} gave")
    if weights is not None:
        keras_files.load_weights(model, weights)
    return model


def _checked_keras(model, origin: str):
    import keras

    if not isinstance(model, keras.Model):
        raise UsageError(f"{origin} {a_name(model)}, not a keras.Model")
    return model


def is_keras_file(model_ref: object) -> bool:
    """A ``.keras`` archive named as a Keras model (it holds its weights), as opposed to a factory."""
    return isinstance(model_ref, (str, os.PathLike)) and _is_archive(str(model_ref))


def _is_archive(model_ref: str) -> bool:
    return keras_kind(model_ref) == KERAS_ARCHIVE and ":" not in Path(model_ref).name
