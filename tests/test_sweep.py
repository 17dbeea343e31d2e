"""Sweeps in the W&B format: local sweeps drawn by the ``sweeps`` engine, the mapping of a
W&B config onto inrbench overrides, the conf/sweep files, and the online path.

A real W&B server is impossible here (no network): the online sweep creation is tested with
``wandb.sweep`` and ``wandb.Api`` replaced, and ``agent-run`` with W&B offline, fed the trial
parameters the way ``wandb agent`` feeds them (a config file named by
``WANDB_SWEEP_PARAM_PATH``).
"""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from inrbench import sweep
from inrbench.cli import main
from inrbench.config.experiment import get_row, load_experiment
from inrbench.errors import ConfigError

SWEEP_DIR = Path(__file__).resolve().parent.parent / "conf" / "sweep"
LRS = [1.0e-4, 1.0e-3, 1.0e-2]


def _tiny_params(png) -> dict:
    return {"model.name": {"value": "siren"}, "data.name": {"value": "image"},
            "data.path": {"value": str(png)}, "model.hidden_dim": {"value": 16},
            "model.n_layers": {"value": 2}, "task.steps": {"value": 4},
            "task.eval_every": {"value": 2}, "trainer.latency_repeats": {"value": 1},
            "trainer.latency_warmup": {"value": 0}, "trainer.progress_bar": {"value": False}}


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_local_grid_sweep_runs_every_trial_as_a_run_folder(tmp_path, small_png, capsys):
    file = _write(tmp_path / "lr.yaml", {
        "method": "grid", "metric": {"name": "best_psnr", "goal": "maximize"},
        "parameters": {**_tiny_params(small_png), "task.lr": {"values": LRS}}})
    out = tmp_path / "sweep"
    assert main(["sweep", str(file), "--local", "--out", str(out), "--logger", "none"]) == 0
    trials = sorted(out.glob("trial-*"))
    assert [t.name for t in trials] == ["trial-000", "trial-001", "trial-002"]
    summaries = [json.loads((t / "metrics.json").read_text()) for t in trials]
    assert sorted(s["lr"] for s in summaries) == LRS  # the grid, each point once
    for t in trials:
        assert {"config.yaml", "metrics.csv", "reconstruction.png"} <= {p.name for p in
                                                                         t.iterdir()}
    table = pd.read_csv(out / "sweep.csv")
    assert list(table["status"]) == ["finished"] * 3
    assert list(table["best_psnr"]) == pytest.approx([s["best_psnr"] for s in summaries])
    assert list(table["steps"]) == [4, 4, 4]
    record = json.loads((out / "sweep.json").read_text())
    best = max(range(3), key=lambda i: summaries[i]["best_psnr"])
    assert record["best_trial"] == best
    assert "inrbench run --model siren --data image" in record["trials"][0]["command"]
    assert "3 of 3 trials finished" in capsys.readouterr().out


