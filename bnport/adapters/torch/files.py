"""PyTorch checkpoint files: read and write state dicts safely (``.pt``/``.pth``/``.bin``, ``.safetensors``).

Pickled checkpoints are read with ``torch.load(weights_only=True)`` only: tensors and plain containers,
never code. There is no unsafe fallback.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from bnport.errors import CheckpointError, one_line
from bnport.io.atomic import atomic_path
from bnport.io.formats import PICKLE_SUFFIXES, SAFETENSORS

ZIP_MAGIC = b"PK\x03\x04"  # how torch.save's zip archives open; its legacy pickles open with 0x80 (PROTO)


def read_object(path: str | Path) -> object:
    """What one PyTorch checkpoint file holds: ``.pt``/``.pth``/``.bin``/``.ckpt`` read with
    ``torch.load(weights_only=True)`` (tensors and plain containers only), ``.safetensors`` with safetensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.suffix == SAFETENSORS:
        return _read_safetensors(path)
    if path.suffix not in PICKLE_SUFFIXES:
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint suffix ({', '.join(PICKLE_SUFFIXES)}, {SAFETENSORS})"
        )
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): not a checkpoint; was it written completely?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = one_line(exc)
        with path.open("rb") as handle:
            opening = handle.read(4)
        is_zip = opening == ZIP_MAGIC
        if not (is_zip or opening.startswith(b"\x80")):
            raise CheckpointError(f"{path} is not a PyTorch checkpoint: torch.save writes a zip archive or a pickle, "
                                  f"and this file opens with neither ({opening!r})") from exc
        if isinstance(exc, EOFError) or _ends_early(path, is_zip):
            raise CheckpointError(f"{path} ends early ({size} bytes): the file is truncated (an interrupted write "
                                  f"or download); torch.load said: {first}") from exc
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path} was refused: it is a pickle that asks to run code or build objects other than "
                f"tensors ({first}). bnport loads checkpoints with weights_only=True and has no unsafe "
                "fallback; re-save it as a plain state dict or as .safetensors"
            ) from exc
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {first})") from exc


def _ends_early(path: Path, is_zip: bool) -> bool:
    """Whether a torch file stops before its end: a zip archive (torch's format since 1.6) without its central
    directory, which is written last, or a legacy file whose pickles run out of bytes (the weights-only unpickler
    reports that as an unsupported global made of the cut name). Only parses opcodes (``pickletools``), never runs
    them."""
    import pickletools
    import zipfile

    if is_zip:
        return not zipfile.is_zipfile(path)
    with path.open("rb") as handle:
        try:
            for _ in range(5):  # magic number, protocol, system info, the object, its storage keys
                for _op in pickletools.genops(handle):
                    pass
        except (ValueError, EOFError):
            return handle.tell() >= path.stat().st_size  # it ran out of bytes (an unknown opcode stops earlier)
    return False


def read_state_dict(path: str | Path, key: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict of a checkpoint file, shard index or hub folder (see :mod:`bnport.adapters.torch.checkpoints`)."""
    from bnport.adapters.torch import checkpoints as torch_checkpoints

    return torch_checkpoints.read(path, key).state


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file: {exc}") from exc


def write_state_dict(state: Mapping[str, torch.Tensor], path: str | Path) -> None:
    """Write a state dict atomically, as ``.safetensors`` or (any other suffix) a ``torch.save`` pickle."""
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    if path.suffix == SAFETENSORS:  # safetensors stores no aliases: a tied tensor's other names get their own copy
        seen: set[tuple[int, int]] = set()
        for key, value in tensors.items():
            span = (value.untyped_storage().data_ptr(), value.storage_offset())
            if span in seen or value.untyped_storage().nbytes() != value.numel() * value.element_size():
                tensors[key] = value.clone()
            seen.add(span)
    with atomic_path(path, suffix=path.suffix) as tmp:
        try:
            if path.suffix == SAFETENSORS:
                from safetensors.torch import save_file

                save_file(tensors, str(tmp))
            else:
                torch.save(tensors, tmp)
        except OSError:
            raise  # atomic_path names the file and the reason
        except Exception as exc:  # torch.save and safetensors report a failed write in their own types
            first = one_line(exc)
            raise CheckpointError(f"could not write {path}: {first}") from exc


def load_into(model: torch.nn.Module, state: Mapping[str, torch.Tensor], path: str | Path, *,
              assign: bool = False, notes: list[str] | None = None) -> None:
    """Load a state dict into ``model`` strictly; every missing, unexpected or mis-shaped key in one error.

    Key prefixes of training wrappers, tied tensors stored once and other floating dtypes are fitted first
    (:func:`bnport.adapters.torch.checkpoints.fit`), each said in ``notes``. ``assign=True`` makes the file's
    tensors the model's own (for a model built on the meta device).
    """
    from bnport.adapters.torch import checkpoints as torch_checkpoints

    state = torch_checkpoints.fit(state, model, notes if notes is not None else [])
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    dtypes = [
        f"{k}: file {str(state[k].dtype)[6:]} vs model {str(own[k].dtype)[6:]}"
        for k in own
        if k in state and state[k].dtype != own[k].dtype and state[k].is_floating_point()
    ]
    problems = []
    if missing:
        problems.append(f"missing keys: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {', '.join(unexpected)}")
    if shapes:
        problems.append(f"shape mismatches: {'; '.join(shapes)}")
    if dtypes:
        problems.append(f"dtype mismatches: {'; '.join(dtypes)}")
    if problems:
        raise CheckpointError(
            f"{path} does not fit {type(model).__name__}: " + " | ".join(problems)
            + ". Check that the model factory builds the architecture the checkpoint was saved from."
        )
    tied = _ties(model) if assign else []
    model.load_state_dict(state, strict=True, assign=assign)
    for names in tied:  # assign=True makes each name its own Parameter: tie them again, as the model defines
        first = model.get_parameter(names[0])
        for name in names[1:]:
            owner, _, attr = name.rpartition(".")
            setattr(model.get_submodule(owner), attr, first)


def _ties(model: torch.nn.Module) -> list[list[str]]:
    """Groups of parameter names that are one tensor in ``model``."""
    groups: dict[int, list[str]] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(param), []).append(name)
    return [names for names in groups.values() if len(names) > 1]
