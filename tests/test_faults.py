"""Faults of inputs and of the machine end in one line, never a traceback: tiny and degenerate
signals, corrupted bitstreams, a full disk, SIGTERM/SIGINT during training, broken YAML.
The suite's hardening tests (tests/test_hardening.py) cover user errors; these cover the
inputs that are valid but odd, damaged after they were written, or a machine that fails."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_lines import error_line, run_cli
from PIL import Image

from inrbench.compression.bitstream import Entry, decode, encode
from inrbench.compression.quant import quantize_ptq
from inrbench.errors import DataError
from inrbench.models import list_models

ROOT = Path(__file__).resolve().parent.parent
TINY = ["model.hidden_dim=8", "model.n_layers=2", "task.eval_every=5",
        "trainer.checkpoint_every=5", "trainer.latency_repeats=1", "trainer.latency_warmup=0",
        "trainer.progress_bar=false", "--logger", "none"]
METRICS = ("psnr", "ssim", "iou", "psnr_std", "ssim_std", "accuracy", "mae", "best_psnr")


# -- tiny and degenerate signals ---------------------------------------------------------------

def _png(path: Path, h: int, w: int) -> Path:
    rng = np.random.default_rng(h * 100 + w)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


def _wav(path: Path, n: int) -> Path:
    import soundfile as sf

    sf.write(path, np.linspace(-0.5, 0.5, n, dtype=np.float32), 16000)
    return path


def _mp4(path: Path, frames: int, h: int = 16, w: int = 16) -> Path:
    import av

    rng = np.random.default_rng(frames)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=1)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for _ in range(frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8),
                                               format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


BUNNY = ROOT / "datasets" / "samples" / "meshes" / "bunny00.off"
# data module, file maker, extra overrides: the smallest signal each modality accepts
TINY_SIGNALS = {
    "1x1 image": ("image", lambda d: _png(d / "a.png", 1, 1), []),
    "1x40 image": ("image", lambda d: _png(d / "a.png", 1, 40), []),
    "3x4 image": ("image", lambda d: _png(d / "a.png", 3, 4), []),
    "1-sample clip": ("audio", lambda d: _wav(d / "a.wav", 1), []),
    "1-frame video": ("video", lambda d: _mp4(d / "a.mp4", 1), []),
    "1x1x1 video": ("video", lambda d: _mp4(d / "a.mp4", 1), ["data.crop=[1,1,1]",
                                                              "data.batch_size=64"]),
    "one occupied voxel": ("occupancy", lambda d: BUNNY, ["data.resolution=5"]),
    "sdf, one voxel inside": ("sdf", lambda d: BUNNY, ["data.resolution=5"]),
}


@pytest.mark.parametrize("case", list(TINY_SIGNALS))
def test_tiny_signals_train_with_every_metric_defined(case, tmp_path, capsys):
    data, make, extra = TINY_SIGNALS[case]
    code, _, err = run_cli(["run", "--model", "siren", "--data", data,
                            f"data.path={make(tmp_path)}", "--steps", 3, "--out", tmp_path / "o",
                            *TINY, *extra], capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "o" / "metrics.json").read_text())
    scores = {k: record[k] for k in METRICS if k in record}
    assert "psnr" in scores and all(math.isfinite(v) for v in scores.values()), scores
    if data in ("image", "video"):
        assert -1 <= scores["ssim"] <= 1


@pytest.mark.parametrize("model", list_models())
def test_every_model_on_a_1x1_image_trains_or_names_the_minimum(model, tmp_path, capsys):
    """Models whose bases, grids or tiles assume a bigger signal refuse it in one line."""
    png = _png(tmp_path / "a.png", 1, 1)
    code, _, err = run_cli(["run", "--model", model, "--data", "image", f"data.path={png}",
                            "--steps", 2, "--out", tmp_path / "o", "--logger", "none",
                            "trainer.progress_bar=false", "trainer.latency_repeats=1",
                            "trainer.latency_warmup=0"], capsys)
    if code == 0:
        record = json.loads((tmp_path / "o" / "metrics.json").read_text())
        assert all(math.isfinite(record[k]) for k in ("psnr", "ssim"))
    else:
        assert code == 2 and re.search(r"at most|at least|>=", error_line(err))


def test_a_grid_with_no_occupied_voxel_is_refused_naming_the_minimum(tmp_path, capsys):
    code, _, err = run_cli(["run", "--model", "siren", "--data", "occupancy",
                            f"data.path={BUNNY}", "data.resolution=4", "--steps", 2,
                            "--out", tmp_path / "o", *TINY], capsys)
    assert code == 2 and "data.resolution must be >= 5" in error_line(err)


@pytest.mark.parametrize("h,w", [(1, 1), (1, 7), (7, 1), (2, 3), (5, 5), (6, 6), (300, 2)])
def test_ssim_of_small_images_is_one_for_a_perfect_fit_and_below_otherwise(h, w):
    from inrbench.metrics import per_frame, ssim_2d

    g = torch.Generator().manual_seed(h * w)
    target = torch.rand(h, w, 3, generator=g)
    other = torch.rand(h, w, 3, generator=g)
    assert ssim_2d(target, target) == pytest.approx(1.0, abs=1e-6)
    assert ssim_2d(other, target) < 1.0
    frames = per_frame(torch.stack([target, other]), torch.stack([target, target]))
    assert frames["ssim"][0] == pytest.approx(1.0, abs=1e-6) and frames["ssim"][1] < 1.0


# -- bitstreams --------------------------------------------------------------------------------

def _small_bitstream(bits: int = 8) -> tuple[bytes, dict]:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(6, 5, generator=g)
    return encode({"name": "siren"}, {"shape": [4, 4]},
                  [[Entry("w", quantize_ptq(w, bits, "affine")),
                    Entry("b", torch.randn(3, generator=g))]], "range")


def test_every_flipped_byte_of_a_bitstream_is_refused():
    data, _ = _small_bitstream()
    reference = decode(data).tensors
    for i in range(len(data)):
        for mask in (0xFF, 0x01, 0x80):
            bad = bytearray(data)
            bad[i] ^= mask
            with pytest.raises(DataError) as e:
                decode(bytes(bad))
            if i >= 5:  # past magic and version, the checksum catches it
                assert "corrupt bitstream: checksum mismatch" in str(e.value)
    assert set(reference) == {"w", "b"}


def test_a_format_1_bitstream_reads_unchecked_and_library_errors_are_one_line():
    """Format 1 (no CRC) still decodes, with a line saying so; its damaged bytes either decode
    (nothing can tell) or raise a DataError, the range coder's own AssertionError included."""
    g = torch.Generator().manual_seed(0)
    data, _ = encode({"name": "siren"}, {"shape": [4, 4]},
                     [[Entry("a", quantize_ptq(torch.randn(32, 32, generator=g), 4, "affine"))]],
                     "range")
    v1 = data[:4] + bytes([1]) + data[9:]  # the layout before the CRC field
    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert torch.equal(decode(v1).tensors["a"], decode(data).tensors["a"])
    assert "format 1 has no checksum" in said.getvalue()
    failures = []
    with contextlib.redirect_stdout(io.StringIO()):
        for i in range(len(v1)):
            for mask in (0xFF, 0x01):
                bad = bytearray(v1)
                bad[i] ^= mask
                try:
                    decode(bytes(bad))
                except DataError as e:
                    failures.append(str(e))
    assert all("\n" not in f for f in failures)
    assert any("corrupt bitstream: decoding failed (AssertionError" in f for f in failures)


