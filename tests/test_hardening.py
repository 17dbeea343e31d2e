"""Issue 12: every user error is one line and exit 2, resume and results folders cannot be
corrupted or shared by accident, the console is quiet, reports and gates do not fail
silently. Each case the issue lists (and the ones found beside them) has a test here."""

from __future__ import annotations

import json
import math
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from cli_lines import error_line, run_cli

from inrbench.cli import main
from inrbench.errors import ConfigError
from inrbench.models import list_models

TINY = ["model.hidden_dim=16", "model.n_layers=3", "task.eval_every=5",
        "trainer.checkpoint_every=5", "trainer.latency_repeats=1", "trainer.latency_warmup=0",
        "trainer.progress_bar=false"]


def _tiny_run(png, out, steps=10, *extra):
    return ["run", "--model", "siren", "--data", "image", f"data.path={png}", "--steps", steps,
            "--out", out, "--logger", "none", *TINY, *extra]


# -- 1. one validation of every key, before anything is written ------------------------------

@pytest.mark.parametrize("override,key,allowed", [
    ("task.steps=abc", "task.steps", "an integer >= 1"),
    ("task.steps=0", "task.steps", "an integer >= 1"),
    ("task.steps=2.5", "task.steps", "an integer >= 1"),
    ("trainer.seed=abc", "trainer.seed", "an integer >= 0"),
    ("trainer.seed=-1", "trainer.seed", "an integer >= 0"),
    ("data.batch_size=abc", "data.batch_size", "an integer"),
    ("task.lr=-1", "task.lr", "a number > 0"),
    ("task.lr=0", "task.lr", "a number > 0"),
    ("task.lr=abc", "task.lr", "a number > 0"),
    ("task.lr=nan", "task.lr", "a number > 0"),
    ("task.lr_min=-0.5", "task.lr_min", "a number >= 0"),
    ("task.scheduler=linear", "task.scheduler", "one of cosine, none"),
    ("task.eval_every=0", "task.eval_every", "an integer >= 1"),
    ("task.accumulate=0", "task.accumulate", "an integer >= 1"),
    ("trainer.logger=tensorboard", "trainer.logger", "one of wandb, csv, none"),
    ("trainer.devices=0", "trainer.devices", "an integer >= 1"),
    ("trainer.checkpoint_every=abc", "trainer.checkpoint_every", "an integer >= 1"),
    ("trainer.keep_checkpoints=0", "trainer.keep_checkpoints", "an integer >= 1"),
    ("trainer.latency_warmup=-1", "trainer.latency_warmup", "an integer >= 0"),
    ("trainer.progress_bar=maybe", "trainer.progress_bar", "true or false"),
    ("trainer.accelerator=tpu9", "trainer.accelerator", "one of auto, cpu"),
    ("data.crop=5", "data.crop", "a list of integers"),
    ("data.sampling=everything", "data.sampling", "must be 'full'"),
])
def test_bad_value_exits_2_naming_key_value_and_allowed(override, key, allowed, small_png,
                                                        tmp_path, capsys):
    out = tmp_path / "o"
    code, _, err = run_cli(_tiny_run(small_png, out, 4, override), capsys)
    assert code == 2
    line = error_line(err)
    value = override.split("=", 1)[1]
    assert key in line and allowed in line and value in line, line
    assert not out.exists()  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.png"]


def test_wrong_types_from_the_issue_exit_2_in_a_fresh_process(tmp_path):
    """The issue's cases as a user types them (no --out: the default folder is not made)."""
    for args in (["--model", "siren", "model.hidden_dim=abc"], ["task.steps=abc"],
                 ["trainer.seed=abc"], ["data.batch_size=abc"], ["task.lr=-1"]):
        proc = subprocess.run([sys.executable, "-m", "inrbench.cli", "run", "--data", "image",
                               "data.path=x.png", *args], capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)
        assert proc.returncode == 2, proc.stderr
        line = error_line(proc.stderr)
        assert args[-1].split("=")[0] in line and args[-1].split("=")[1] in line
        assert not list(tmp_path.iterdir())


def _int_keys(model: str) -> list[str]:
    from inrbench.config.validation import Int, constructor_specs
    from inrbench.models.registry import MODELS

    skip = {"in_features", "out_features"}  # filled from the data
    return [k for k, s in constructor_specs(MODELS.get(model)).items()
            if isinstance(s, Int) and k not in skip]