def _lr_errors(tmp_path, monkeypatch, method: str, trials: int = 12, seed: int = 0):
    """Run a local sweep of ``method`` over task.lr with training replaced by a score that
    peaks at lr=1e-3; returns each trial's distance from the peak in decades (and the
    records), so only the sweep loop and the search engine are under test."""
    seen = []

    def fake_run(cfg, resume=False, callbacks=None):
        lr = float(cfg.task.lr)
        seen.append(lr)
        return {"best_psnr": 30.0 - abs(math.log10(lr) + 3.0) * 5, "lr": lr,
                "out": cfg.trainer.out}

    monkeypatch.setattr("inrbench.sweep.run", fake_run)
    params = {"model.name": {"value": "siren"}, "data.name": {"value": "cameraman"},
              "task.lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}}
    file = _write(tmp_path / f"{method}.yaml", {
        "method": method, "parameters": params,
        "metric": {"name": "best_psnr", "goal": "maximize"}})
    records = sweep.run_local(file, trials=trials, out=tmp_path / method, seed=seed)
    assert len(records) == trials and all(r["status"] == "finished" for r in records)
    assert all(1e-5 <= lr <= 1e-1 for lr in seen)
    assert [r["params"]["task.lr"] for r in records] == pytest.approx(seen)
    return [abs(math.log10(lr) + 3) for lr in seen], records


def _concentrates(errors: list[float]) -> bool:
    """The second half of the trials sits near the optimum: their median is within 0.25
    decades of it. A draw from the 4-decade log-uniform prior lands there with probability
    1/8, so pure random search passes with probability about 0.004."""
    return float(np.median(errors[len(errors) // 2:])) < 0.25


def test_bayes_sweep_learns_from_the_trials_so_far(tmp_path, monkeypatch):
    """The search engine sees each finished trial's metric: Bayesian search's later trials
    concentrate near the optimum, and the same criterion fails for pure random search (so
    the test cannot pass without learning)."""
    errors, _ = _lr_errors(tmp_path, monkeypatch, "bayes")
    assert _concentrates(errors), errors
    best = json.loads((tmp_path / "bayes" / "sweep.json").read_text())["best_trial"]
    assert best == int(np.argmin(errors))
    random_errors, _ = _lr_errors(tmp_path, monkeypatch, "random")
    assert not _concentrates(random_errors), random_errors
    assert len(set(random_errors)) == len(random_errors)  # random search draws too
    # random search needs a trial count
    rfile = _write(tmp_path / "r.yaml", {"method": "random", "parameters": {
        "model.name": {"value": "siren"}, "task.lr": {"values": LRS}}})
    with pytest.raises(ConfigError, match="--trials"):
        sweep.run_local(rfile, out=tmp_path / "r")


def test_wandb_config_maps_to_overrides():
    flat = {"model.name": "asmr", "data.name": "cameraman", "task.lr": np.float64(2e-4),
            "model.bases": [[4, 4, 8, 4], [4, 4, 8, 4]], "_wandb": {"cli_version": "x"}}
    nested = {"model": {"name": "asmr", "bases": [[4, 4, 8, 4], [4, 4, 8, 4]]},
              "data": {"name": "cameraman"}, "task": {"lr": 2e-4}}
    wrapped = {k: {"value": v} for k, v in flat.items()}  # a sweeps.next_run trial
    for config in (flat, nested, wrapped):
        mapped = sweep.to_overrides(config)
        assert (mapped["model"], mapped["data"]) == ("asmr", "cameraman")
        assert sorted(mapped["overrides"]) == ["model.bases=[[4, 4, 8, 4], [4, 4, 8, 4]]",
                                               "task.lr=0.0002"]
        cfg, _ = sweep.compose_trial(config, {"task.steps": 7})
        assert cfg.task.lr == 2e-4 and cfg.task.steps == 7
        assert list(map(list, cfg.model.bases)) == [[4, 4, 8, 4], [4, 4, 8, 4]]
    # a paper row: its whole config, the command line's --steps winning over the file
    exp = load_experiment("table12")
    cfg, m = sweep.compose_trial({"experiment": "table12", "row": "b8444", "task.steps": 50},
                                 {"task.steps": 5})
    assert list(map(list, cfg.model.bases)) == get_row(exp, "b8444")["model"]["bases"]
    assert cfg.task.steps == 5
    assert sweep.command_line(m).startswith("inrbench run --experiment table12 --rows b8444")
    with pytest.raises(ConfigError, match="not a config key"):
        sweep.to_overrides({"lr": 1e-3})
    with pytest.raises(ConfigError, match="both 'experiment' and 'row'"):
        sweep.to_overrides({"experiment": "table12"})
    with pytest.raises(ConfigError, match="unknown key task.learning_rate"):
        sweep.compose_trial({"model.name": "siren", "task.learning_rate": 1e-3})


@pytest.mark.parametrize("path", sorted(SWEEP_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_sweep_files_are_valid_and_compose(path):
    import sweeps

    cfg = sweep.load_sweep(path)
    assert cfg["command"][:2] == ["inrbench", "agent-run"]
    trial = sweeps.next_run(cfg, [])
    run_cfg, _ = sweep.compose_trial(trial.config)
    assert run_cfg.model.name and run_cfg.data.name


def test_table12_sweep_covers_table12s_bases():
    cfg = sweep.load_sweep(SWEEP_DIR / "table12_bases.yaml")
    exp = load_experiment("table12")
    assert cfg["parameters"]["model.bases"]["values"] == [r["model"]["bases"] for r in exp.rows]
    fixed = {k[len("model."):]: v["value"] for k, v in cfg["parameters"].items()
             if k.startswith("model.") and "value" in v}
    for row in exp.rows:
        assert {k: row["model"][k] for k in fixed} == fixed


def test_online_sweep_is_created_and_prints_the_agent_command(tmp_path, monkeypatch, capsys):
    import wandb

    created = {}

    def fake_sweep(config, entity=None, project=None, prior_runs=None):
        created.update(config=config, entity=entity, project=project)
        return "abc123"

    class FakeApi:
        default_entity = "someone"

    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setattr(wandb, "sweep", fake_sweep)
    monkeypatch.setattr(wandb, "Api", FakeApi)
    file = SWEEP_DIR / "table12_bases.yaml"
    assert main(["sweep", str(file), "--project", "asmr"]) == 0
    assert "wandb agent someone/asmr/abc123" in capsys.readouterr().out
    assert created["project"] == "asmr"
    assert created["config"]["command"] == ["inrbench", "agent-run"]
    assert created["config"]["parameters"] == yaml.safe_load(file.read_text())["parameters"]

    monkeypatch.setenv("WANDB_MODE", "offline")
    assert main(["sweep", str(file)]) == 2
    assert "--local" in capsys.readouterr().err


def test_agent_run_trains_the_trial_in_wandb_config(tmp_path, small_png, monkeypatch):
    """As ``wandb agent`` starts it: the trial's parameters in a config file named by
    WANDB_SWEEP_PARAM_PATH, read by ``wandb.init`` into ``wandb.config`` (W&B offline)."""
    from wandb.sdk.lib import config_util

    params = {**_tiny_params(small_png), "task.lr": {"value": 3e-3}}
    param_file = tmp_path / "config-run1.yaml"
    config_util.save_config_file_from_dict(str(param_file), params)
    monkeypatch.setenv("WANDB_SWEEP_PARAM_PATH", str(param_file))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_SWEEP_ID", raising=False)
    assert main(["agent-run", "--out", str(tmp_path / "trials")]) == 0
    runs = list((tmp_path / "trials" / "no-sweep").glob("*/metrics.json"))
    assert len(runs) == 1
    summary = json.loads(runs[0].read_text())
    assert summary["lr"] == 3e-3 and summary["model"] == "siren" and summary["steps"] == 4
    saved = yaml.safe_load((runs[0].parent / "config.yaml").read_text())
    assert saved["model"]["hidden_dim"] == 16 and saved["trainer"]["logger"] == "wandb"
    assert list((tmp_path / "wandb").glob("offline-run-*"))
