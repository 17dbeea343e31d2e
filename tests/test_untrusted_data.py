"""Files and models from elsewhere: an image header declaring a bomb is refused cheaply,
memory-mapped signals read right in every sample type, a model's output shape and a
non-finite loss stop a run in one line, and a failed run leaves a folder's own files as they
were."""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_lines import error_line, run_cli
from PIL import Image

from inrbench.data import mapped
from inrbench.data.base import RandomBlocks, RandomTiles
from inrbench.data.mapped import MappedSignal, open_samples, take
from inrbench.data.memmap import MemmapDataModule
from inrbench.metrics import evaluate
from inrbench.models import create_model
from inrbench.run.records import evaluate_fit

TINY = ["task.eval_every=5", "trainer.checkpoint_every=5", "trainer.latency_repeats=1",
        "trainer.latency_warmup=0", "trainer.progress_bar=false"]


# -- images whose header declares a decompression bomb ----------------------------------------

def bomb_png(path: Path, width: int = 60000, height: int = 60000) -> Path:
    """A 4x4 PNG whose IHDR chunk (CRC fixed) declares ``width`` x ``height`` pixels."""
    Image.new("RGB", (4, 4)).save(path)
    raw = bytearray(path.read_bytes())
    assert raw[12:16] == b"IHDR"
    raw[16:24] = struct.pack(">II", width, height)
    raw[29:33] = struct.pack(">I", zlib.crc32(bytes(raw[12:29])))
    path.write_bytes(bytes(raw))
    return path


def test_a_bomb_header_is_refused_in_one_line_without_a_large_allocation(tmp_path):
    """60000x60000 RGB decodes to 10.8 GB; the refusal reads the header only. Peak RSS is
    the child's own (a fresh parent process waits for it alone)."""
    bomb = bomb_png(tmp_path / "bomb.png")
    cli = [sys.executable, "-m", "inrbench.cli", "run", "--model", "siren", "--data", "image",
           f"data.path={bomb}", "--steps", "2", "--out", str(tmp_path / "o")]
    probe = textwrap.dedent(f"""
        import json, resource, subprocess, sys, time
        t = time.perf_counter()
        done = subprocess.run({cli!r}, capture_output=True, text=True)
        print(json.dumps({{"rc": done.returncode, "err": done.stderr,
                          "s": time.perf_counter() - t,
                          "kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}}))
        """)
    got = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                    text=True, timeout=300, check=True).stdout)
    assert got["rc"] == 2, got["err"]
    line = error_line(got["err"])
    assert "60000x60000" in line and "data.max_pixels=3600000000" in line, line
    assert got["kb"] < 1_500_000, f"peak RSS {got['kb']} kB"  # the interpreter and torch only
    assert not (tmp_path / "o").exists()


