"""Equal budgets (steps, wall time, epochs), time to quality, peak memory, and ``inrbench
bench``'s frontier on tiny real runs."""

import json
import os

import pandas as pd
import pytest
import torch
import yaml

from inrbench.bench import bench, signals
from inrbench.cli import main
from inrbench.config import compose
from inrbench.config.validation import parse_duration
from inrbench.errors import ConfigError
from inrbench.reports.frontier import answers, non_dominated
from inrbench.run import run
from inrbench.run.callbacks import Budget, BudgetCosine, WallClock
from inrbench.run.records import time_to_targets

TINY = ["model.hidden_dim=32", "model.n_layers=2", "task.lr=1e-3", "task.eval_every=5",
        "trainer.checkpoint_every=5", "trainer.latency_repeats=1", "trainer.latency_warmup=0",
        "trainer.progress_bar=false", "trainer.logger=none"]


def _cfg(png, out, model="siren", steps=20, extra=()):
    return compose(model=model, data="image", overrides=[f"data.path={png}", *TINY, *extra],
                   extra={"task.steps": steps, "trainer.out": str(out)})


@pytest.mark.parametrize("text,seconds", [(90, 90.0), ("90s", 90.0), ("10m", 600.0),
                                          ("1h30m", 5400.0), ("1.5h", 5400.0),
                                          ("00:10:00", 600.0), ("2", 2.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds
    assert parse_duration("") is None and parse_duration(" ") is None


@pytest.mark.parametrize("bad", ["abc", "10x", "-5", 0, "1..2s", True])
def test_a_bad_max_time_is_one_line(small_png, tmp_path, bad):
    assert parse_duration(bad) is None
    with pytest.raises(ConfigError, match="trainer.max_time must be a duration"):
        _cfg(small_png, tmp_path / "r", extra=[f"trainer.max_time={bad}"])


def test_budget_schedule_follows_the_larger_of_time_and_step_progress():
    clock = WallClock()
    budget = Budget(clock, max_time=10.0, max_epochs=None)
    budget.horizon = 100
    trainer = type("T", (), {"global_step": 20, "world_size": 1, "should_stop": False})()
    clock.train_elapsed = lambda: 5.0  # half the time, a fifth of the steps
    budget.on_train_batch_end(trainer, None, None, None, 0)
    assert budget.progress(trainer) == pytest.approx(0.5) and not trainer.should_stop
    clock.train_elapsed = lambda: 10.0
    budget.on_train_batch_end(trainer, None, None, None, 0)
    assert budget.progress(trainer) == 1.0 and trainer.should_stop and budget.timed_out
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=1e-2)
    p = {"v": 0.0}
    sched = BudgetCosine(opt, eta_min=1e-5, progress=lambda: p["v"])
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-2)
    for v, want in [(0.5, 1e-5 + (1e-2 - 1e-5) / 2), (1.0, 1e-5), (3.0, 1e-5)]:
        p["v"] = v
        opt.step()
        sched.step()
        assert opt.param_groups[0]["lr"] == pytest.approx(want)
    assert "progress" not in sched.state_dict()


def test_max_time_ends_the_run_and_the_record_says_so(small_png, tmp_path):
    out = tmp_path / "timed"
    s = run(_cfg(small_png, out, steps=10**6, extra=["trainer.max_time=1.5s"]))
    assert s["stopped_by"] == "max_time" and s["max_time"] == 1.5
    assert 0 < s["steps"] < 10**6
    assert s["train_s"] >= 1.5 and s["train_s"] + s["eval_s"] <= s["wall_s"] + 1e-6
    lr = pd.read_csv(out / "metrics.csv")["lr"].dropna()
    assert lr.is_monotonic_decreasing and lr.iloc[-1] < lr.iloc[0] / 2


def test_steps_and_epochs_bounds(small_png, tmp_path):
    s = run(_cfg(small_png, tmp_path / "steps", steps=6))
    assert s["stopped_by"] == "steps" and s["steps"] == 6
    e = run(_cfg(small_png, tmp_path / "epochs", steps=1000,
                 extra=["data.steps_per_epoch=4", "trainer.max_epochs=2"]))
    assert e["stopped_by"] == "epochs" and e["steps"] == 8
    lr = pd.read_csv(tmp_path / "epochs" / "metrics.csv")["lr"].dropna()
    assert lr.iloc[-1] < 0.1 * lr.iloc[0]  # planned over the 8 steps the epochs allow


def test_an_epoch_of_random_sampling_is_every_sample_once(small_png, tmp_path, capsys):
    from PIL import Image

    with Image.open(small_png) as im:
        n = im.size[0] * im.size[1]
    per_epoch = -(-n // 256)
    cfg = _cfg(small_png, tmp_path / "epochs", steps=10_000,
               extra=["data.sampling=random", "data.batch_size=256", "trainer.max_epochs=2",
                      "trainer.progress_bar=true"])
    s = run(cfg)
    assert s["stopped_by"] == "epochs" and s["steps"] == 2 * per_epoch
    assert s["steps_per_epoch"] == per_epoch and s["epochs"] == 2.0
    # the bar runs over the steps the epoch bound allows, and shows the epoch
    err = capsys.readouterr().err
    assert f"/{2 * per_epoch} steps" in err and "epoch=2/2" in err


def test_time_to_targets_memory_and_metric_spec_in_the_record(small_png, tmp_path):
    out = tmp_path / "run"
    s = run(_cfg(small_png, out, steps=15, extra=["task.targets=[5,1000]"]))
    evals = pd.read_csv(out / "metrics.csv").dropna(subset=["val_psnr"])
    assert evals["train_s"].is_monotonic_increasing and (evals["eval_s"] > 0).all()
    low, high = s["time_to_targets"]
    assert low["target"] == 5 and low["step"] == int(evals["step"].iloc[0])
    assert low["train_s"] == pytest.approx(float(evals["train_s"].iloc[0]))
    assert high == {"target": 1000.0, "metric": "psnr", "step": None, "train_s": None}
    for phase in ("train", "eval_render"):
        mem = s["memory"][phase]
        assert mem["rss_mb"] > 0 and mem["rss_source"]
        assert (mem["gpu_mb"] is None) == (not torch.cuda.is_available())
    assert s["peak_rss_mb"] == s["memory"]["train"]["rss_mb"]
    assert s["psnr_8bit"] == pytest.approx(s["psnr"], abs=0.5)
    assert s["metric_spec"]["ssim"]["window"] == 11
    assert s["metric_spec"]["lpips"]["value"] is None and s["metric_spec"]["lpips"]["reason"]


def test_time_to_targets_takes_the_first_crossing_and_the_final_score():
    task = type("T", (), {"targets": [20.0, 30.0, 40.0], "evals": [
        {"step": 10, "train_s": 1.0, "val_psnr": 21.0},
        {"step": 20, "train_s": 2.0, "val_psnr": 19.0},
        {"step": 30, "train_s": 3.0, "val_psnr": 29.0}]})()
    spec = type("S", (), {"modality": "image"})()
    got = time_to_targets(task, {"psnr": 31.0}, spec, step=35, train_s=3.5)
    assert [(g["step"], g["train_s"]) for g in got] == [(10, 1.0), (35, 3.5), (None, None)]


def _rec(model, q, **costs):
    base = {"macs": 1.0, "latency_ms": 1.0, "params": 1.0, "peak_rss_mb": 1.0, "train_s": 1.0}
    base.update(costs)
    return {"model": model, "quality": {"mean": q}, "time_to": {"30.0": {"mean": None}},
            **{k: {"mean": v} for k, v in base.items()}}


def test_non_dominated_and_the_one_line_answers():
    recs = [_rec("a", 31.0, latency_ms=5.0), _rec("b", 33.0, latency_ms=9.0),
            _rec("c", 30.0, latency_ms=9.0), _rec("d", 20.0, latency_ms=1.0)]
    assert non_dominated(recs, ["latency_ms"]) == ["a", "b", "d"]  # c: a is better and cheaper
    lines = answers(recs, 30.0, "dB")
    assert "cheapest to render at >= 30 dB: a (5 ms)" in lines
    assert answers(recs, 40.0, "dB") == ["no model reached 40 dB (best: b at 33.00 dB)"]


def test_signals_from_data_and_vary():
    assert [s.label for s in signals("cameraman,image")] == ["cameraman", "image"]
    got = signals("kodak", "data.image=1-3")
    assert [s.overrides for s in got] == [["data.image=1"], ["data.image=2"], ["data.image=3"]]
    assert signals("image", "data.path=a/x.png,b/y.png")[1].label == "image-y"
    with pytest.raises(ConfigError, match="--vary takes data.KEY"):
        signals("image", "model.x=1")


def test_bench_in_process_two_signals_rerun_skips(small_png, tmp_path):
    other = tmp_path / "flip.png"
    from PIL import Image

    with Image.open(small_png) as im:
        im.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(other)
    sigs = signals("image", f"data.path={small_png},{other}")
    root = tmp_path / "bench"
    done = bench(["siren", "ffn"], sigs, root, steps=3, overrides=TINY, quality=10.0,
                 isolate=False)
    assert [r["status"] for r in done["runs"]] == ["trained"] * 4
    report = json.loads((root / "frontier.json").read_text())
    assert report["signals"] == ["image-small", "image-flip"]
    assert {r["model"] for r in report["summary"]} == {"siren", "ffn"}
    assert all(r["quality"]["n"] == 2 for r in report["summary"])  # mean over the signals
    assert (root / "frontier-image-flip.json").is_file() and (root / "frontier.png").is_file()
    assert "10.0" in report["summary"][0]["time_to"]  # --quality joins the targets
    md = (root / "frontier.md").read_text()
    assert "mean ± std over signals" in md and report["answers"][0] in md
    again = bench(["siren", "ffn"], sigs, root, steps=3, overrides=TINY, isolate=False)
    assert [r["status"] for r in again["runs"]] == ["done"] * 4
    (root / "image-flip" / "ffn" / "seed0" / "metrics.json").unlink()  # as if interrupted
    third = bench(["siren", "ffn"], sigs, root, steps=3, overrides=TINY, isolate=False)
    assert [r["status"] for r in third["runs"]] == ["done"] * 3 + ["resumed"]
    (root / "frontier.json").unlink()
    assert main(["bench", "--report", str(root), "--quality", "10"]) == 0
    assert json.loads((root / "frontier.json").read_text())["answers"] == report["answers"]


def test_bench_cli_child_processes_and_a_plugin_model(small_png, tmp_path, monkeypatch,
                                                      capsys):
    site = tmp_path / "site"
    site.mkdir()
    (site / "tiny_inr.py").write_text(
        "from torch import nn\n\n\nclass Tiny(nn.Module):\n"
        "    def __init__(self, in_features: int = 2, out_features: int = 1):\n"
        "        super().__init__()\n        self.net = nn.Linear(in_features, out_features)\n\n"
        "    def forward(self, coords):\n        return self.net(coords)\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", f"{site}:{os.environ.get('PYTHONPATH', '')}")
    root = tmp_path / "b"
    tiny = [t for t in TINY if not t.startswith("model.")]
    assert main(["bench", "--models", "siren,tiny_inr:Tiny", "--data", "image",
                 f"data.path={small_png}", "--steps", "2", "--out", str(root),
                 "task.eval_every=1", *tiny]) == 0
    text = capsys.readouterr().out
    assert "[image tiny_inr:Tiny seed0] trained" in text
    report = json.loads((root / "frontier.json").read_text())
    tiny_rec = next(r for r in report["summary"] if r["model"] == "tiny_inr:Tiny")
    assert tiny_rec["macs_source"] == "measured" and tiny_rec["macs"]["mean"] > 0
    summary = json.loads((root / "image" / "siren" / "seed0" / "metrics.json").read_text())
    assert summary["stopped_by"] == "steps" and summary["steps"] == 2


@pytest.mark.parametrize("args,message", [
    (["--budget", "soon"], "--budget must be a duration"),
    ([], "give --budget TIME"),
    (["--steps", "2", "--seeds", "1,1"], "--seeds needs distinct"),
])
def test_bench_bad_input_is_one_line(small_png, tmp_path, capsys, args, message):
    assert main(["bench", "--models", "siren", "--data", "image", f"data.path={small_png}",
                 "--out", str(tmp_path / "x"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_bench_a_paper_tables_rows(tmp_path):
    root = tmp_path / "rows"
    done = bench([], [], root, steps=2, isolate=False, experiment="table2",
                 rows=["siren3", "siren4"],
                 overrides=["data.crop=[32,32]",
                            *[t for t in TINY if not t.startswith("model.")]])
    assert [(r["model"], r["status"]) for r in done["runs"]] == [("siren3", "trained"),
                                                                ("siren4", "trained")]
    report = json.loads((root / "frontier.json").read_text())
    assert [r["model"] for r in report["summary"]] == ["siren3", "siren4"]
    run_dir = root / "cameraman" / "seed0" / "siren4"
    assert json.loads((run_dir / "metrics.json").read_text())["steps"] == 2
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["n_layers"] == 4  # the row's model