@pytest.mark.parametrize("model", list_models())
def test_every_models_integer_keys_reject_text_and_zero(model, capsys):
    """One argument-check system for all models: every integer constructor argument rejects
    text by its annotation, and (with model.KEY=0) the constructor's own range check answers
    in the same one-line form. Profiling builds the model without training or writing."""
    keys = _int_keys(model)
    for key in keys:
        code, _, err = run_cli(["profile", "--model", model, "--data", "cameraman",
                                f"model.{key}=abc"], capsys)
        assert code == 2, (key, err)
        line = error_line(err)
        assert f"model.{key}" in line and "'abc'" in line and "integer" in line, line
    for key in [k for k in keys if k in ("hidden_dim", "n_layers", "n_levels")]:
        code, _, err = run_cli(["profile", "--model", model, "--data", "cameraman",
                                f"model.{key}=0"], capsys)
        assert code == 2 and f"model.{key}" in error_line(err) and "0" in err, (key, err)


def test_validation_spec_is_declared_in_one_place():
    """New keys: declared once (or typed by their default); declared keys are valid keys."""
    from inrbench.config import compose, validation

    validation.declare("task", resumable=["hardening_probe"],
                       hardening_probe=validation.Int(min=2))
    try:
        cfg = compose("siren", "cameraman", ["task.hardening_probe=3"])
        assert cfg.task.hardening_probe == 3
        with pytest.raises(ConfigError, match=r"task.hardening_probe must be an integer >= 2, "
                                              r"got 1"):
            compose("siren", "cameraman", ["task.hardening_probe=1"])
        assert "task.hardening_probe" in validation.RESUMABLE
    finally:
        validation.SCHEMA["task"].pop("hardening_probe")
        validation.RESUMABLE.discard("task.hardening_probe")
    # an undeclared key of defaults.yaml is checked against its default's type
    assert isinstance(validation.spec_from_default(0.5), validation.Num)
    assert isinstance(validation.spec_from_default(True), validation.Bool)
    # whole-number floats become ints (task.steps=1e4 from a command line)
    assert compose("siren", "cameraman", ["task.steps=1e2"]).task.steps == 100
    with pytest.raises(ConfigError, match="task.lr_min=0.1 is above task.lr"):
        compose("siren", "cameraman", ["task.lr=1e-3", "task.lr_min=0.1"])


# -- 2. resume --------------------------------------------------------------------------------

