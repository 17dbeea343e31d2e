"""A results folder's safety: its lock, its checkpoints, and what ``--resume`` may change.

* **Lock.** A run holds ``OUT/.inrbench.lock`` (pid, host, process start time) for its whole
  life; a second run on the same folder exits 2 naming the holder. A lock whose process is gone
  (same host, pid not running or now a different process) is stale: it is replaced, with a
  line saying so.
* **Checkpoints.** ``checkpoints/last.ckpt`` plus the newest ``trainer.keep_checkpoints`` step
  checkpoints. They hold plain types only (tensors, numbers, strings, lists, dicts) and are
  loaded with ``torch.load(weights_only=True)``, so resuming a shared folder never runs code
  from it. A truncated or unreadable checkpoint is skipped for the newest readable one, with a
  line saying so.
* **Resume.** ``--resume`` continues the folder's own config; an argument that disagrees with
  it exits 2, except the keys in ``inrbench.validation.RESUMABLE`` (``--steps N`` among them:
  the cosine schedule is re-planned from the step and learning rate reached to ``lr_min`` at
  step N).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, ListConfig, OmegaConf

from inrbench.errors import ConfigError
from inrbench.io import atomic_write_bytes

LOCK_NAME = ".inrbench.lock"


def note(message: str) -> None:
    """An informational line for the user (stdout: stderr holds only the error, one line)."""
    print(f"inrbench: {message}", flush=True)


# -- the lock ---------------------------------------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    now = _start_time(pid)
    return not (started and now and now != started)  # a reused pid is another process


class RunLock:
    """``with RunLock(out): ...`` holds ``out/.inrbench.lock``; raises ConfigError when a live
    process holds it."""

    def __init__(self, out: Path):
        self.out, self.path = Path(out), Path(out) / LOCK_NAME
        self.held = False

    def holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: written by something else; treated as held

    def acquire(self) -> RunLock:
        self.out.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": _start_time(os.getpid()), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        fd, tmp = tempfile.mkstemp(dir=self.out, prefix=".lock.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        try:
            for _ in range(3):
                try:
                    os.link(tmp, self.path)  # atomic: fails when the lock exists
                    self.held = True
                    return self
                except FileExistsError:
                    h = self.holder()
                    if h is None:
                        continue  # released meanwhile
                    if h.get("host") == me["host"] and isinstance(h.get("pid"), int) and \
                            not _alive(h["pid"], h.get("started")):
                        note(f"{self.out} had a stale lock of process {h['pid']} (no longer "
                             f"running); taking it over")
                        self.path.unlink(missing_ok=True)
                        continue
                    who = (f"process {h.get('pid')} on {h.get('host')} since {h.get('since')}"
                           if h else "an unreadable lock file")
                    raise ConfigError(
                        f"{self.out} is in use by another inrbench run ({who}); wait for it to "
                        f"end or choose another --out (if that process is gone, delete "
                        f"{self.path})") from None
            raise ConfigError(f"cannot lock {self.out}: {self.path} keeps changing; is another "
                              f"run starting there?")
        finally:
            Path(tmp).unlink(missing_ok=True)

    def release(self) -> None:
        if self.held:
            h = self.holder()
            if h and h.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def holds_results(out: Path) -> bool:
    """Whether ``out`` holds something a new run must not overwrite: a checkpoint or a
    finished run's metrics (a folder left by a run that failed before its first checkpoint
    holds neither, and a rerun may reuse it)."""
    return (out / "metrics.json").exists() or any((out / "checkpoints").glob("*.ckpt"))


def remove_unfinished(out: Path, created: bool, parents: list[Path] = ()) -> None:
    """After a failure before the first checkpoint: the folder this run created goes (and the
    ``parents`` it created, when empty); in a folder that existed, only what the run wrote
    (config, logs) goes."""
    if holds_results(out):
        return
    if created:
        shutil.rmtree(out, ignore_errors=True)
        for p in parents:  # innermost first; another run may have filled one meanwhile
            try:
                p.rmdir()
            except OSError:
                break
        return
    for name in ("config.yaml", "metrics.csv", "logs", "wandb", "checkpoints"):
        p = out / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


# -- checkpoints --------------------------------------------------------------------------------

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
        buffer = io.BytesIO()
        torch.save(plain(checkpoint), buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        return read_checkpoint(path, map_location)


def read_checkpoint(path: Path, map_location="cpu") -> dict:
    ckpt = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ValueError("not a Lightning checkpoint")
    return ckpt


_STEP = re.compile(r"step(\d+)")


def _step_of(path: Path) -> int:
    m = _STEP.search(path.stem)
    return int(m.group(1)) if m else -1


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


class KeepCheckpoints(ModelCheckpoint):
    """``last.ckpt`` plus the newest ``keep`` step checkpoints (older ones are deleted), so a
    corrupt last checkpoint costs at most ``checkpoint_every`` steps."""

    def __init__(self, dirpath: Path, every: int, keep: int):
        super().__init__(dirpath=dirpath, filename="step{step:06d}", save_last=True,
                         every_n_train_steps=every, save_top_k=-1,
                         auto_insert_metric_name=False)
        self.keep = keep

    def _save_checkpoint(self, trainer, filepath):
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero and self.dirpath:
            steps = [p for p in checkpoints_newest_first(Path(self.dirpath))
                     if p.name != "last.ckpt"]
            for old in steps[self.keep:]:
                old.unlink(missing_ok=True)


# -- resuming ---------------------------------------------------------------------------------


def _flat(d, prefix="") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def resume_config(out: Path, overrides=(), extra: dict | None = None, model: str | None = None,
                  data: str | None = None) -> DictConfig:
    """The folder's config with the command line's changes, refusing those a resumed run
    cannot take (a different model, data, learning rate...)."""
    from inrbench.config import check_keys, conf_dir, load_yaml, parse_overrides, validate
    from inrbench.config.validation import RESUMABLE, SCHEMA, to_plain

    saved_path = out / "config.yaml"
    if not saved_path.is_file():
        raise ConfigError(f"--resume: {saved_path} does not exist; is {out} a run folder?")
    saved = load_yaml(saved_path)
    for kind, name in (("model", model), ("data", data)):
        have = OmegaConf.select(saved, f"{kind}.name")
        if name is not None and name != have:
            raise ConfigError(f"--resume: {out} holds a run of {kind} {have!r}, not --{kind} "
                              f"{name}; drop --{kind} or choose another --out")
    base = load_yaml(conf_dir() / "defaults.yaml")
    cli = parse_overrides(list(overrides))
    check_keys(cli, base)
    # sections the runner records (data_record...) are kept as they are, not config
    known = set(base) | set(SCHEMA)
    records = OmegaConf.masked_copy(saved, [k for k in saved if k not in known])
    saved = OmegaConf.masked_copy(saved, [k for k in saved if k in known])
    # keys added to defaults.yaml since the run started take their defaults
    fill = OmegaConf.masked_copy(base, [k for k in base if k not in ("model", "data")])
    cfg = OmegaConf.merge(fill, saved, cli)
    for key, value in (extra or {}).items():
        if value is not None:
            OmegaConf.update(cfg, key, value, force_add=True)
    cfg.trainer.out = str(out)  # the folder may have moved since
    cfg = validate(cfg, base)
    before, after = _flat(to_plain(OmegaConf.merge(fill, saved))), _flat(to_plain(cfg))
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new or key == "trainer.out":
            continue
        if key not in RESUMABLE:
            allowed = ", ".join(sorted(k for k in RESUMABLE if k != "trainer.out"))
            raise ConfigError(f"--resume: {key}={new!r} differs from {old!r} in {saved_path}; "
                              f"a resumed run keeps its config (it may change {allowed}); "
                              f"choose another --out for a new run")
        note(f"--resume: {key} {old!r} -> {new!r}")
    return OmegaConf.merge(cfg, records)


class ReplanSchedule(L.Callback):
    """``--resume --steps N`` with another N: from the checkpoint's step k on, the learning rate
    follows the cosine schedule of an N-step run (SGDR's closed form,
    ``lr_t = lr_min + (lr - lr_min) (1 + cos(pi t / N)) / 2``), so the run ends at ``lr_min``
    at step N as an N-step run does; the rate changes once, at step k, and the line says how.
    """

    def __init__(self, steps: int):
        self.steps = steps

    def on_train_start(self, trainer, pl_module):
        step, n = int(trainer.global_step), self.steps
        for config in trainer.lr_scheduler_configs:
            old = config.scheduler
            if not isinstance(old, torch.optim.lr_scheduler.CosineAnnealingLR):
                continue
            opt = old.optimizer
            before = opt.param_groups[0]["lr"]
            new = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(n, 1),
                                                             eta_min=old.eta_min)
            lrs = [old.eta_min + (base - old.eta_min) * (1 + math.cos(math.pi * step / n)) / 2
                   for base in new.base_lrs]
            for group, lr in zip(opt.param_groups, lrs):
                group["lr"] = lr
            new.last_epoch, new._last_lr = step, list(lrs)
            config.scheduler = new
            if trainer.is_global_zero:
                note(f"--resume: cosine schedule re-planned for {n} steps: lr {before:.3g} -> "
                     f"{lrs[0]:.3g} at step {step}, {old.eta_min:.3g} at step {n}")
