"""Checkpoints: plain types only, written atomically, read without unpickling code.

``checkpoints/last.ckpt`` plus the newest ``trainer.keep_checkpoints`` step checkpoints. They
hold plain types only (tensors, numbers, strings, lists, dicts) and are loaded with
``torch.load(weights_only=True)``, so resuming a shared folder never runs code from it. A
truncated or unreadable checkpoint is skipped for the newest readable one, with a line saying so.
"""

from __future__ import annotations

import os
import re
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from omegaconf import DictConfig, ListConfig, OmegaConf

from inrbench.console import note
from inrbench.errors import ConfigError
from inrbench.io import atomic_write_with

_PLAIN = (type(None), bool, int, float, complex, str, bytes, torch.Tensor, torch.Size,
          torch.dtype, torch.device)


def plain(obj, where: str = "checkpoint"):
    """``obj`` with NumPy scalars/arrays, paths and OmegaConf containers made the plain types
    ``torch.load(weights_only=True)`` reads; anything else is a bug in the code that saved it
    and raises a TypeError naming where it sits."""
    if isinstance(obj, np.generic):  # before _PLAIN: np.float64 is a float subclass
        return obj.item()
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(obj.copy())
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, os.PathLike):
        return str(obj)
    if isinstance(obj, Mapping):
        kind = type(obj) if type(obj) in (dict, OrderedDict) else dict
        return kind((k, plain(v, f"{where}[{k!r}]")) for k, v in obj.items())
    if isinstance(obj, (list, tuple, set)):
        items = [plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(items) if isinstance(obj, tuple) else list(items)
    raise TypeError(f"{where} holds a {type(obj).__module__}.{type(obj).__qualname__}; "
                    f"checkpoints hold plain types only (tensors, numbers, strings, lists, "
                    f"dicts) so that they load with weights_only=True")


class SafeCheckpointIO(TorchCheckpointIO):
    """Checkpoints of plain types, written atomically (a kill never leaves half a file) and
    read with ``weights_only=True`` (loading never unpickles arbitrary objects)."""

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        state = plain(checkpoint)
        atomic_write_with(path, lambda f: _save(state, f))

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return read_checkpoint(path, map_location)


def _save(state: dict, f) -> None:
    """``torch.save`` into ``f``; a write of ``f`` that fails (a full disk) raises its own
    OSError, which the atomic write reports in one line. torch's zip writer would replace it:
    closing the archive after the failed write raises a RuntimeError ("unexpected pos")."""
    try:
        torch.save(state, f)
    except RuntimeError as e:
        cause = _os_error(e)
        if cause is None:
            raise
        raise cause from None


def _os_error(error: BaseException) -> OSError | None:
    """The OSError in ``error``'s chain (the exception it was raised from or while handling),
    if any."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def read_checkpoint(path: Path, map_location="cpu") -> dict:
    ckpt = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError("not a Lightning checkpoint")
    return ckpt


_STEP = re.compile(r"step(\d+)")


def _step_of(path: Path) -> int:
    m = _STEP.search(path.stem)
    return int(m.group(1)) if m else -1


def prune_step_checkpoints(ckpt_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints of ``ckpt_dir`` (``last.ckpt``
    stays)."""
    steps = [p for p in checkpoints_newest_first(ckpt_dir) if p.name != "last.ckpt"]
    for old in steps[keep:]:
        old.unlink(missing_ok=True)


def checkpoints_newest_first(ckpt_dir: Path) -> list[Path]:
    steps = sorted((p for p in ckpt_dir.glob("step*.ckpt")), key=_step_of, reverse=True)
    last = ckpt_dir / "last.ckpt"
    return ([last] if last.exists() else []) + steps


def planned_end(ckpt: dict) -> int | None:
    """The step at which the checkpoint's cosine schedule reaches ``lr_min``."""
    for state in ckpt.get("lr_schedulers") or []:
        if isinstance(state, dict) and "T_max" in state and "last_epoch" in state:
            return int(ckpt.get("global_step", 0)) + int(state["T_max"]) - int(state["last_epoch"])
    return None


def resume_checkpoint(ckpt_dir: Path) -> tuple[Path, int, int | None] | None:
    """The newest readable checkpoint, its step and the step its cosine schedule ends at;
    each unreadable one is named in a line. None when the folder has no checkpoint;
    ConfigError when none of them reads."""
    found = checkpoints_newest_first(ckpt_dir)
    bad = []
    for path in found:
        try:
            ckpt = read_checkpoint(path)
        except Exception as e:  # truncated, corrupt, or holding objects weights_only refuses
            reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            bad.append(path)
            note(f"{path} is unreadable ({reason}); trying the previous checkpoint")
            continue
        if bad:
            note(f"resuming from {path.name} (step {ckpt.get('global_step')}) instead")
        return path, int(ckpt.get("global_step", 0)), planned_end(ckpt)
    if found:
        raise ConfigError(f"--resume: no checkpoint in {ckpt_dir} is readable "
                          f"({', '.join(p.name for p in found)}); start again with another --out")
    return None
