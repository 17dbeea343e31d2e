"""The machine under a run: trainer settings it cannot honour, an ``--out`` that is a file, a
disk that fills while a checkpoint streams, and SIGTERM/SIGINT stopping a multi-process run.
Each ends in one line with the documented exit status, never a traceback or a hang."""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from cli_lines import error_line, run_cli

import inrbench.config.machine as machine
from inrbench.checkpoint import SafeCheckpointIO, read_checkpoint
from inrbench.errors import StorageError

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.hidden_dim=8", "model.n_layers=2", "task.eval_every=5",
        "trainer.checkpoint_every=5", "trainer.latency_repeats=1", "trainer.latency_warmup=0",
        "trainer.progress_bar=false", "--logger", "none"]


def _run_args(png, out, steps=12):
    return ["run", "--model", "siren", "--data", "image", f"data.path={png}", "--steps", steps,
            "--out", out, *TINY]


# -- trainer settings against this machine -----------------------------------------------------

@pytest.mark.parametrize("extra, needle, by_name", [
    (["--strategy", "dpp"], "unknown strategy 'dpp': did you mean --strategy ddp?", True),
    (["--strategy", "ddp_spwan", "--devices", "2", "data.sampling=random"],
     "did you mean --strategy ddp_spawn?", True),
    (["trainer.accelerator=cuda"], "no CUDA GPU", False),
    (["trainer.accelerator=gpu", "--devices", "2", "data.sampling=random"], "no CUDA GPU",
     False),
    (["--strategy", "fsdp", "--devices", "2", "data.sampling=random",
      "trainer.accelerator=cpu"], "needs CUDA GPUs; on CPU use --strategy ddp", False),
])
def test_a_strategy_or_accelerator_this_machine_lacks_is_refused_before_anything(
        extra, needle, by_name, tmp_path, small_png, capsys, monkeypatch):
    monkeypatch.setattr(machine, "gpus", lambda: 0)  # the same answer on a GPU machine
    out = tmp_path / "o"
    code, _, err = run_cli([*_run_args(small_png, out), *extra], capsys)
    assert code == 2 and needle in error_line(err)
    assert not out.exists()  # nothing written
    # --dry-run checks the names, not this machine (it may be made on a login node)
    code, _, err = run_cli([*_run_args(small_png, out), *extra, "--dry-run"], capsys)
    if by_name:
        assert code == 2 and needle in error_line(err)
    else:
        assert code == 0, err
    assert not out.exists()


def test_an_experiment_refuses_a_strategy_before_its_first_row(tmp_path, capsys):
    out = tmp_path / "e"
    code, _, err = run_cli(["run", "--experiment", "table2", "--rows", "loe4", "--out", out,
                            "--strategy", "dpp"], capsys)
    assert code == 2 and "did you mean --strategy ddp?" in error_line(err)
    assert not out.exists()


def test_more_devices_than_gpus_is_refused(tmp_path, small_png, capsys, monkeypatch):
    monkeypatch.setattr(machine, "gpus", lambda: 1)
    out = tmp_path / "o"
    for accelerator in ("gpu", "auto"):  # auto picks the GPU when there is one
        code, _, err = run_cli([*_run_args(small_png, out), "--devices", "2",
                                "data.sampling=random", f"trainer.accelerator={accelerator}"],
                               capsys)
        line = error_line(err)
        assert code == 2 and "--devices 2 asks for 2 GPUs; this machine has 1" in line
        assert "--devices 1 or fewer" in line and not out.exists()