def test_a_bomb_in_a_folder_of_images_is_refused_too(tmp_path, small_png, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.open(small_png).save(folder / f"{i}.png")
    bomb_png(folder / "3.png", 30000, 30000)
    code, _, err = run_cli(["run", "--task", "meta", "--model", "siren", "--data", "images",
                            f"data.path={folder}", "data.size=[8,8]", "--steps", "1", "--out",
                            tmp_path / "o"], capsys)
    assert code == 2
    assert "30000x30000" in error_line(err) and "data.max_pixels" in error_line(err)


def test_a_bomb_given_to_the_codec_sweep_is_refused_in_one_line(tmp_path, capsys):
    bomb = bomb_png(tmp_path / "bomb.png")
    code, _, err = run_cli(["codecs", bomb, "--out", tmp_path / "c"], capsys)
    assert code == 2 and "60000x60000" in error_line(err)
    assert not (tmp_path / "c").exists()


def test_data_max_pixels_lowers_and_raises_the_limit(small_png, capsys):
    """small.png is 32x48 = 1536 pixels."""
    base = ["profile", "--model", "siren", "--data", "image", f"data.path={small_png}"]
    code, _, err = run_cli([*base, "data.max_pixels=1535"], capsys)
    assert code == 2 and "data.max_pixels=1536" in error_line(err)
    code, out, _ = run_cli([*base, "data.max_pixels=1536"], capsys)
    assert code == 0 and "(32, 48)x3" in out
    code, _, err = run_cli([*base, "data.max_pixels=0"], capsys)
    assert code == 2 and "data.max_pixels" in error_line(err)


# -- memory-mapped signals, every sample type -------------------------------------------------

@pytest.fixture
def picture():
    """A 24x40 RGB photo crop as uint8 and the float32 picture every file must give."""
    from skimage import data

    u8 = np.ascontiguousarray(data.astronaut()[100:148:2, 120:200:2])
    return u8, torch.from_numpy(u8.astype(np.float32) / 255.0)


FILES = {  # name -> (how the picture is stored, tolerance on [0, 1] values)
    "uint8": (lambda u8: u8, 1e-7),
    "uint16": (lambda u8: u8.astype(np.uint16) * 257, 1e-7),
    "float16": (lambda u8: (u8 / 255.0).astype(np.float16), 5e-4),
    "float32": (lambda u8: (u8 / 255.0).astype(np.float32), 1e-7),
}


def _write(tmp_path, u8, kind) -> MappedSignal:
    if kind == "raw":
        path = tmp_path / "picture.raw"
        u8.tofile(path)
        return open_samples(path, shape=list(u8.shape), dtype="uint8")
    path = tmp_path / f"picture_{kind}.npy"
    np.save(path, FILES[kind][0](u8))
    return open_samples(path)


def _churn():
    """Allocations that reuse freed pages: a read of an unmapped file would see them."""
    return [np.full(1 << 16, 7.0) for _ in range(64)]


@pytest.mark.parametrize("kind", [*FILES, "raw"])
def test_a_mapped_picture_equals_the_picture_whole_by_tiles_blocks_and_samples(
        tmp_path, picture, kind):
    u8, want = picture
    tol = FILES.get(kind, (None, 1e-7))[1]
    signal = _write(tmp_path, u8, kind)
    whole = signal.load()
    _churn()
    torch.testing.assert_close(whole, want, atol=tol, rtol=0)
    assert float(whole.double().sum()) == pytest.approx(float(want.double().sum()), rel=1e-4)
    block = signal.block((slice(3, 19), slice(8, 40), slice(None)))
    _churn()
    torch.testing.assert_close(block, want[3:19, 8:40], atol=tol, rtol=0)
    flat = torch.randperm(24 * 40, generator=torch.Generator().manual_seed(0))[:100]
    torch.testing.assert_close(take(signal, flat), take(want, flat), atol=tol, rtol=0)
    for mapped_set, memory_set in (
            (RandomTiles(signal, (24, 40), [8, 16], 4), RandomTiles(want, (24, 40), [8, 16], 4)),
            (RandomBlocks(signal, (24, 40), [4, 8], 6, 4),
             RandomBlocks(want, (24, 40), [4, 8], 6, 4))):
        for i in range(3):
            got, ref = mapped_set[i], memory_set[i]
            _churn()
            torch.testing.assert_close(got["values"], ref["values"], atol=tol, rtol=0)
            torch.testing.assert_close(got["coords"], ref["coords"])


@pytest.mark.parametrize("kind", FILES)
def test_a_mapped_picture_evaluates_as_the_picture(tmp_path, picture, kind):
    """The evaluation a memmap run makes: the validation item and the final score."""
    u8, want = picture
    path = tmp_path / "picture.npy"
    np.save(path, FILES[kind][0](u8))
    dm = MemmapDataModule(path=str(path), sampling="random", batch_size=64)
    dm.setup()
    assert isinstance(dm.signal, MappedSignal)  # training reads the file per batch
    item = next(iter(dm.val_dataloader()))["values"]
    _churn()
    torch.testing.assert_close(item, want, atol=FILES[kind][1], rtol=0)
    torch.manual_seed(0)
    model = create_model("siren", in_features=2, out_features=3, hidden_dim=16, n_layers=3)
    score = evaluate_fit(model, dm, dm.spec(), tmp_path)
    with torch.no_grad():
        ref = evaluate(model.render((24, 40)), want, dm.spec())
    assert math.isfinite(score["psnr"])
    assert score["psnr"] == pytest.approx(ref["psnr"], abs=0.01)


def test_uint8_and_float32_files_of_one_picture_train_to_one_score(tmp_path, picture, capsys):
    u8, _ = picture
    scores = {}
    for kind in ("uint8", "float32"):
        path = tmp_path / f"{kind}.npy"
        np.save(path, FILES[kind][0](u8))
        out = tmp_path / kind
        code, _, err = run_cli(["run", "--model", "siren", "--data", "memmap",
                                f"data.path={path}", "data.sampling=random",
                                "data.batch_size=256", "--steps", "6", "--out", out,
                                "--logger", "none", "model.hidden_dim=16", "model.n_layers=3",
                                *TINY], capsys)
        assert code == 0, err
        scores[kind] = json.loads((out / "metrics.json").read_text())["psnr"]
    assert math.isfinite(scores["float32"])
    assert scores["float32"] == pytest.approx(scores["uint8"], abs=0.01)


@pytest.mark.parametrize("dtype,value", [("float16", np.nan), ("float32", np.inf),
                                         ("float32", -np.inf)])
def test_a_non_finite_sample_is_refused_in_one_line(tmp_path, picture, capsys, dtype, value):
    arr = FILES[dtype][0](picture[0]).copy()
    arr[20, 33, 2] = value
    np.save(tmp_path / "bad.npy", arr)
    code, _, err = run_cli(["run", "--model", "siren", "--data", "memmap",
                            f"data.path={tmp_path / 'bad.npy'}", "--steps", "2", "--out",
                            tmp_path / "o"], capsys)
    assert code == 2
    line = error_line(err)
    assert "[20, 33, 2]" in line and str(float(value)) in line and "finite" in line, line
    assert not (tmp_path / "o").exists()


def test_the_finite_scan_reads_chunks_and_finds_the_sample_across_them(tmp_path, monkeypatch):
    """SCAN_CHUNK samples at a time (7 here, not a divisor of the size): memory follows the
    chunk, and the sample named is the right one however the chunks fall."""
    reads = []
    real = np.fromfile

    def counting(*args, **kwargs):
        chunk = real(*args, **kwargs)
        reads.append(chunk.size)
        return chunk

    monkeypatch.setattr(mapped, "SCAN_CHUNK", 7)
    monkeypatch.setattr(mapped.np, "fromfile", counting)
    arr = np.zeros((5, 6, 2), np.float32)
    np.save(tmp_path / "ok.npy", arr)
    open_samples(tmp_path / "ok.npy")
    assert max(reads) == 7 and sum(reads) == arr.size
    arr[4, 5, 0] = np.nan
    np.save(tmp_path / "bad.npy", arr)
    with pytest.raises(mapped.DataError, match=r"\[4, 5, 0\]"):
        open_samples(tmp_path / "bad.npy")


@pytest.mark.parametrize("shape", [(0, 16, 3), (16, 0)])
def test_an_empty_axis_is_refused_in_one_line(tmp_path, capsys, shape):
    np.save(tmp_path / "empty.npy", np.zeros(shape, np.uint8))
    code, _, err = run_cli(["run", "--model", "siren", "--data", "memmap",
                            f"data.path={tmp_path / 'empty.npy'}", "--steps", "2", "--out",
                            tmp_path / "o"], capsys)
    assert code == 2
    assert "empty axis" in error_line(err) and "no samples" in error_line(err)


# -- plugin models whose output is wrong --------------------------------------------------------

PLUGINS = '''
import torch
from torch import nn


class _Net(nn.Module):
    def __init__(self, in_features: int = 2, out_features: int = 1, hidden: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(),
                                 nn.Linear(hidden, out_features + 2))
        self.out_features = out_features


class Flat(_Net):
    """(n,) instead of (n, 1): a loss would broadcast it to (n, n)."""

    def forward(self, coords):
        return self.net(coords)[..., 0]


class Wide(_Net):
    """(n, C + 2)."""

    def forward(self, coords):
        return self.net(coords)


class NanAfter(_Net):
    """Right until its ``after``-th training forward, then NaN."""

    def __init__(self, in_features: int = 2, out_features: int = 1, after: int = 1000):
        super().__init__(in_features, out_features)
        self.after, self.calls = after, 0

    def forward(self, coords):
        out = self.net(coords)[..., : self.out_features]
        if self.training:
            self.calls += 1
            if self.calls > self.after:
                return out * float("nan")
        return out
'''


@pytest.fixture
def plugins(tmp_path, monkeypatch):
    """``bad_inrs`` importable as ``--model bad_inrs:Class``, and gone after the test."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "bad_inrs.py").write_text(PLUGINS)
    monkeypatch.syspath_prepend(str(site))
    yield "bad_inrs"
    sys.modules.pop("bad_inrs", None)


@pytest.mark.parametrize("model,data,got,want", [
    ("Flat", ["--data", "cameraman", "data.crop=[16,16]", "data.sampling=random",
              "data.batch_size=64"], "(2,)", "(2, 1)"),
    ("Wide", ["--data", "image"], "(2, 5)", "(2, 3)"),
])
def test_a_wrong_output_shape_is_refused_before_training(plugins, small_png, tmp_path, capsys,
                                                          model, data, got, want):
    if data[1] == "image":
        data.append(f"data.path={small_png}")
    out = tmp_path / "o"
    code, _, err = run_cli(["run", "--model", f"{plugins}:{model}", *data, "--steps", "3",
                            "--out", out, "--logger", "none", *TINY], capsys)
    assert code == 2
    line = error_line(err)
    assert f"'{plugins}:{model}'" in line and got in line and want in line, line
    assert not out.exists()


def _diverged(err: str, step: int) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("inrbench: error: ")]
    assert "Traceback" not in err and len(lines) == 1, err
    assert f"at step {step} is " in lines[0], lines[0]
    return lines[0]


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_what_is_kept(
        plugins, small_png, tmp_path, capsys):
    out = tmp_path / "late"
    code, _, err = run_cli(["run", "--model", f"{plugins}:NanAfter", "model.after=7", "--data",
                            "image", f"data.path={small_png}", "--steps", "10", "--out", out,
                            "--logger", "none", *TINY], capsys)
    assert code == 1
    line = _diverged(err, 7)
    assert "nan" in line and "step000005.ckpt" in line, line
    assert not (out / "metrics.json").exists()
    assert (out / "checkpoints" / "step000005.ckpt").exists()  # the last good state
    out = tmp_path / "early"
    code, _, err = run_cli(["run", "--model", f"{plugins}:NanAfter", "model.after=0", "--data",
                            "image", f"data.path={small_png}", "--steps", "10", "--out", out,
                            "--logger", "none", *TINY], capsys)
    assert code == 1
    assert "no checkpoint" in _diverged(err, 0)
    assert not out.exists()


IMAGES = ["data.size=[8,8]", "data.batch_size=3", "data.test_fraction=0.3",
          "trainer.checkpoint_every=5", "task.eval_every=5", "trainer.latency_repeats=1",
          "trainer.latency_warmup=0", "trainer.progress_bar=false"]
EVERY_TASK = {  # a learning rate of 1e30 makes the second step's loss overflow
    "fit": ["--model", "siren", "--data", "image", "model.hidden_dim=16", "model.n_layers=3",
            "task.lr=1e30"],
    "qat": ["--model", "siren", "--data", "image", "model.hidden_dim=16", "model.n_layers=3",
            "task.quant_bits=8", "task.lr=1e30"],
    "ofa": ["--model", "siren", "--data", "image", "model.hidden_dim=16", "model.n_layers=4",
            "task.ofa_widths=[8,16]", "task.ofa_depths=[1,2]", "task.lr=1e30"],
    "meta": ["--model", "asmr", "--data", "images", "model.hidden_dim=16", "model.n_layers=3",
             "model.bases=[[2,2,2],[2,2,2]]", "task.latent_dim=4", "task.inner_steps=2",
             "task.curve_steps=3", "task.outer_lr=1e30", *IMAGES],
    "hypernet": ["--model", "transinr", "--data", "images", "task.hyper_dim=16",
                 "task.patch_size=4", "task.patch_padding=0", "task.enc_depth=1",
                 "task.dec_depth=1", "task.n_heads=2", "task.head_dim=8", "task.ff_dim=32",
                 "task.grad_clip=null", "task.lr=1e30", *IMAGES],
}


@pytest.mark.parametrize("task", EVERY_TASK)
def test_every_task_stops_at_a_non_finite_loss_with_exit_1(small_png, tmp_path, capsys, task):
    args = EVERY_TASK[task]
    if "images" in args:
        folder = tmp_path / "imgs"
        folder.mkdir()
        for i in range(6):
            Image.open(small_png).rotate(60 * i).save(folder / f"{i}.png")
        args = [*args, f"data.path={folder}"]
    else:
        args = [*args, f"data.path={small_png}", *TINY]
    out = tmp_path / "o"
    code, _, err = run_cli(["run", "--task", task, *args, "--steps", "6", "--out", out,
                            "--logger", "none"], capsys)
    assert code == 1, err
    _diverged(err, 1)
    assert not out.exists()  # no checkpoint yet: nothing of the run is left


# -- a failed run leaves the folder's own files ---------------------------------------------

def _own_folder(root: Path) -> dict[str, bytes]:
    root.mkdir()
    (root / "config.yaml").write_text("mine: true\n")
    (root / "logs").mkdir()
    (root / "logs" / "notes.txt").write_text("my notes\n")
    (root / "logs" / "metrics.csv").write_text("step,loss\n0,1.0\n")  # the CSV logger's name
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "README").write_text("my checkpoints go here\n")
    (root / "data.csv").write_text("a,b\n1,2\n")
    return _tree(root)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*"))}


def test_a_run_failing_before_it_writes_leaves_the_folder_byte_identical(
        plugins, small_png, tmp_path, capsys):
    out = tmp_path / "mine"
    before = _own_folder(out)
    code, _, err = run_cli(["run", "--model", f"{plugins}:Wide", "--data", "image",
                            f"data.path={small_png}", "--steps", "3", "--out", out,
                            "--logger", "csv", *TINY], capsys)
    assert code == 2 and "(2, 5)" in error_line(err)
    assert _tree(out) == before


def test_a_run_failing_after_it_wrote_removes_only_its_own_files(
        plugins, small_png, tmp_path, capsys):
    """The run writes config.yaml over the user's and logs into their logs/; it diverges
    before its first checkpoint, and the folder is as it was."""
    out = tmp_path / "mine"
    before = _own_folder(out)
    code, _, err = run_cli(["run", "--model", f"{plugins}:NanAfter", "model.after=3", "--data",
                            "image", f"data.path={small_png}", "--steps", "10", "--out", out,
                            "--logger", "csv", *TINY], capsys)
    assert code == 1
    _diverged(err, 3)
    assert _tree(out) == before
