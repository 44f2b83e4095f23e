"""PyTorch checkpoints as hubs and training scripts ship them: folders, shard indexes, nested and EMA state dicts,
key prefixes, tied tensors, half-precision values.

Every file is read as data (``torch.load(weights_only=True)``, safetensors); every adaptation made on the way is
said in a note, so a report can tell what was read:

* a hub folder holding ``model.safetensors`` (or its ``.index.json``, or ``pytorch_model.bin`` and its index);
* an index (``*.index.json``: ``{"weight_map": {key: shard file}}``), each shard checked to hold exactly the
  keys the index gives it;
* a state dict nested under ``state_dict``, ``model``, ... (:data:`MAIN_KEYS`); an EMA copy beside it
  (:data:`EMA_KEYS`) is used only when asked for (``key=``) or when it is all the file holds;
* keys prefixed by a training wrapper (``module.`` from DataParallel/DDP, ``_orig_mod.`` from torch.compile,
  ``model.`` from Lightning), removed when that is what makes them fit the model;
* a tied tensor stored under one of its names only (the model's other name for it is filled from it), or under
  both with different values (refused: the model can hold only one);
* values of another floating dtype than the model's, cast to the model's dtype (the destination keeps its own
  dtype); float16 and bfloat16 into float32 is exact, the other way rounds and the note says by how much.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bnport.errors import CheckpointError
from bnport.io.formats import HUB_FILES, INDEX_SUFFIX

MAIN_KEYS = ("state_dict", "model_state_dict", "model", "module", "net", "network", "weights")
EMA_KEYS = ("state_dict_ema", "model_ema", "ema", "ema_state_dict", "model_ema_state_dict")
PREFIXES = ("module.", "_orig_mod.", "model.")


@dataclass
class Checkpoint:
    """A state dict read from a checkpoint, and what was done to read it."""

    state: dict[str, torch.Tensor]
    path: Path
    notes: list[str] = field(default_factory=list)


def read(path: str | Path, key: str | None = None) -> Checkpoint:
    """Read a checkpoint file, shard index or hub folder; ``key`` picks a nested state dict (an EMA copy)."""
    path = Path(path)
    notes: list[str] = []
    if path.is_dir():
        found = next((path / name for name in HUB_FILES if (path / name).is_file()), None)
        if found is None:
            raise CheckpointError(f"{path} is a folder without a PyTorch checkpoint ({', '.join(HUB_FILES)})")
        notes.append(f"read {found.name} from the folder {path}")
        path = found
    obj = _read_shards(path, notes) if path.name.endswith(INDEX_SUFFIX) else _read_file(path)
    return Checkpoint(_select(obj, path, key, notes), path, notes)


def _read_file(path: Path) -> object:
    from bnport.adapters.torch import files as torch_files

    return torch_files.read_object(path)


def _read_shards(index: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index} is not a shard index (JSON with a 'weight_map'): {exc}") from exc
    if not isinstance(weight_map, Mapping) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CheckpointError(f"{index}: 'weight_map' must map each key to a shard file name")
    shards: dict[str, list[str]] = {}
    for name, shard in weight_map.items():
        shards.setdefault(shard, []).append(name)
    state: dict[str, torch.Tensor] = {}
    for shard, names in shards.items():
        file = (index.parent / shard).resolve()
        if index.parent.resolve() not in file.parents:
            raise CheckpointError(f"{index} names the shard '{shard}', outside its folder")
        held = _read_file(file)
        if not isinstance(held, Mapping):
            raise CheckpointError(f"shard {file} holds a {type(held).__name__}, not tensors by name")
        missing, extra = sorted(set(names) - set(held)), sorted(set(held) - set(names))
        if missing or extra:
            raise CheckpointError(
                f"shard {file.name} does not hold what {index.name} says: "
                + "; ".join(p for p in (f"missing {', '.join(missing[:8])}" if missing else "",
                                        f"not in the index: {', '.join(extra[:8])}" if extra else "") if p))
        state.update({k: held[k] for k in names})
    notes.append(f"read {len(state)} tensors from {len(shards)} shards listed in {index.name}")
    return state


def _is_state_dict(obj: object) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _select(obj: object, path: Path, key: str | None, notes: list[str]) -> dict[str, torch.Tensor]:
    """The state dict in a loaded checkpoint: the object itself, ``obj[key]``, or a nested main (else EMA) one."""
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            keys = ", ".join(repr(k) for k in list(obj)[:12]) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{path} has no entry '{key}'. Its entries: {keys}")
        if not _is_state_dict(obj[key]):
            raise CheckpointError(f"{path}: the entry '{key}' is not a state dict of tensors")
        notes.append(f"used the state dict under '{key}' of {path.name}")
        return dict(obj[key])
    if _is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, Mapping):
        main = next((k for k in MAIN_KEYS if k in obj and _is_state_dict(obj[k])), None)
        ema = [k for k in EMA_KEYS if k in obj and _is_state_dict(obj[k])]
        if main is not None:
            notes.append(f"used the state dict under '{main}' of {path.name}")
            if ema:
                notes.append(f"{path.name} also holds an EMA copy under '{ema[0]}', not used (ask for it with "
                             f"key='{ema[0]}', --checkpoint-key {ema[0]})")
            return dict(obj[main])
        if ema:
            notes.append(f"used the EMA state dict under '{ema[0]}' of {path.name}: it holds no other")
            return dict(obj[ema[0]])
        keys = ", ".join(repr(k) for k in list(obj)[:12])
        raise CheckpointError(
            f"{path} holds a dict but no state dict of tensors at the top or under {', '.join(MAIN_KEYS + EMA_KEYS)}."
            f" Its keys: {keys}")
    raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a state dict of tensors")


def fit(state: Mapping[str, torch.Tensor], model: torch.nn.Module, notes: list[str]) -> dict[str, torch.Tensor]:
    """``state`` with the keys and dtypes ``model`` has, where the difference is one of the forms above; anything
    else is left for the strict load to report."""
    own = model.state_dict(keep_vars=True)
    state = _strip_prefixes(dict(state), set(own), notes)
    state = _fill_aliases(state, own, notes)
    return _cast(state, own, notes)


def _strip_prefixes(state: dict[str, torch.Tensor], own: set[str], notes: list[str]) -> dict[str, torch.Tensor]:
    best, best_fit, removed, candidate, stripped = state, len(set(state) & own), [], state, []
    while set(candidate) != own:  # wrappers nest (DDP around torch.compile: 'module._orig_mod.')
        prefix = next((p for p in PREFIXES if all(k.startswith(p) for k in candidate)), None)
        if prefix is None:
            break
        candidate = {k[len(prefix):]: v for k, v in candidate.items()}
        stripped.append(prefix)
        if len(set(candidate) & own) > best_fit:  # else the prefix may be the model's own
            best, best_fit, removed = candidate, len(set(candidate) & own), list(stripped)
    state = best
    if removed:
        notes.append(f"removed the key prefix {''.join(removed)!r} (a training wrapper's: DataParallel/DDP "
                     "'module.', torch.compile '_orig_mod.', Lightning 'model.')")
    return state


def _fill_aliases(state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor],
                  notes: list[str]) -> dict[str, torch.Tensor]:
    groups: dict[int, list[str]] = {}
    for name, tensor in own.items():
        groups.setdefault(id(tensor), []).append(name)
    filled = []
    for names in groups.values():
        if len(names) < 2:
            continue
        present = [n for n in names if n in state]
        if len(present) > 1 and not all(torch.equal(state[present[0]], state[n]) for n in present[1:]):
            raise CheckpointError(
                f"the model ties {', '.join(names)} (one tensor), but the checkpoint holds different values for "
                f"{', '.join(present)}: it cannot hold both")
        if present:
            for name in names:
                if name not in state:
                    state[name] = state[present[0]]
                    filled.append(f"{name} from {present[0]}")
    if filled:
        notes.append(f"tied tensors stored once, filled under the model's other names: {', '.join(filled)}")
    return state


#: relative rounding error of a cast to each floating dtype (half its spacing at 1)
ROUNDING = {torch.float16: 2.0**-11, torch.bfloat16: 2.0**-8, torch.float32: 2.0**-24, torch.float64: 2.0**-53}


def _cast(state: dict[str, torch.Tensor], own: Mapping[str, torch.Tensor],
          notes: list[str]) -> dict[str, torch.Tensor]:
    casts: dict[tuple[torch.dtype, torch.dtype], int] = {}
    out = {}
    for name, value in state.items():
        target = own.get(name)
        if target is not None and value.is_floating_point() and target.is_floating_point() and \
                value.dtype != target.dtype:
            casts[(value.dtype, target.dtype)] = casts.get((value.dtype, target.dtype), 0) + 1
            value = value.to(target.dtype)
        out[name] = value
    for (held, want), count in casts.items():
        exact = want == torch.float64 or (want == torch.float32 and held != torch.float64)
        how = "exactly" if exact else f"rounding each value by at most {ROUNDING[want]:.3g} of itself"
        notes.append(f"{count} tensors stored as {str(held)[6:]}, cast to the model's {str(want)[6:]} {how}")
    return out
