"""Multi-process training: 2 CPU processes (DDP over gloo) reproduce the single-process run.

Every process iterates the same steps and takes its half of each step's batch; averaged
gradients equal the single-process gradient, so the loss curves agree to float rounding.
"""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from inrbench.cli import main
from inrbench.data.base import RandomSamples, RandomTiles, permute
from inrbench.errors import ConfigError

STEPS = 12
OVERRIDES = ["data.sampling=random", "data.batch_size=256", "model.hidden_dim=32",
             "model.n_layers=3", "task.lr=1e-3", "task.eval_every=6", "trainer.accelerator=cpu",
             "trainer.latency_repeats=1", "trainer.latency_warmup=0",
             "trainer.progress_bar=false"]


def _argv(png, out):
    return ["run", "--model", "siren", "--data", "image", f"data.path={png}", "--steps",
            str(STEPS), "--out", str(out), "--logger", "none", *OVERRIDES]


def test_two_processes_reproduce_the_single_process_loss_curve(tmp_path, small_png):
    single, multi = tmp_path / "single", tmp_path / "ddp"
    assert main(_argv(small_png, single)) == 0
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "inrbench.cli", *_argv(small_png, multi),
                           "--devices", "2", "--strategy", "ddp"],
                          capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    a = pd.read_csv(single / "metrics.csv").dropna(subset=["loss"])
    b = pd.read_csv(multi / "metrics.csv").dropna(subset=["loss"])
    assert list(a["step"]) == list(b["step"]) == list(range(STEPS))
    torch.testing.assert_close(torch.tensor(b["loss"].values), torch.tensor(a["loss"].values),
                               rtol=1e-4, atol=1e-6)
    assert a["loss"].iloc[-1] < a["loss"].iloc[0]  # it trained

    summary = json.loads((multi / "metrics.json").read_text())
    assert summary["devices"] == 2 and summary["strategy"] == "ddp"
    assert summary["steps"] == STEPS
    ref = json.loads((single / "metrics.json").read_text())
    assert summary["psnr"] == pytest.approx(ref["psnr"], abs=1e-3)
    # written once, by rank 0: no leftovers of a second writer
    assert not list(multi.glob(".*.tmp"))
    assert sorted(p.name for p in multi.iterdir() if p.is_file()) == \
        ["config.yaml", "metrics.csv", "metrics.json", "reconstruction.png"]


def test_shards_split_each_batch_and_every_sample_is_seen_once_per_epoch():
    signal = torch.rand(32, 48, 3)
    n, batch = 32 * 48, 256
    one = RandomSamples(signal, (32, 48), batch, length=100, seed=3)
    ranks = [RandomSamples(signal, (32, 48), batch, 100, seed=3, rank=r, world=2)
             for r in range(2)]
    for step in (0, 5, 6, 17):  # 6 steps per epoch: step 6 starts the second permutation
        whole = one[step]
        halves = [r[step] for r in ranks]
        assert torch.equal(torch.cat([h["coords"] for h in halves]), whole["coords"])
        assert torch.equal(torch.cat([h["values"] for h in halves]), whole["values"])
    epoch = torch.cat([one[i]["coords"] for i in range(n // batch)])
    assert len({tuple(c) for c in epoch.tolist()}) == n  # each sample exactly once
    next_epoch = torch.cat([one[i]["coords"] for i in range(n // batch, 2 * n // batch)])
    assert not torch.equal(epoch, next_epoch)  # a new permutation each epoch
    for size in (1, 2, 5, 1000, 4097):
        assert torch.equal(permute(torch.arange(size), size, 7).sort().values,
                           torch.arange(size))


def test_tiles_are_split_between_processes():
    signal = torch.rand(32, 48, 1)
    one = RandomTiles(signal, (32, 48), [8, 8], length=10, seed=1)
    halves = [RandomTiles(signal, (32, 48), [8, 8], 10, seed=1, rank=r, world=2)[4]
              for r in range(2)]
    assert torch.equal(torch.cat([h["values"] for h in halves]), one[4]["values"])


def test_a_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(ConfigError, match="split evenly over 2"):
        RandomSamples(torch.rand(4, 4, 1), (4, 4), 255, 1, rank=0, world=2)


@pytest.mark.parametrize("extra, needle", [
    (["data.sampling=full", "--devices", "2"], "full-signal training"),
    (["data.sampling=random", "--devices", "2", "--strategy", "ddp_spawn"], "use --strategy ddp"),
    (["data.sampling=full", "--num-nodes", "2"], "--devices 1 on 2 nodes needs"),
    (["data.sampling=random", "--num-nodes", "0"], "trainer.num_nodes"),
])
def test_unsupported_multi_process_setups_exit_2(tmp_path, small_png, capsys, extra, needle):
    argv = [a for a in _argv(small_png, tmp_path / "x") if a != "data.sampling=random"] + extra
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "x" / "checkpoints").exists()  # refused before training
