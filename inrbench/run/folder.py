"""A results folder's safety: its lock, and what a failed run leaves behind.

A run holds ``OUT/.inrbench.lock`` (pid, host, process start time) for its whole life; a second
run on the same folder exits 2 naming the holder. A lock whose process is gone (same host, pid
not running or now a different process) is stale: it is replaced, with a line saying so. A run
that fails before its first checkpoint removes what it wrote, and only that: in a folder that
existed, the files it held before the run (:func:`snapshot`) are left as they were.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from inrbench.console import note
from inrbench.errors import ConfigError
from inrbench.io import atomic_write_bytes

LOCK_NAME = ".inrbench.lock"


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
        check_folder(self.out)
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


def check_folder(path: Path, what: str = "--out", file: bool = False) -> None:
    """ConfigError when the folder ``path`` (``file``: the folder of the file ``path``) cannot
    be one: it, or a folder above it, is an existing file. Checked before anything is written,
    so the refusal is one line instead of mkdir's FileExistsError or NotADirectoryError."""
    path = Path(path)
    for p in ([] if file else [path]) + list(path.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == path else f"lies under {p}, which is a file"
            fix = "a path in a folder" if file else "a folder that is new or a directory"
            raise ConfigError(f"{what} {path} {where}; give {fix}")


def holds_results(out: Path) -> bool:
    """Whether ``out`` holds something a new run must not overwrite: a checkpoint or a
    finished run's metrics (a folder left by a run that failed before its first checkpoint
    holds neither, and a rerun may reuse it)."""
    return (out / "metrics.json").exists() or any((out / "checkpoints").glob("*.ckpt"))


#: what a run writes in its folder before its results (the lock aside)
RUN_ENTRIES = ("config.yaml", "metrics.csv", "logs", "wandb", "checkpoints")
#: files a run writes over (the CSV logger's among them): their bytes are kept to give back
OVERWRITTEN = ("config.yaml", "metrics.csv", "logs/metrics.csv", "logs/hparams.yaml")


@dataclass
class Snapshot:
    """What of :data:`RUN_ENTRIES` a folder held before a run: the bytes of the files a run
    writes over (:data:`OVERWRITTEN`) and every path, relative to the folder."""

    files: dict[str, bytes] = field(default_factory=dict)
    paths: set[str] = field(default_factory=set)


def snapshot(out: Path) -> Snapshot:
    """``out``'s own entries of the names a run writes, taken before the run starts."""
    out, before = Path(out), Snapshot()
    for name in RUN_ENTRIES:
        p = out / name
        if p.exists() or p.is_symlink():
            before.paths.add(name)
        if p.is_dir():
            for root, dirs, files in os.walk(p):
                rel = Path(root).relative_to(out)
                before.paths.update(str(rel / n) for n in (*dirs, *files))
    for name in OVERWRITTEN:
        if (out / name).is_file():
            before.files[name] = (out / name).read_bytes()
    return before


def remove_unfinished(out: Path, created: bool, parents: list[Path] = (),
                      before: Snapshot | None = None) -> None:
    """After a failure before the first checkpoint: the folder this run created goes (and the
    ``parents`` it created, when empty); in a folder that existed, only what the run wrote
    goes: paths not in ``before`` are removed and the files ``before`` holds get their bytes
    back (None: the folder held none of :data:`RUN_ENTRIES`)."""
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
    before = before or Snapshot()
    for name in RUN_ENTRIES:
        p = out / name
        if name not in before.paths:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
        elif p.is_dir():
            _remove_new(out, p, before.paths)
    for name, payload in before.files.items():
        p = out / name
        if not p.is_file() or p.read_bytes() != payload:
            atomic_write_bytes(p, payload)


def _remove_new(out: Path, folder: Path, kept: set[str]) -> None:
    """Everything below ``folder`` whose path (relative to ``out``) is not in ``kept``."""
    for root, dirs, files in os.walk(folder, topdown=False):
        rel = Path(root).relative_to(out)
        for n in files:
            if str(rel / n) not in kept:
                (Path(root) / n).unlink(missing_ok=True)
        for n in dirs:
            d = Path(root) / n
            if str(rel / n) not in kept:
                if d.is_symlink():
                    d.unlink(missing_ok=True)
                else:
                    shutil.rmtree(d, ignore_errors=True)
