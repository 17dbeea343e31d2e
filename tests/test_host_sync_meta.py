"""No host synchronisation per training step in the data-set tasks (meta-learning and
hypernetworks), as in the fit task (tests/test_host_sync.py): between two logging steps a
real run reads no tensor back to the host (every read of a tensor's value, counted through
the patched tensor methods on the CPU), and its metrics.csv holds the same floats whatever
the logging interval, so keeping the values on the device changes no record."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from host_reads import LogEvery, assert_reads_at_logging_steps, count_reads
from PIL import Image

from inrbench.config import compose
from inrbench.run import run

EVERY = 4  # the trainer's logging interval in the runs below

COMMON = ["data.size=[8,8]", "data.batch_size=3", "data.test_fraction=0.3",
          "task.eval_every=100", "trainer.checkpoint_every=100", "trainer.latency_repeats=1",
          "trainer.latency_warmup=0"]
TASKS = {
    "meta": ("asmr", ["model.hidden_dim=16", "model.n_layers=3",
                      "model.bases=[[2,2,2],[2,2,2]]", "task.latent_dim=4",
                      "task.inner_steps=2", "task.outer_lr=1e-3", "task.curve_steps=1"]),
    "hypernet": ("anr", ["model.hidden_dim=16", "model.n_layers=3", "model.token_len=8",
                         "model.n_heads=2", "model.head_dim=8", "model.att_threshold=0.01",
                         "model.pe_sigma=16.0", "task.hyper_dim=16", "task.patch_size=4",
                         "task.patch_padding=0", "task.enc_depth=1", "task.dec_depth=1",
                         "task.n_heads=2", "task.head_dim=8", "task.ff_dim=32", "task.lr=1e-3",
                         "task.scheduler=none", "task.ema_every=1", "task.coord_noise=false"]),
}


def _images(path, n=8):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        img = rng.integers(0, 255, (12, 12, 3)).astype(np.uint8)
        Image.fromarray(img).save(path / f"im{i}.png")
    return path


def _cfg(task: str, folder, out, steps: int, progress_bar: bool = False):
    model, keys = TASKS[task]
    return compose(model=model, data="images",
                   overrides=[f"data.path={folder}", *COMMON, *keys,
                              f"trainer.progress_bar={str(progress_bar).lower()}"],
                   extra={"task.name": task, "task.steps": steps, "trainer.out": str(out),
                          "trainer.logger": "none"})






@pytest.fixture
def reads(monkeypatch):
    return count_reads(monkeypatch)


@pytest.mark.parametrize("task", sorted(TASKS))
@pytest.mark.parametrize("progress_bar", [False, True])
def test_no_tensor_is_read_back_between_two_logging_steps(tmp_path, reads, task,
                                                          progress_bar):
    where, seen = reads
    steps = 3 * EVERY
    cfg = _cfg(task, _images(tmp_path / "imgs"), tmp_path / "o", steps, progress_bar)
    run(cfg, callbacks=[where, LogEvery(EVERY)])
    assert_reads_at_logging_steps(seen, EVERY, steps)
    rows = pd.read_csv(tmp_path / "o" / "metrics.csv").dropna(subset=["loss"])
    assert list(rows["step"]) == list(range(steps))  # every step's row, as floats
    assert rows["loss"].map(type).eq(float).all() and rows["psnr"].notna().all()


@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_records_do_not_depend_on_the_logging_interval(tmp_path, task):
    """Values read every step (interval 1) and read in batches of EVERY steps give the same
    metrics.csv, float for float, and the same summary."""
    folder = _images(tmp_path / "imgs")
    tables = {}
    for every in (1, EVERY):
        out = tmp_path / f"every{every}"
        summary = run(_cfg(task, folder, out, 2 * EVERY + 1), callbacks=[LogEvery(every)])
        tables[every] = (pd.read_csv(out / "metrics.csv"), summary)
    (a, sa), (b, sb) = tables[1], tables[EVERY]
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert len(a["loss"].dropna()) == 2 * EVERY + 1
    assert sa["best_psnr"] == sb["best_psnr"] and sa["psnr"] == sb["psnr"]