@pytest.fixture
def finished_run(tmp_path, small_png, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(_tiny_run(small_png, out, 20), capsys)
    assert code == 0, err
    return out


@pytest.mark.parametrize("args,needle", [
    (["--model", "asmr"], "holds a run of model 'siren', not --model asmr"),
    (["--data", "cameraman"], "holds a run of data 'image', not --data cameraman"),
    (["model.hidden_dim=32"], "model.hidden_dim=32 differs from 16"),
    (["task.lr=0.5"], "task.lr=0.5 differs from"),
    (["--seed", "3"], "trainer.seed=3 differs from 0"),
    (["trainer.seed=abc"], "trainer.seed must be an integer"),
    (["data.path=/elsewhere.png"], "data.path='/elsewhere.png' differs"),
])
def test_resume_refuses_arguments_that_disagree(finished_run, args, needle, capsys):
    before = {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file()}
    code, _, err = run_cli(["run", "--out", finished_run, "--resume", *args], capsys)
    assert code == 2 and needle in error_line(err)
    assert {p: p.stat().st_mtime_ns for p in finished_run.rglob("*") if p.is_file()} == before


def test_resume_with_more_steps_extends_the_cosine_schedule(finished_run, capsys):
    code, out, err = run_cli(["run", "--out", finished_run, "--resume", "--steps", 30],
                             capsys)
    assert code == 0, err
    assert "task.steps 20 -> 30" in out and "cosine schedule re-planned for 30 steps" in out
    csv = pd.read_csv(finished_run / "metrics.csv")
    lr = csv.dropna(subset=["lr"]).groupby("step")["lr"].first()
    assert list(lr.index) == list(range(30))
    cosine = lambda t, n: 1e-6 + (1e-4 - 1e-6) * (1 + math.cos(math.pi * t / n)) / 2  # noqa
    assert lr[19] == pytest.approx(cosine(19, 20), rel=1e-6)  # the 20-step run, as it was
    for t in (20, 25, 29):  # then the schedule of a 30-step run, ending at lr_min
        assert lr[t] == pytest.approx(cosine(t, 30), rel=1e-6)
    saved = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert saved["task"]["steps"] == 30
    assert json.loads((finished_run / "metrics.json").read_text())["steps"] == 30


def test_resume_cannot_go_back_before_the_checkpoint(finished_run, capsys):
    code, _, err = run_cli(["run", "--out", finished_run, "--resume", "--steps", 5], capsys)
    assert code == 2 and "at step 20, past task.steps=5" in error_line(err)


def test_checkpoints_keep_more_than_one_step(finished_run):
    names = sorted(p.name for p in (finished_run / "checkpoints").glob("*.ckpt"))
    assert names == ["last.ckpt", "step000010.ckpt", "step000015.ckpt", "step000020.ckpt"]


def test_keep_checkpoints_is_configurable(tmp_path, small_png, capsys):
    out = tmp_path / "run"
    code, _, err = run_cli(_tiny_run(small_png, out, 20, "trainer.keep_checkpoints=1"),
                           capsys)
    assert code == 0, err
    assert sorted(p.name for p in (out / "checkpoints").glob("*.ckpt")) == \
        ["last.ckpt", "step000020.ckpt"]


def test_truncated_last_checkpoint_falls_back_to_the_newest_readable(finished_run, capsys):
    ckpts = finished_run / "checkpoints"
    last = ckpts / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    (ckpts / "step000020.ckpt").write_bytes(b"garbage")
    (finished_run / "metrics.json").unlink()
    code, out, err = run_cli(["run", "--out", finished_run, "--resume"], capsys)
    assert code == 0, err
    assert "last.ckpt is unreadable" in out and "step000020.ckpt is unreadable" in out
    assert "resuming from step000015.ckpt (step 15) instead" in out
    summary = json.loads((finished_run / "metrics.json").read_text())
    assert summary["steps"] == 20
    csv = pd.read_csv(finished_run / "metrics.csv")
    assert csv["loss"].notna().sum() == 20  # steps 15..19 trained again, not duplicated


def test_no_readable_checkpoint_is_one_line(finished_run, capsys):
    for p in (finished_run / "checkpoints").glob("*.ckpt"):
        p.write_bytes(b"")
    code, _, err = run_cli(["run", "--out", finished_run, "--resume"], capsys)
    assert code == 2 and "no checkpoint in" in error_line(err)


class _Payload:
    """What a malicious checkpoint could hold: unpickling it runs code."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_resuming_a_shared_folder_never_unpickles_objects(finished_run, tmp_path, capsys):
    marker = tmp_path / "code-ran"
    ckpts = finished_run / "checkpoints"
    ckpt = torch.load(ckpts / "last.ckpt", weights_only=True)
    ckpt["evil"] = _Payload(str(marker))
    torch.save(ckpt, ckpts / "last.ckpt")
    with pytest.raises(pickle.UnpicklingError):  # plain pickle would run it
        torch.load(ckpts / "last.ckpt", weights_only=True)
    assert not marker.exists()
    (finished_run / "metrics.json").unlink()
    code, out, err = run_cli(["run", "--out", finished_run, "--resume"], capsys)
    assert code == 0, err
    assert not marker.exists() and "last.ckpt is unreadable" in out


def test_checkpoints_hold_plain_types_only(finished_run):
    from inrbench.checkpoint import plain

    ckpt = torch.load(finished_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert "state_dict" in ckpt and ckpt["global_step"] == 20
    fixed = plain({"a": np.float64(1.5), "b": [np.int64(2)], "c": Path("x"),
                   "d": np.zeros(2, np.float32)})
    assert fixed["a"] == 1.5 and type(fixed["a"]) is float and fixed["c"] == "x"
    assert isinstance(fixed["d"], torch.Tensor)
    with pytest.raises(TypeError, match=r"checkpoint\['bad'\] holds a .*_Payload"):
        plain({"bad": _Payload("x")})


# -- 3. the results folder: lock, stale lock, no half folder ---------------------------------

def _write_lock(out: Path, pid: int, host: str | None = None):
    from inrbench.run.folder import LOCK_NAME, _start_time

    out.mkdir(parents=True, exist_ok=True)
    (out / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                             "started": _start_time(pid), "since": "then"}))


def test_a_second_run_on_a_locked_folder_exits_2(tmp_path, small_png, capsys):
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(out, holder.pid)
        code, _, err = run_cli(_tiny_run(small_png, out, 4), capsys)
        assert code == 2
        line = error_line(err)
        assert f"in use by another inrbench run (process {holder.pid}" in line
        assert not (out / "config.yaml").exists()
        _write_lock(out, 1, host="another-host")  # another machine: cannot tell, refuse
        code, _, err = run_cli(_tiny_run(small_png, out, 4), capsys)
        assert code == 2 and "another-host" in error_line(err)
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_does_not_block(tmp_path, small_png, capsys):
    out = tmp_path / "stale"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_lock(out, dead.pid)
    code, stdout, err = run_cli(_tiny_run(small_png, out, 4), capsys)
    assert code == 0, err
    assert f"stale lock of process {dead.pid}" in stdout
    assert not (out / ".inrbench.lock").exists()  # released at the end
    assert (out / "metrics.json").exists()


def test_two_concurrent_runs_on_one_folder(tmp_path, small_png):
    """Two real processes: one trains, the other exits 2 naming the first."""
    out = tmp_path / "shared"
    cmd = [sys.executable, "-m", "inrbench.cli",
           *map(str, _tiny_run(small_png, out, 100000, "trainer.checkpoint_every=100000"))]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        import time
        deadline = time.time() + 120
        while not (out / ".inrbench.lock").exists() and time.time() < deadline:
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"process {first.pid}" in error_line(second.stderr)
    finally:
        first.kill()
        first.wait()


def test_a_run_failing_before_its_first_step_leaves_no_folder(tmp_path, small_png, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(small_png.read_bytes()[:300])  # the header reads, the pixels do not
    out = tmp_path / "deep" / "new" / "run"
    code, _, err = run_cli(_tiny_run(bad, out, 4), capsys)
    assert code == 2 and str(bad) in error_line(err)
    assert not (tmp_path / "deep").exists()  # nor the parents it created
    # the default folder (runs/<model>-<data>-<time>) is not left either
    os.chdir(tmp_path)
    argv = [a for a in map(str, _tiny_run(bad, "x", 4)) if a not in ("--out", "x")]
    assert run_cli(argv, capsys)[0] == 2
    assert not (tmp_path / "runs").exists()


def test_a_folder_left_before_the_first_checkpoint_is_reused(tmp_path, small_png, capsys):
    out = tmp_path / "left"
    out.mkdir()
    (out / "config.yaml").write_text("model: {name: siren}\n")  # killed before step 1
    (out / "notes.txt").write_text("mine")
    code, _, err = run_cli(_tiny_run(small_png, out, 4), capsys)
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine"
    code, _, err = run_cli(_tiny_run(small_png, out, 4), capsys)  # now it holds a run
    assert code == 2 and "already holds a run; pass --resume" in error_line(err)


def test_a_failure_in_an_existing_folder_removes_only_what_the_run_wrote(tmp_path, small_png,
                                                                         capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    bad = tmp_path / "bad.png"
    bad.write_bytes(small_png.read_bytes()[:300])
    assert run_cli(_tiny_run(bad, out, 4), capsys)[0] == 2
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


# -- 4. the console ---------------------------------------------------------------------------

def test_console_is_quiet_and_counts_steps(tmp_path, small_png):
    out = tmp_path / "run"
    argv = [a for a in map(str, _tiny_run(small_png, out, 30))
            if a != "trainer.progress_bar=false"]
    proc = subprocess.run([sys.executable, "-m", "inrbench.cli", *argv], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.replace("\r", "\n")
    for chatter in ("GPU available", "TPU available", "Tip", "weights_only", "LOCAL_RANK",
                    "Warning", "warn"):
        assert chatter not in err, err
    assert "30/30 steps" in err and "Epoch" not in err
    assert "<00:00" in err  # tqdm's time left
    assert "step 5/30: PSNR" in err and "step 30/30: PSNR" in err  # the periodic PSNR
    assert f"results: {out}" in proc.stdout


def test_verbose_shows_library_lines(tmp_path, small_png):
    proc = subprocess.run([sys.executable, "-m", "inrbench.cli",
                           *map(str, _tiny_run(small_png, tmp_path / "v", 2)), "--verbose"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "GPU available" in proc.stderr


def test_an_error_inside_training_is_one_line(tmp_path, small_png):
    """A corrupt PNG whose header still reads fails in the data module's setup, inside
    Lightning's fit: still one line, no banner before it, no folder after it."""
    bad = tmp_path / "bad.png"
    bad.write_bytes(small_png.read_bytes()[:300])
    proc = subprocess.run([sys.executable, "-m", "inrbench.cli",
                           *map(str, _tiny_run(bad, tmp_path / "o", 4))], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2
    assert str(bad) in error_line(proc.stderr)
    assert not (tmp_path / "o").exists()


# -- 5. reports and gates ---------------------------------------------------------------------

def test_profile_experiment_exits_1_on_an_undocumented_mismatch(tmp_path, monkeypatch, capsys):
    conf = Path(__file__).resolve().parent.parent / "conf"
    mine = tmp_path / "conf"
    for sub in ("model", "data", "sweep"):
        (mine / sub).mkdir(parents=True)
        for f in (conf / sub).glob("*.yaml"):
            (mine / sub / f.name).write_text(f.read_text())
    (mine / "defaults.yaml").write_text((conf / "defaults.yaml").read_text())
    (mine / "experiment").mkdir()
    exp = yaml.safe_load((conf / "experiment" / "table2.yaml").read_text())
    (mine / "experiment" / "table2.yaml").write_text(yaml.safe_dump(exp))
    monkeypatch.setenv("INRBENCH_CONF", str(mine))
    assert main(["profile", "--experiment", "table2"]) == 0
    capsys.readouterr()
    row = next(r for r in exp["rows"] if (r.get("paper") or {}).get("params")
               and not r.get("inconsistency"))
    printed = str(row["paper"]["params"])
    dec = len(printed.split(".")[1]) if "." in printed else 0
    row["paper"]["params"] = f"{float(printed) * 3 + 1:.{dec}f}"  # another figure, no note
    (mine / "experiment" / "table2.yaml").write_text(yaml.safe_dump(exp))
    assert main(["profile", "--experiment", "table2"]) == 1
    cap = capsys.readouterr()
    assert "MISMATCH" in cap.out and row["id"] in cap.err


def test_report_marks_a_row_whose_matching_failed(tmp_path, finished_run, monkeypatch,
                                                  capsys):
    """A row whose MACs cannot be had for a run is marked, naming the run and the error,
    and the report exits 1, never a silent '—'."""
    from inrbench.reports import tables
    from inrbench.reports.runs import find_runs

    runs = find_runs(finished_run.parent)
    assert runs
    errors: list[str] = []
    failed = {"macs_counts": None, "status": "error",
              "note": "cannot profile: RuntimeError: model rebuild failed"}
    assert tables.run_macs(runs[0], "bias", errors, lambda: failed) is None
    assert len(errors) == 1 and str(runs[0].path) in errors[0] and \
        "model rebuild failed" in errors[0]
    # a run whose config cannot be compared is named too, not skipped silently
    from inrbench.config.experiment import load_experiment

    exp = load_experiment("table2")
    monkeypatch.setattr(tables, "_identity", lambda cfg: (_ for _ in ()).throw(
        KeyError("model")) if cfg is runs[0].config else ())
    errors = []
    tables.match_runs(exp, exp.rows[0], runs, identity=("x",), errors=errors)
    assert errors and str(runs[0].path) in errors[0] and "KeyError" in errors[0]


def test_report_command_exits_1_and_names_the_failed_rows(tmp_path, finished_run,
                                                          monkeypatch, capsys):
    """A run whose matching raises is named in a 'Matching failures' section of the report
    (not dropped silently) and ``inrbench report`` exits 1."""
    from inrbench.reports import tables

    real = tables._identity

    def identity(cfg):
        if (cfg.get("trainer") or {}).get("out") == str(finished_run):
            raise KeyError("broken config")
        return real(cfg)

    monkeypatch.setattr(tables, "_identity", identity)
    code = main(["report", str(finished_run.parent), "--out", str(tmp_path / "rep"),
                 "--format", "md", "--tables", "2"])
    cap = capsys.readouterr()
    assert code == 1
    assert f"run {finished_run} could not be matched: KeyError" in cap.err
    report = (tmp_path / "rep" / "report.md").read_text()
    assert "Matching failures" in report and "broken config" in report


# -- 6. more of the same kind -----------------------------------------------------------------

@pytest.mark.parametrize("argv,needle", [
    (["compare", "/nonexistent-folder"], "/nonexistent-folder"),
    (["report", "/nonexistent-folder", "--out", "rep"], "/nonexistent-folder does not exist"),
    (["report", ".", "--out", "rep"], "no run results"),
    (["report", ".", "--format", "pdf"], "--format"),
    (["sweep", "/nonexistent.yaml", "--local"], "/nonexistent.yaml"),
    (["run", "--model", "siren", "--data", "audio", "data.seconds=-1", "data.path=x.wav"],
     "data.seconds"),
    (["run", "--model", "siren", "--data", "video", "data.frames=abc"], "data.frames"),
    (["run", "--model", "siren", "--data", "kodak", "data.image=30"], "data.image"),
    (["run", "--model", "siren", "--data", "image", "data.path=x.png", "task=3"],
     "task is a section of keys"),
    (["run", "--model", "siren", "--data", "image", "data.path=x.png", "trainer.out=5"],
     "trainer.out"),
    (["run", "--seeds", "1,1", "--model", "siren", "--data", "cameraman"], "distinct"),
    (["run", "--experiment", "table2", "--rows", "nope"], "nope"),
    (["run", "--experiment", "table2", "task.lr=-1"], "task.lr"),
    (["profile", "--model", "asmr", "--data", "cameraman", "model.modulator=quadratic"],
     "model.modulator"),
    (["profile", "--model", "siren", "--data", "cameraman", "model.omega0=-30"],
     "model.omega0"),
    (["profile", "--model", "siren", "--data", "cameraman", "model.omega0=abc"],
     "model.omega0"),
    (["run", "--model", "siren", "--data", "image", "data.path=x.png", "model.name=5"],
     "model"),
])
def test_more_bad_input_is_one_line(argv, needle, tmp_path, capsys):
    code, _, err = run_cli(argv, capsys)
    assert code == 2, err
    assert needle in error_line(err)
    assert not [p for p in tmp_path.iterdir() if p.name not in ("small.png",)]


def test_an_experiment_command_refuses_a_locked_folder_row_by_row(tmp_path, small_png,
                                                                  capsys):
    """Seeds: every seed folder is locked on its own; a busy one fails its seed with one line
    and the exit status says so."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _write_lock(tmp_path / "s" / "seed1", holder.pid)
        argv = [*_tiny_run(small_png, tmp_path / "s", 2), "--seeds", "1"]
        code, _, err = run_cli(argv, capsys)
        assert code == 2 and f"process {holder.pid}" in error_line(err)
    finally:
        holder.kill()
        holder.wait()


def test_sweep_trials_get_validated_values(tmp_path, small_png):
    """A sweep whose search space holds a value out of range is refused before its first
    trial, in one line naming the key; nothing is trained or written."""
    from inrbench import sweep

    file = tmp_path / "s.yaml"
    file.write_text(yaml.safe_dump({
        "method": "grid", "metric": {"name": "best_psnr", "goal": "maximize"},
        "parameters": {"model.name": {"value": "siren"}, "data.name": {"value": "image"},
                       "data.path": {"value": str(small_png)},
                       "model.hidden_dim": {"value": 8}, "model.n_layers": {"value": 2},
                       "task.steps": {"value": 2}, "task.eval_every": {"value": 2},
                       "trainer.latency_repeats": {"value": 1},
                       "trainer.progress_bar": {"value": False},
                       "task.lr": {"values": [-1.0, 1e-3]}}}))
    with pytest.raises(ConfigError, match="task.lr must be a number > 0"):
        sweep.run_local(file, out=tmp_path / "sw", extra={"trainer.logger": "none"})
    assert not (tmp_path / "sw").exists()