@pytest.mark.parametrize("argv", [
    lambda png, out: _run_args(png, out),
    lambda png, out: [*_run_args(png, out), "--seeds", "0,1"],
    lambda png, out: ["run", "--experiment", "table2", "--rows", "loe4", "--out", out],
    lambda png, out: ["bench", "--models", "siren", "--data", "image", "--steps", "5",
                      "--out", out],
    lambda png, out: ["sweep", ROOT / "conf" / "sweep" / "asmr_lr_bayes.yaml", "--local",
                      "--out", out],
    lambda png, out: ["report", png.parent, "--out", out],
    lambda png, out: ["codecs", png, "--out", out],
])
@pytest.mark.parametrize("under", [False, True])
def test_an_out_that_is_a_file_or_under_one_is_one_line(argv, under, tmp_path, small_png,
                                                        capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("keep me\n")
    out = blocker / "sub" if under else blocker
    code, _, err = run_cli(argv(small_png, out), capsys)
    line = error_line(err)
    assert code == 2 and str(out) in line
    assert ("lies under" if under else "is a file") in line
    assert blocker.read_text() == "keep me\n"  # untouched


def test_a_compressed_file_under_a_file_is_one_line(tmp_path, small_png, capsys):
    blocker = tmp_path / "afile"
    blocker.write_text("")
    code, _, err = run_cli(["compress", tmp_path, "--out", blocker / "x.inrb"], capsys)
    assert code == 2 and "lies under" in error_line(err)


# -- a full disk while a checkpoint streams ----------------------------------------------------

class _FillsUp:
    """A file on a disk with ``room`` bytes left: a write past it writes what fits, then fails
    with ENOSPC, as a real full disk does under a buffered writer."""

    def __init__(self, raw, room: int):
        self.raw, self.room = raw, room

    def write(self, b):
        b = bytes(b)
        if len(b) > self.room:
            self.raw.write(b[:self.room])
            self.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(b)
        return self.raw.write(b)

    def flush(self):
        self.raw.flush()

    def fileno(self):
        return self.raw.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.raw.close()


def _state(n=300_000):
    return {"state_dict": {"w": torch.randn(n)}, "global_step": 3}


def test_torch_zip_writer_hides_the_full_disk_behind_a_runtime_error(tmp_path):
    """The route being fixed: torch.save into a file that fills up raises torch's own
    RuntimeError ('unexpected pos'), not the OSError."""
    with open(tmp_path / "x", "wb") as raw, pytest.raises(RuntimeError, match="unexpected pos"):
        torch.save(_state(), _FillsUp(raw, 100_000))


@pytest.fixture
def disk_fills_at(monkeypatch):
    """Checkpoint writes through inrbench.io whose name matches ``prefix`` get ``room`` bytes."""
    names: dict[int, str] = {}
    real_mkstemp, real_fdopen = tempfile.mkstemp, os.fdopen

    def arm(prefix: str, room: int):
        def mkstemp(*args, **kwargs):
            fd, name = real_mkstemp(*args, **kwargs)
            names[fd] = name
            return fd, name

        def fdopen(fd, mode="r", *args, **kwargs):
            f = real_fdopen(fd, mode, *args, **kwargs)
            if mode == "wb" and Path(names.get(fd, "")).name.startswith(prefix):
                return _FillsUp(f, room)
            return f

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
        monkeypatch.setattr(os, "fdopen", fdopen)

    return arm


def test_a_checkpoint_that_fills_the_disk_keeps_the_old_one(tmp_path, disk_fills_at):
    last = tmp_path / "last.ckpt"
    io_ = SafeCheckpointIO()
    io_.save_checkpoint(_state(10), last)
    disk_fills_at(".last.ckpt.", 100_000)
    with pytest.raises(StorageError, match=r"cannot write last.ckpt in .*No space left.*ENOSPC"):
        io_.save_checkpoint(_state(), last)
    assert read_checkpoint(last)["state_dict"]["w"].numel() == 10  # the previous one, whole
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_a_full_disk_mid_checkpoint_is_one_line_and_resumes(tmp_path, small_png, capsys,
                                                             disk_fills_at, monkeypatch):
    out = tmp_path / "o"
    disk_fills_at(".step000010.ckpt.", 2_000)
    code, _, err = run_cli(_run_args(small_png, out), capsys)
    line = error_line(err)
    assert code == 2, err
    assert "cannot write step000010.ckpt" in line and "No space left" in line
    assert f"continue from {out / 'checkpoints' / 'last.ckpt'}" in line and "--resume" in line
    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == 5
    assert not list(out.rglob("*.tmp"))
    monkeypatch.undo()  # space freed
    code, _, err = run_cli([*_run_args(small_png, out), "--resume"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["steps"] == 12


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0:
        return False
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True)
    return done.returncode == 0


def test_a_real_3mb_filesystem_as_the_results_folder(tmp_path, small_png, capsys):
    """The reproduction itself, where a filesystem can be mounted (root): 1.6 MB checkpoints
    every 50 steps on a 3 MB tmpfs."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "3m"):
        pytest.skip("mounting a 3 MB tmpfs needs root; the simulated disk above covers it")
    try:
        out = disk / "r"
        code, _, err = run_cli(["run", "--model", "siren", "--data", "image",
                                f"data.path={small_png}", "--steps", 120, "--out", out,
                                "model.hidden_dim=256", "model.n_layers=4",
                                "trainer.checkpoint_every=50", "task.eval_every=50",
                                "trainer.latency_repeats=1", "trainer.latency_warmup=0",
                                "trainer.progress_bar=false", "--logger", "none"], capsys)
        line = error_line(err)
        assert code == 2 and "No space left on device [ENOSPC]" in line
        assert "--resume" in line and not list(out.rglob("*.tmp"))
        newest = line.split("continue from ")[1].split(" with --out")[0]
        assert read_checkpoint(Path(newest))["global_step"] == 50
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# -- SIGTERM and SIGINT stop every process of a multi-process run -------------------------------

# the CLI, whose rank 0 sends SIGNAL to TARGET ("main": its own process; "group": every
# process of the run; "stuck": its own, after stopping the other) once training passes STEP,
# after a random fraction of a step: the signal lands anywhere in a step, collectives
# included, as a scheduler's does
SENDER = """
import os, random, signal, sys, threading
import lightning as L
import inrbench.run.runner as runner
from inrbench.cli import main

sig, target, at = getattr(signal, sys.argv[1]), sys.argv[2], int(sys.argv[3])


def send(trainer):
    if target == "stuck":  # the other process hangs (stopped), then the main one is told
        for child in trainer.strategy.launcher.procs:
            os.kill(child.pid, signal.SIGSTOP)
    if target == "group":
        os.killpg(os.getpgid(0), sig)
    else:
        os.kill(os.getpid(), sig)


class Send(L.Callback):
    sent = False

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step >= at and trainer.is_global_zero and not self.sent:
            self.sent = True
            threading.Timer(random.uniform(0, 0.02), send, (trainer,)).start()


make = runner._trainer


def with_sender(*args):
    trainer = make(*args)
    trainer.callbacks.insert(0, Send())
    return trainer


runner._trainer = with_sender
sys.exit(main(sys.argv[4:]))
"""

DDP = ["data.sampling=random", "data.batch_size=256", "model.hidden_dim=16",
       "model.n_layers=2", "task.lr=1e-3", "task.eval_every=100",
       "trainer.checkpoint_every=100", "trainer.latency_repeats=1",
       "trainer.latency_warmup=0", "trainer.progress_bar=false", "trainer.accelerator=cpu",
       "--logger", "none", "--devices", "2", "--strategy", "ddp"]
DDP_STEPS = 60


def _ddp_args(png, out):
    return ["run", "--model", "siren", "--data", "image", f"data.path={png}", "--steps",
            str(DDP_STEPS), "--out", str(out), *DDP]


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1",
            "PYTHONWARNINGS": "ignore", "WANDB_MODE": "offline", **extra}


def _gone(pgid: int, within_s: float) -> bool:
    """Whether every process of the group ``pgid`` has ended within ``within_s`` seconds."""
    import time

    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def _stop(tmp_path, png, name, target, at, out, env=None, timeout=180):
    sender = tmp_path / "sender.py"
    sender.write_text(SENDER)
    proc = subprocess.Popen([sys.executable, str(sender), name, target, str(at),
                             *_ddp_args(png, out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or _env(),
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None or not _gone(proc.pid, 10):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{name} to the {target} process(es): a process did not end")
    return proc.returncode, err


@pytest.mark.parametrize("name, target, tries", [
    ("SIGTERM", "main", 4), ("SIGINT", "main", 1), ("SIGTERM", "group", 3),
    ("SIGINT", "group", 2),
])
def test_a_signal_stops_every_process_at_one_checkpointed_step(name, target, tries, tmp_path,
                                                                small_png):
    code_of = {"SIGTERM": 143, "SIGINT": 130}
    for i in range(tries):
        out = tmp_path / f"{target}{i}"
        code, err = _stop(tmp_path, small_png, name, target, 5 + 7 * i, out)
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert code == code_of[name], err[-3000:]
        assert "Traceback" not in err and len(lines) == 1, err[-3000:]
        m = re.match(rf"inrbench: stopped by {name} at step (\d+); checkpoint at step \1 "
                     rf"written to ", lines[0])
        assert m and "--resume" in lines[0], lines[0]
        ckpts = sorted(p.name for p in (out / "checkpoints").iterdir())
        assert ckpts == ["last.ckpt"]  # the step's one checkpoint, no temporary file
        assert read_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == \
            int(m.group(1))
        assert not (out / "metrics.json").exists()


def test_a_stopped_multi_process_run_resumes_to_the_uninterrupted_result(tmp_path, small_png):
    out, ref = tmp_path / "stopped", tmp_path / "ref"
    code, err = _stop(tmp_path, small_png, "SIGTERM", "main", 20, out)
    assert code == 143, err[-3000:]
    resume = err.strip().split("resume with: inrbench ", 1)[1]
    for argv in (shlex.split(resume), _ddp_args(small_png, ref)):
        done = subprocess.run([sys.executable, "-m", "inrbench.cli", *argv],
                              capture_output=True, text=True, env=_env(), timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((ref / "metrics.json").read_text())
    assert got["steps"] == want["steps"] == DDP_STEPS
    assert got["psnr"] == pytest.approx(want["psnr"], abs=1e-4)
    a = pd.read_csv(out / "metrics.csv").dropna(subset=["loss"])
    b = pd.read_csv(ref / "metrics.csv").dropna(subset=["loss"])
    assert list(a["step"]) == list(b["step"]) == list(range(DDP_STEPS))
    torch.testing.assert_close(torch.tensor(a["loss"].values), torch.tensor(b["loss"].values),
                               rtol=1e-4, atol=1e-6)


def test_a_process_that_does_not_stop_is_ended_within_the_bound(tmp_path, small_png):
    """The other rank hangs (SIGSTOP) when SIGTERM arrives: the processes cannot agree, so
    the watchdog ends the main process and the one it started, and says so in one line."""
    import time

    out = tmp_path / "stuck"
    began = time.monotonic()
    code, err = _stop(tmp_path, small_png, "SIGTERM", "stuck", 5, out,
                      env=_env(INRBENCH_STOP_WITHIN_S="4"))
    assert code == 143, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "did not stop within 4 s" in lines[0], err[-3000:]
    assert f"continue from the newest in {out / 'checkpoints'} with --resume" in lines[0]
    assert time.monotonic() - began < 120
