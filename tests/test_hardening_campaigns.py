"""Benches and sweeps keep their promises: everything is checked before the first run, a
rerun continues the same campaign or refuses in one line, folder names from files stay
inside the folder the user chose, and a refusal is exactly one line on the terminal."""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml
from cli_lines import error_line, run_cli

from inrbench import sweep
from inrbench.bench import bench, signals
from inrbench.config.campaign import plan_difference
from inrbench.config.experiment import load_experiment
from inrbench.errors import ConfigError, Interrupted
from inrbench.io import safe_name

TINY = ["model.hidden_dim=8", "model.n_layers=2", "task.eval_every=2",
        "trainer.checkpoint_every=2", "trainer.latency_repeats=1", "trainer.latency_warmup=0",
        "trainer.progress_bar=false", "trainer.logger=none"]


def _files(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


def _write(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _tiny_params(png) -> dict:
    return {"model.name": {"value": "siren"}, "data.name": {"value": "image"},
            "data.path": {"value": str(png)}, "model.hidden_dim": {"value": 8},
            "model.n_layers": {"value": 2}, "task.steps": {"value": 2},
            "task.eval_every": {"value": 2}, "trainer.latency_repeats": {"value": 1},
            "trainer.latency_warmup": {"value": 0}, "trainer.progress_bar": {"value": False},
            "trainer.logger": {"value": "none"}}


@pytest.fixture
def fake_run(monkeypatch):
    """Training replaced by a score of the trial's lr (the sweep loop is under test): the
    list holds the lr of every trial trained, ``fail`` the lrs whose training fails."""
    seen, fail = [], set()

    def run(cfg, resume=False, callbacks=None):
        lr = float(cfg.task.lr)
        seen.append(lr)
        if lr in fail:
            raise RuntimeError(f"diverged at lr={lr}")
        Path(cfg.trainer.out).mkdir(parents=True, exist_ok=True)
        return {"best_psnr": 20.0 + lr, "lr": lr, "steps": 2, "out": cfg.trainer.out}

    monkeypatch.setattr("inrbench.sweep.run", run)
    run.seen, run.fail = seen, fail
    return run


# -- 1. everything checked before the first run ----------------------------------------------

@pytest.mark.parametrize("args,names", [
    (["--models", "siren,nosuchmodel"], "unknown model 'nosuchmodel'"),
    (["--models", "siren", "model.nosuch=3"], "unknown key(s) model.nosuch"),
    (["--models", "siren", "data.nosuch=3"], "unknown key(s) data.nosuch"),
    (["--models", "siren", "task.lrr=1"], "unknown key task.lrr"),
    (["--models", "siren", "task.name=nosuch"], "unknown task 'nosuch'"),
    (["--models", "siren", "trainer.strategy=dpp"], "did you mean --strategy ddp?"),
    (["--models", "siren", "trainer.accelerator=mps"], "trainer.accelerator=mps"),
])
def test_bench_refuses_a_bad_name_or_key_before_anything_trains(small_png, tmp_path, capsys,
                                                                args, names):
    root = tmp_path / "b"
    code, out, err = run_cli(["bench", *args, "--data", "image", f"data.path={small_png}",
                              "--steps", "2", "--out", root, "--in-process", *TINY], capsys)
    assert code == 2 and names in error_line(err)
    assert not root.exists() and out == ""  # nothing trained, nothing written


def test_bench_refuses_an_unknown_experiment_row_before_training(tmp_path, capsys):
    code, _, err = run_cli(["bench", "--experiment", "table2", "--rows", "siren3,nosuch",
                            "--steps", "2", "--out", tmp_path / "b"], capsys)
    assert code == 2 and "unknown row(s) nosuch" in error_line(err)
    assert not (tmp_path / "b").exists()


def _grid(tmp_path, png, **searched) -> Path:
    return _write(tmp_path / "s.yaml", {"method": "grid", "metric": {"name": "best_psnr"},
                                        "parameters": {**_tiny_params(png), **searched}})


def test_sweep_with_a_typod_key_refuses_before_the_first_trial(small_png, tmp_path, capsys,
                                                                fake_run):
    file = _grid(tmp_path, small_png, **{"task.lrr": {"values": [1e-3, 1e-2]}})
    code, out, err = run_cli(["sweep", file, "--local", "--out", tmp_path / "s"], capsys)
    assert code == 2 and "unknown key task.lrr" in error_line(err)
    assert fake_run.seen == [] and not (tmp_path / "s").exists()


@pytest.mark.parametrize("param,bad", [
    # only the last value of a categorical parameter is wrong
    ({"model.name": {"values": ["siren", "ffn", "nosuchmodel"]}}, "nosuchmodel"),
    # only the lower end of a distribution is out of range
    ({"task.lr": {"distribution": "uniform", "min": -1.0, "max": 1e-3}}, "task.lr must be"),
    ({"task.steps": {"distribution": "int_uniform", "min": 0, "max": 3}}, "task.steps must"),
])
@pytest.mark.parametrize("method", ["random", "bayes"])
def test_random_and_bayes_sweeps_check_every_value_first(small_png, tmp_path, capsys,
                                                         fake_run, method, param, bad):
    params = {**_tiny_params(small_png), **param}
    file = _write(tmp_path / "s.yaml", {"method": method, "parameters": params,
                                        "metric": {"name": "best_psnr", "goal": "maximize"}})
    code, _, err = run_cli(["sweep", file, "--local", "--trials", "50", "--out",
                            tmp_path / "s"], capsys)
    assert code == 2 and bad in error_line(err)
    assert fake_run.seen == [] and not (tmp_path / "s").exists()


def test_planned_configs_cover_every_value():
    cfg = {"method": "random", "parameters": {
        "model.name": {"values": ["siren", "ffn", "wire"]},
        "task.lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1},
        "task.steps": {"distribution": "int_uniform", "min": 2, "max": 9},
        "trainer.seed": {"value": 3}}}
    seen: dict = {}
    for config in sweep.planned_configs(cfg, None):
        for k, v in sweep.trial_params(config).items():
            seen.setdefault(k, set()).add(v)
    assert seen["model.name"] == {"siren", "ffn", "wire"}
    assert seen["task.lr"] == {1e-5, 1e-1} and seen["task.steps"] == {2, 9}
    assert seen["trainer.seed"] == {3}
    grid = {"method": "grid", "parameters": {"task.lr": {"values": [1, 2, 3]},
                                             "task.steps": {"values": [4, 5]}}}
    assert len(sweep.planned_configs(grid, None)) == 6
    assert len(sweep.planned_configs(grid, 4)) == 4  # --trials 4: the trials that run


# -- 2. a rerun continues the same campaign or refuses ---------------------------------------

def test_bench_rerun_same_plan_continues_other_plan_refused_new_folder(small_png, tmp_path,
                                                                      capsys):
    root = tmp_path / "b"
    base = ["bench", "--models", "siren", "--data", "image", f"data.path={small_png}",
            "--out", root, "--in-process", *TINY]
    assert run_cli([*base, "--steps", "2"], capsys)[0] == 0
    plan = json.loads((root / "bench.json").read_text())["plan"]
    assert plan["task.steps"] == 2 and plan["models"] == ["siren"]
    before = {p: p.stat().st_mtime_ns for p in _files(root)}
    code, out, err = run_cli([*base, "--steps", "4"], capsys)
    assert code == 2
    assert "task.steps: 2 in the folder's plan, 4 now" in error_line(err) and "--new" in err
    assert {p: p.stat().st_mtime_ns for p in _files(root)} == before  # nothing touched
    code, out, err = run_cli([*base, "--steps", "2", "model.hidden_dim=16"], capsys)
    assert code == 2 and "overrides:" in error_line(err)
    code, out, _ = run_cli([*base, "--steps", "2"], capsys)  # the same plan: nothing to do
    assert code == 0 and "done" in out and "trained" not in out
    code, out, _ = run_cli([*base, "--steps", "4", "--new"], capsys)
    assert code == 0 and f"{root}-2" in out
    metrics = json.loads((Path(f"{root}-2") / "image" / "siren" / "seed0" /
                          "metrics.json").read_text())
    assert metrics["steps"] == 4
    assert json.loads((root / "image" / "siren" / "seed0" / "metrics.json").read_text())[
        "steps"] == 2


def test_bench_refuses_a_foreign_folder_and_a_run_of_another_budget(small_png, tmp_path):
    sigs = signals("image", None)
    over = [f"data.path={small_png}", *TINY]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds files but no bench.json"):
        bench(["siren"], sigs, foreign, steps=2, overrides=over, isolate=False)
    # a bench folder written before plans were recorded: its runs' budgets are compared
    root = tmp_path / "old"
    bench(["siren"], sigs, root, steps=2, overrides=over, isolate=False)
    record = json.loads((root / "bench.json").read_text())
    del record["plan"]
    (root / "bench.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="trained with task.steps=2, this bench plans 3"):
        bench(["siren"], sigs, root, steps=3, overrides=over, isolate=False)
    assert bench(["siren"], sigs, root, steps=2, overrides=over,
                 isolate=False)["runs"][0]["status"] == "done"


def test_sweep_rerun_keeps_finished_trials_and_retries_the_rest(small_png, tmp_path, capsys,
                                                                fake_run):
    file = _grid(tmp_path, small_png, **{"task.lr": {"values": [1e-3, 1e-2, 1e-1]}})
    out = tmp_path / "s"
    fake_run.fail.add(1e-2)
    code, _, _ = run_cli(["sweep", file, "--local", "--out", out], capsys)
    assert code == 1 and fake_run.seen == [1e-3, 1e-2, 1e-1]
    first = json.loads((out / "sweep.json").read_text())
    assert [t["status"] for t in first["trials"]] == ["finished", "failed", "finished"]
    fake_run.fail.clear()
    code, stdout, _ = run_cli(["sweep", file, "--local", "--out", out], capsys)
    assert code == 0 and fake_run.seen[3:] == [1e-2]  # only the failed trial trains again
    assert stdout.count("kept (finished earlier)") == 2
    again = json.loads((out / "sweep.json").read_text())
    assert [t["status"] for t in again["trials"]] == ["finished"] * 3
    assert [t["params"] for t in again["trials"]] == [t["params"] for t in first["trials"]]
    assert again["trials"][0] == first["trials"][0]  # kept as it was
    # another plan is refused in one line, the summary untouched; --new starts OUT-2
    code, _, err = run_cli(["sweep", file, "--local", "--out", out, "--steps", "3"], capsys)
    assert code == 2 and "task.steps: none in the folder's plan, 3 now" in error_line(err)
    assert json.loads((out / "sweep.json").read_text()) == again
    code, stdout, _ = run_cli(["sweep", file, "--local", "--out", out, "--steps", "3",
                               "--new"], capsys)
    assert code == 0 and (tmp_path / "s-2" / "sweep.json").is_file()


def test_sweep_rerun_with_more_trials_draws_what_one_long_sweep_draws(tmp_path, fake_run):
    params = {"model.name": {"value": "siren"}, "data.name": {"value": "cameraman"},
              "task.lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-1}}
    file = _write(tmp_path / "r.yaml", {"method": "bayes", "parameters": params,
                                        "metric": {"name": "best_psnr", "goal": "maximize"}})
    whole = sweep.run_local(file, trials=4, out=tmp_path / "whole")
    n = len(fake_run.seen)
    sweep.run_local(file, trials=2, out=tmp_path / "part")
    rest = sweep.run_local(file, trials=4, out=tmp_path / "part")
    assert len(fake_run.seen) - n == 4  # two trials, then the two new ones only
    assert [r["params"] for r in rest] == [r["params"] for r in whole]


def test_an_interrupted_sweep_says_how_to_continue_and_continues(small_png, tmp_path, capsys,
                                                                 monkeypatch, fake_run):
    file = _grid(tmp_path, small_png, **{"task.lr": {"values": [1e-3, 1e-2]}})
    calls = []

    def stopped(cfg, resume=False, callbacks=None):
        calls.append(resume)
        if len(calls) == 2:  # SIGTERM during the second trial, after its checkpoint
            ckpt = Path(cfg.trainer.out) / "checkpoints"
            ckpt.mkdir(parents=True)
            (ckpt / "last.ckpt").write_text("x")
            raise Interrupted(15, cfg.trainer.out, 1)
        return fake_run(cfg)

    monkeypatch.setattr("inrbench.sweep.run", stopped)
    code, _, err = run_cli(["sweep", file, "--local", "--out", tmp_path / "s"], capsys)
    assert code == 143 and "Traceback" not in err
    assert f"continue the sweep with: inrbench sweep {file} --local --out {tmp_path / 's'}" \
        in err
    record = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert [t["status"] for t in record["trials"]] == ["finished"]
    code, _, _ = run_cli(["sweep", file, "--local", "--out", tmp_path / "s"], capsys)
    assert code == 0 and calls == [False, False, True]  # trial 1 resumed, trial 0 kept


# -- 3. folder names from files are safe -----------------------------------------------------

@pytest.mark.parametrize("name,expect", [("x/../../../escape", "x_.._.._.._escape"),
                                         ("/etc/passwd", "_etc_passwd"), ("..", "__"),
                                         (".", "_"), ("", "_"), ("a:B", "a_B")])
def test_safe_name_is_always_one_folder(name, expect):
    assert safe_name(name) == expect
    assert Path(safe_name(name)).name == safe_name(name) and ".." != safe_name(name)


def test_a_sweep_name_cannot_place_its_folder_outside_runs(small_png, tmp_path, fake_run):
    file = _write(tmp_path / "s.yaml", {
        "name": "x/../../../escape", "method": "grid", "metric": {"name": "best_psnr"},
        "parameters": {**_tiny_params(small_png), "task.lr": {"values": [1e-3]}}})
    records = sweep.run_local(file)  # no --out: runs/sweep-<name>-<timestamp>
    folder = Path(records[0]["out"]).parent.resolve()
    assert folder.parent == (tmp_path / "runs").resolve()
    assert folder.name.startswith("sweep-x_.._.._.._escape-")
    assert not any(p.name.startswith("escape") for p in tmp_path.parent.iterdir())


@pytest.mark.parametrize("name", ["../experiment/table2", "/tmp/table2", "table2/.."])
def test_an_experiment_name_is_a_plain_name(name):
    with pytest.raises(ConfigError, match="unknown experiment"):
        load_experiment(name)


def test_plan_difference_names_the_first_key():
    assert plan_difference({"task.steps": 20}, {"task.steps": 40}) == \
        "task.steps: 20 in the folder's plan, 40 now"
    assert plan_difference({"a": [1]}, {"a": [1], "new_key": 2}) is None  # older record
    old = {"sweep": {"parameters": {"task.lr": {"values": [1, 2]}}}}
    new = {"sweep": {"parameters": {"task.lrr": {"values": [1, 2]}}}}
    assert plan_difference(old, new).startswith("sweep.parameters.task.lrr.values: absent")


# -- 5. one line means one line --------------------------------------------------------------

def test_sweep_refusals_print_one_line_in_a_fresh_process(tmp_path):
    """``import sweeps`` warns about pydantic v2 on import: filtered where it is imported,
    so a broken sweep file is one line on the terminal (a fresh process: the first import)."""
    broken = tmp_path / "broken.yaml"
    broken.write_text("method: grid\nparameters: [\n")
    env = {**os.environ, "PYTHONWARNINGS": "default", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", "import sys; from inrbench.cli import main; "
                           "sys.exit(main(sys.argv[1:]))", "sweep", str(broken), "--local"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert "cannot parse" in proc.stderr and proc.stdout == ""


def test_warnings_while_planning_go_to_the_log_not_the_terminal(small_png, tmp_path, capsys,
                                                                monkeypatch):
    from inrbench import bench as bench_module

    checked = bench_module.check_buildable

    def chatty(cfg):
        warnings.warn("a library's advice", UserWarning, stacklevel=1)
        checked(cfg)

    monkeypatch.setattr(bench_module, "check_buildable", chatty)
    base = ["bench", "--data", "image", f"data.path={small_png}", "--steps", "2",
            "--in-process", *TINY]
    code, _, err = run_cli([*base, "--models", "siren,nosuchmodel", "--out",
                            tmp_path / "x"], capsys)
    assert code == 2 and "nosuchmodel" in error_line(err) and "advice" not in err
    code, _, err = run_cli([*base, "--models", "siren", "--out", tmp_path / "b"], capsys)
    assert code == 0 and "advice" not in err
    assert "UserWarning: a library's advice" in (tmp_path / "b" / "warnings.log").read_text()


def test_an_interrupted_bench_says_how_to_continue_and_continues(small_png, tmp_path, capsys,
                                                                 monkeypatch):
    import inrbench.bench as bench_module

    def stopped(cfg, resume=False, callbacks=None):
        raise Interrupted(2, cfg.trainer.out, 1, saved=False)

    root = tmp_path / "b"
    argv = ["bench", "--models", "siren", "--data", "image", f"data.path={small_png}",
            "--steps", "2", "--out", root, "--in-process", *TINY]
    with monkeypatch.context() as m:
        m.setattr(bench_module, "run", stopped)
        code, _, err = run_cli(argv, capsys)
    assert code == 130 and "Traceback" not in err
    assert "continue the bench with: inrbench bench --models siren" in err
    assert err.strip().endswith(f"--out {root}")
    code, out, _ = run_cli(argv, capsys)
    assert code == 0 and "trained" in out
