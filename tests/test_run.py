"""End to end: `inrbench run` on a small real PNG; result files; crash and resume; CLI errors."""

import json
import os
import signal
import subprocess
import sys
import time

import lightning as L
import pandas as pd
import pytest
import yaml
from PIL import Image

from inrbench.cli import main
from inrbench.run import run


def _check_results(out, steps):
    summary = json.loads((out / "metrics.json").read_text())
    for key in ("model", "data", "params", "macs", "macs_measured", "psnr", "best_psnr", "ssim",
                "latency_ms", "steps", "seed", "wall_s", "versions", "git_sha", "backend"):
        assert key in summary, key
    assert summary["steps"] == steps
    assert summary["best_psnr"] >= summary["psnr"]
    # which machine trained it, so that its wall time is never read as another machine's
    assert summary["machine"]["accelerator"] == "cpu"
    assert summary["machine"]["device_name"] == summary["machine"]["cpu"] != ""
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert cfg["task"]["steps"] == steps
    if cfg["model"]["name"] == "asmr":  # the factorisation chosen at run time is recorded
        assert cfg["model"]["bases"] == [[2, 4, 4], [3, 4, 4]]
    csv = pd.read_csv(out / "metrics.csv")
    assert list(csv["step"].dropna().astype(int))[:3] == [0, 1, 2]
    assert csv["loss"].notna().sum() == steps
    with Image.open(out / "reconstruction.png") as im:
        assert im.size == (48, 32)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert not list(out.rglob("*.tmp"))
    return summary, csv


@pytest.mark.parametrize("model", ["asmr", "siren"])
def test_run_end_to_end_psnr_rises(tmp_path, small_png, tiny_cfg, model):
    out = tmp_path / "run"
    summary = run(tiny_cfg(small_png, out, model=model, steps=40))
    summary2, csv = _check_results(out, 40)
    assert summary == summary2
    first = csv["psnr"].dropna().iloc[0]
    assert summary["psnr"] > first + 4.0  # it learns
    assert summary["params"] > 0 and summary["latency_ms"] > 0
    assert csv["val_psnr"].notna().sum() == 4  # evaluations every 10 steps


class _Crash(L.Callback):
    """Simulates a process dying mid-run, after the step-10 checkpoint was written."""

    def __init__(self, at_step):
        self.at_step = at_step

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


def test_crash_then_resume_reaches_the_same_result(tmp_path, small_png, tiny_cfg):
    ref = run(tiny_cfg(small_png, tmp_path / "ref", steps=30))
    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny_cfg(small_png, out, steps=30), callbacks=[_Crash(13)])
    assert not (out / "metrics.json").exists()  # no half-written results
    assert main(["run", "--out", str(out), "--resume"]) == 0
    resumed, csv = _check_results(out, 30)
    assert resumed["psnr"] == pytest.approx(ref["psnr"], abs=1e-4)
    assert resumed["best_psnr"] == pytest.approx(ref["best_psnr"], abs=1e-4)
    ref_csv = pd.read_csv(tmp_path / "ref" / "metrics.csv")
    pd.testing.assert_series_equal(csv["loss"], ref_csv["loss"], rtol=1e-4)


def test_sigkill_then_resume(tmp_path, small_png):
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "inrbench.cli", "run", "--model", "asmr", "--data", "image",
           "--steps", "3000", "--out", str(out), "--logger", "csv", f"data.path={small_png}",
           "model.hidden_dim=32", "model.n_layers=3", "trainer.checkpoint_every=20",
           "task.eval_every=1000", "trainer.progress_bar=false"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoints" / "last.ckpt").exists() and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert not (out / "metrics.json").exists()
    resume = cmd[:3] + ["run", "--out", str(out), "--resume", "--steps", "60",
                        "trainer.latency_repeats=1"]
    done = subprocess.run(resume, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["steps"] == 60


def test_profile_json_has_exact_keys(capsys):
    assert main(["profile", "--model", "asmr", "--data", "cameraman", "--json",
                 "model.bases=[[4,4,4,8],[4,4,4,8]]"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert set(stats) == {"params", "macs", "macs_measured", "macs_source", "flops",
                          "flops_by_class", "cost_rule", "flops_unclassified"}
    assert stats["cost_rule"] == "inrbench-flops-1" and stats["flops_unclassified"] == []
    assert stats["macs_source"] == "paper convention"
    assert stats["params"] == 134_145 and round(stats["macs"], 1) == 1353.8


def test_profile_needs_only_the_shape(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("INRBENCH_DATA", str(tmp_path / "empty-cache"))
    assert main(["profile", "--model", "asmr", "--data", "kodak", "--json",
                 "model.bases=[[4,4,4,8],[4,4,6,8]]"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == 134_659


def test_list_names_models_data_and_experiments(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "asmr" in out and "siren" in out and "cameraman" in out and "experiments:" in out


@pytest.mark.parametrize("argv,needle", [
    (["run", "--model", "nope", "--data", "cameraman"], "unknown model 'nope'; valid choices"),
    (["run", "--model", "asmr", "--data", "nope"], "unknown data module 'nope'; valid choices"),
    (["run", "--model", "asmr", "--data", "cameraman", "task.nope=1"], "unknown key task.nope"),
    (["run", "--model", "asmr", "--data", "cameraman", "model.nope=1"],
     "unknown key(s) model.nope"),
    (["run", "--model", "asmr", "--data", "cameraman", "hidden_dim"], "bad override"),
    (["profile", "--model", "asmr", "--data", "cameraman", "model.bases=[[4,4,4,8],[4,4,4,4]]"],
     "axis 1 multiply to 256 but the signal has size 512"),
    (["run", "--model", "asmr", "--data", "image"], "data.path"),
    (["run", "--model", "asmr", "--data", "image", "data.path=/nonexistent.png"],
     "does not exist"),
    (["run", "--out", "/nonexistent-run", "--resume"], "does not exist"),
])
def test_bad_input_exits_2_with_one_line(argv, needle, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "inrbench.cli", *argv], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert not list(tmp_path.iterdir())  # rejected before any results folder is written
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr
    assert needle in lines[0]


def test_corrupt_image_is_named(tmp_path, small_png):
    bad = tmp_path / "bad.png"
    bad.write_bytes(small_png.read_bytes()[:200])  # truncated PNG
    proc = subprocess.run([sys.executable, "-m", "inrbench.cli", "run", "--model", "asmr",
                           "--data", "image", f"data.path={bad}", "--steps", "2",
                           "--out", str(tmp_path / "o"), "--logger", "none"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and str(bad) in proc.stderr and "Traceback" not in proc.stderr


def test_existing_run_is_not_overwritten(tmp_path, small_png, tiny_cfg):
    out = tmp_path / "run"
    run(tiny_cfg(small_png, out, steps=5))
    assert main(["run", "--model", "asmr", "--data", "image", f"data.path={small_png}",
                 "--out", str(out)]) == 2