def test_decompress_of_a_damaged_file_exits_2_in_one_line(tiny_cfg, small_png, tmp_path,
                                                          capsys):
    from inrbench.compress import compress_run
    from inrbench.run import run

    cfg = tiny_cfg(small_png, tmp_path / "run", model="siren", steps=3,
                   extra_overrides=["model.hidden_dim=16", "model.n_layers=3"])
    cfg.trainer.logger = "none"
    run(cfg)
    path = Path(compress_run(tmp_path / "run", bits=8)["file"])
    good = path.read_bytes()
    code, _, err = run_cli(["decompress", path], capsys)
    assert code == 0, err
    for where in (9, len(good) // 2, len(good) - 1):  # header, payload, last byte
        bad = bytearray(good)
        bad[where] ^= 0x24
        path.write_bytes(bytes(bad))
        code, out, err = run_cli(["decompress", path, "--out", tmp_path / "x.png"], capsys)
        line = error_line(err)
        assert code == 2 and str(path) in line and "checksum mismatch" in line
        assert not (tmp_path / "x.png").exists()


# -- a full disk -------------------------------------------------------------------------------

@contextlib.contextmanager
def _disk_full_at(monkeypatch, pattern: str):
    """Writes through inrbench.io whose file name matches ``pattern`` fail as a full disk does,
    at the fsync of the temporary file (what a real write does when the blocks run out)."""
    names: dict[int, str] = {}
    real_mkstemp, real_fsync = tempfile.mkstemp, os.fsync

    def mkstemp(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        names[fd] = name
        return fd, name

    def fsync(fd):
        if re.search(pattern, Path(names.get(fd, "")).name):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    with monkeypatch.context() as m:
        m.setattr(tempfile, "mkstemp", mkstemp)
        m.setattr(os, "fsync", fsync)
        yield


def _run_args(png, out, steps=12):
    return ["run", "--model", "siren", "--data", "image", f"data.path={png}", "--steps", steps,
            "--out", out, *TINY]


@pytest.mark.parametrize("pattern,what", [
    (r"^\.step000010\.ckpt\.", "step000010.ckpt"),
    (r"^\.last\.ckpt\.", "last.ckpt"),
    (r"^\.metrics\.json\.", "metrics.json"),
])
def test_a_full_disk_is_one_line_and_the_last_checkpoint_resumes(pattern, what, tmp_path,
                                                                  small_png, monkeypatch,
                                                                  capsys):
    out = tmp_path / "o"
    with _disk_full_at(monkeypatch, pattern):
        code, _, err = run_cli(_run_args(small_png, out), capsys)
    line = error_line(err)
    assert code == 2, err
    assert f"cannot write {what}" in line and str(out) in line and "No space left" in line
    assert not list(out.rglob("*.tmp"))  # no half-written file left behind
    assert "--resume" in line
    code, _, err = run_cli([*_run_args(small_png, out), "--resume"], capsys)
    assert code == 0, err
    assert json.loads((out / "metrics.json").read_text())["steps"] == 12


def test_an_unwritable_file_outside_inrbench_io_is_one_line(tmp_path, small_png, monkeypatch,
                                                            capsys):
    """A library writing on its own (a logger, a cache) hits the full disk too."""
    import inrbench.run.runner as runner

    def full(path, task):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(runner, "write_metrics_csv", full)
    code, _, err = run_cli(_run_args(small_png, tmp_path / "o", 5), capsys)
    assert code == 2 and "metrics.csv" in error_line(err) and "ENOSPC" in err


# -- SIGTERM and SIGINT ------------------------------------------------------------------------

# the CLI in a fresh process that sends itself SIGNAL once training reaches STEP (a callback,
# so the signal lands at a known step, not after a sleep)
KILLER = """
import os, signal, sys
import lightning as L
import inrbench.run.runner as runner
from inrbench.cli import main

sig, at = getattr(signal, sys.argv[1]), int(sys.argv[2])


class Kill(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == at:
            os.kill(os.getpid(), sig)


make = runner._trainer


def with_kill(*args):
    trainer = make(*args)
    trainer.callbacks.insert(0, Kill())
    return trainer


runner._trainer = with_kill
sys.exit(main(sys.argv[3:]))
"""


@pytest.mark.parametrize("name,code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_checkpoints_the_step_and_resume_completes_the_run(name, code, tmp_path,
                                                                    small_png, capsys):
    steps, at = 12, 7  # between the step-5 and step-10 checkpoints
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER)
    out = tmp_path / "stopped"
    argv = [str(a) for a in _run_args(small_png, out, steps)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(killer), name, str(at), *argv],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"inrbench: stopped by {name} at step {at}")
    assert "--resume" in lines[0] and str(out) in lines[0]
    assert not (out / "metrics.json").exists()
    from inrbench.checkpoint import read_checkpoint

    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["global_step"] == at
    # the line's command, as given, completes the run to the uninterrupted run's result
    resume = lines[0].split("resume with: inrbench ", 1)[1]
    import shlex

    code_, _, err = run_cli(shlex.split(resume), capsys)
    assert code_ == 0, err
    code_, _, err = run_cli(_run_args(small_png, tmp_path / "ref", steps), capsys)
    assert code_ == 0, err
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    assert got["steps"] == want["steps"] == steps
    assert got["psnr"] == pytest.approx(want["psnr"], abs=1e-4)
    assert got["best_psnr"] == pytest.approx(want["best_psnr"], abs=1e-4)


# -- broken YAML -------------------------------------------------------------------------------

BROKEN = "method: grid\nparameters:\n  task.lr: {values: [1, 2]\n  x: [\n"


def test_a_broken_sweep_file_is_one_line_with_line_and_column(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text(BROKEN)
    code, _, err = run_cli(["sweep", path], capsys)
    line = error_line(err)
    assert code == 2 and re.search(rf"cannot parse {re.escape(str(path))}, line \d+, column \d+",
                                   line)


@pytest.mark.parametrize("relative", ["model/siren.yaml", "defaults.yaml", "task/fit.yaml"])
def test_a_broken_conf_file_is_one_line_with_line_and_column(relative, tmp_path, small_png,
                                                             monkeypatch, capsys):
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    (conf / relative).write_text("model:\n  name: siren\n\tbad: [1\n")
    monkeypatch.setenv("INRBENCH_CONF", str(conf))
    code, _, err = run_cli(_run_args(small_png, tmp_path / "o", 2), capsys)
    line = error_line(err)
    assert code == 2 and f"cannot parse {conf / relative}, line 3, column 1" in line
    assert not (tmp_path / "o").exists()
