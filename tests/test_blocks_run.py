"""Block sampling end to end: `inrbench run ... data.sampling=blocks` with accumulation,
crash + resume, seeds, and two processes, through the real runner."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import torch
from test_run import _Crash

from inrbench.cli import main
from inrbench.run import run

BLOCKS = ["data.sampling=blocks", "data.batch_size=128"]


def test_crash_then_resume_with_blocks_and_accumulation(tmp_path, small_png, tiny_cfg):
    overrides = [*BLOCKS, "task.accumulate=2"]
    ref = run(tiny_cfg(small_png, tmp_path / "ref", steps=20, extra_overrides=overrides))
    assert ref["sampling"] == "blocks"
    blocks = ref["blocks"]
    assert blocks["chosen_by"] == "cost" and blocks["shared"]
    chosen = next(c for c in blocks["levels"] if c["level"] == blocks["level"])
    assert blocks["cell"] == chosen["cell"] and blocks["n_cells"] == chosen["n_cells"]
    assert blocks["samples_per_step"] == chosen["n_cells"] * chosen["cell"][0] * chosen["cell"][1]
    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny_cfg(small_png, out, steps=20, extra_overrides=overrides),
            callbacks=[_Crash(7)])
    assert main(["run", "--out", str(out), "--resume"]) == 0
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["steps"] == 20
    assert resumed["psnr"] == pytest.approx(ref["psnr"], abs=1e-4)
    a = pd.read_csv(tmp_path / "ref" / "metrics.csv").dropna(subset=["loss"])
    b = pd.read_csv(out / "metrics.csv").dropna(subset=["loss"])
    pd.testing.assert_series_equal(a["loss"].reset_index(drop=True),
                                   b["loss"].reset_index(drop=True), rtol=1e-4)
    assert a["loss"].iloc[-3:].mean() < a["loss"].iloc[:3].mean()  # it learns
    # a batch of cells is not the signal: only evaluations give PSNR, and the best is one
    full = pd.read_csv(tmp_path / "ref" / "metrics.csv")
    assert "psnr" not in full or full["psnr"].isna().all()
    assert ref["best_psnr"] == pytest.approx(max([ref["psnr"], *full["val_psnr"].dropna()]))


def test_a_model_without_sharing_trains_on_the_same_blocks(tmp_path, small_png, tiny_cfg,
                                                         capsys):
    summary = run(tiny_cfg(small_png, tmp_path / "siren", model="siren", steps=6,
                           extra_overrides=[*BLOCKS, "data.block=[4,4]"]))
    assert summary["blocks"]["shared"] is False and summary["blocks"]["cell"] == [4, 4]
    assert summary["blocks"]["n_cells"] == 8
    assert "no activation sharing" in capsys.readouterr().err


def test_seeds_with_blocks(tmp_path, small_png, capsys):
    out = tmp_path / "seeds"
    argv = ["run", "--model", "asmr", "--data", "image", f"data.path={small_png}", "--steps",
            "4", "--seeds", "0,1", "--out", str(out), "--logger", "none", *BLOCKS,
            "model.hidden_dim=16", "model.n_layers=3", "trainer.latency_repeats=1",
            "trainer.latency_warmup=0", "trainer.progress_bar=false"]
    assert main(argv) == 0
    s0 = json.loads((out / "seed0" / "metrics.json").read_text())
    s1 = json.loads((out / "seed1" / "metrics.json").read_text())
    assert s0["blocks"]["shared"] and s0["seed"] == 0 and s1["seed"] == 1
    assert s0["psnr"] != s1["psnr"]


def test_two_processes_share_the_cells_of_each_step(tmp_path, small_png):
    common = ["run", "--model", "asmr", "--data", "image", f"data.path={small_png}",
              "--steps", "8", "--logger", "none", *BLOCKS, "model.hidden_dim=32",
              "model.n_layers=3", "task.lr=1e-3", "task.eval_every=4",
              "trainer.accelerator=cpu", "trainer.latency_repeats=1",
              "trainer.latency_warmup=0", "trainer.progress_bar=false"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "inrbench.cli", *common, "--out",
                           str(tmp_path / "two"), "--devices", "2", "--strategy", "ddp"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = pd.read_csv(tmp_path / "one" / "metrics.csv").dropna(subset=["loss"])
    b = pd.read_csv(tmp_path / "two" / "metrics.csv").dropna(subset=["loss"])
    torch.testing.assert_close(torch.tensor(b["loss"].values), torch.tensor(a["loss"].values),
                               rtol=1e-4, atol=1e-6)
