"""Signals served from a file on disk (``--data memmap``): 8/16-bit samples converted per
batch give exactly the batches of the loaded signal, a block-sampled run trains on them
end to end, and the streamed evaluation equals the full render's PSNR."""

import json

import numpy as np
import pytest
import torch

from inrbench.blocks import stream_evaluate
from inrbench.cli import main
from inrbench.data import create_datamodule
from inrbench.data.base import RandomBlocks, RandomSamples, RandomTiles
from inrbench.data.mapped import MappedSignal, open_samples
from inrbench.errors import ConfigError, DataError
from inrbench.metrics import psnr
from inrbench.models import create_model

SHAPE = (24, 30)


def _write(tmp_path, dtype, raw=False):
    top = np.iinfo(dtype).max
    arr = np.random.default_rng(0).integers(0, top, size=(*SHAPE, 3), endpoint=True)
    arr = arr.astype(dtype)
    if raw:
        path = tmp_path / "signal.bin"
        arr.tofile(path)
    else:
        path = tmp_path / "signal.npy"
        np.save(path, arr)
    return path, torch.from_numpy(arr.astype(np.float32) / top)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("raw", [False, True])
def test_mapped_batches_equal_the_loaded_signals(tmp_path, dtype, raw):
    path, loaded = _write(tmp_path, dtype, raw)
    keys = {"shape": [*SHAPE, 3], "dtype": np.dtype(dtype).name} if raw else {}
    dm = create_datamodule("memmap", path=str(path), sampling="blocks", batch_size=60, **keys)
    assert dm.spec().shape == SHAPE and dm.spec().channels == 3
    dm.setup()
    assert isinstance(dm.signal, MappedSignal)  # nothing loaded for block sampling
    for make in (lambda s: RandomBlocks(s, SHAPE, (6, 5), 4, 5, seed=2, level=0),
                 lambda s: RandomSamples(s, SHAPE, 50, 5, seed=2),
                 lambda s: RandomTiles(s, SHAPE, (5, 7), 5, seed=2)):
        got, want = make(dm.signal)[3], make(loaded)[3]
        torch.testing.assert_close(got["values"], want["values"], rtol=0, atol=0)
        assert got["values"].dtype == torch.float32
    torch.testing.assert_close(dm.signal.load(), loaded, rtol=0, atol=0)


def test_bad_files_say_what_to_give(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        open_samples(tmp_path / "missing.npy")
    (tmp_path / "x.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ConfigError, match="data.shape"):
        open_samples(tmp_path / "x.bin")
    with pytest.raises(DataError, match="fewer than"):
        open_samples(tmp_path / "x.bin", shape=[4, 4, 3], dtype="uint8")
    np.save(tmp_path / "i.npy", np.zeros((4, 4, 3), dtype=np.int64))
    with pytest.raises(ConfigError, match="data.dtype"):
        open_samples(tmp_path / "i.npy")


def test_a_block_sampled_run_on_a_mapped_file(tmp_path):
    path, _ = _write(tmp_path, np.uint16)
    out = tmp_path / "run"
    argv = ["run", "--model", "asmr", "--data", "memmap", f"data.path={path}", "--steps", "4",
            "--out", str(out), "--logger", "none", "data.sampling=blocks",
            "data.batch_size=120", "model.hidden_dim=16", "model.n_layers=3",
            "trainer.latency_repeats=1", "trainer.latency_warmup=0",
            "trainer.progress_bar=false"]
    assert main(argv) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["blocks"]["shared"] and summary["steps"] == 4
    assert np.isfinite(summary["psnr"])


def test_the_streamed_evaluation_equals_the_full_render(tmp_path):
    path, loaded = _write(tmp_path, np.uint8)
    torch.manual_seed(0)
    model = create_model("asmr", signal_shape=SHAPE, out_features=3, n_layers=3,
                         bases=[[2, 3, 4], [5, 3, 2]], hidden_dim=16)
    full = model.render(SHAPE).detach()
    got = stream_evaluate(model, open_samples(path), chunk=40, out=tmp_path / "pred.npy")
    assert got["level"] > 0  # the signal was rendered in several groups of cells
    assert got["psnr"] == pytest.approx(psnr(full, loaded), abs=1e-3)
    written = np.load(tmp_path / "pred.npy")
    want = (full.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    assert np.abs(written.astype(int) - want.astype(int)).max() <= 1
