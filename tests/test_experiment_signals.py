"""Paper tables over a data set's signals and seeds: ``inrbench run --experiment E --vary
data.KEY=... --seeds ...`` trains every row on every signal and seed into
``OUT/<row id>/<signal>/seed<N>/``, records each row's mean ± sample std over its members in
``experiment.json``, and the report prints that row beside the paper's figure.

A scratch experiment (a copy of conf/ with one more file) keeps the runs tiny: Cameraman
crops of 16x16 and 16x24 (the two "signals"), a SIREN of width 8, 2 steps, which is also the
row's own length, so the runs are comparable with the row's printed figure. Expected numbers
are read back from the members' metrics.json, never typed in.
"""

from __future__ import annotations

import json
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from inrbench.cli import _resume_line, main
from inrbench.config.files import conf_dir
from inrbench.errors import Interrupted
from inrbench.reports.tables import fmt_number

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "inrbench-example-plugin"
NAME = "signals_scratch"
VARY = "data.crop=[16,16],[16,24]"
SIGNALS = ("cameraman-_16_16", "cameraman-_16_24")  # bench's labels of the two crops
CHEAP = ["--logger", "none", "trainer.latency_repeats=1", "trainer.latency_warmup=0",
         "trainer.progress_bar=false", "task.eval_every=2", "trainer.checkpoint_every=1"]


def _row(row_id: str, model: dict) -> dict:
    return {"id": row_id, "label": f"{row_id} (tiny)", "model": model, "task": {"lr": 1e-3},
            "paper": {"params": "0.1", "macs": "0.1", "psnr": "20.00"}}


EXPERIMENT = {
    "title": "Scratch table over signals", "source": "test",
    "signal": {"shape": [16, 16], "channels": 1},
    "units": {"params": "K", "macs": "K", "psnr": "dB"},
    "common": {"data": {"name": "cameraman", "crop": [16, 16], "sampling": "full"},
               "task": {"steps": 2, "scheduler": "cosine", "lr_min": 1e-6}},
    "rows": [_row("siren", {"name": "siren", "hidden_dim": 8, "n_layers": 2}),
             _row("gauss", {"name": "gauss_mlp", "hidden_dim": 8, "n_layers": 2})],
}


@pytest.fixture(scope="module")
def conf(tmp_path_factory):
    """A copy of conf/ holding the scratch experiment, for this module's tests."""
    root = tmp_path_factory.mktemp("conf") / "conf"
    shutil.copytree(conf_dir(), root)
    (root / "experiment" / f"{NAME}.yaml").write_text(OmegaConf.to_yaml(EXPERIMENT))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("INRBENCH_CONF", str(root))
        yield root


def _run(out: Path, *args: str) -> int:
    return main(["run", "--experiment", NAME, "--out", str(out), *CHEAP, *args])


@pytest.fixture(scope="module")
def trained(conf, tmp_path_factory):
    """The siren row on both crops and seeds 0, 1: four members."""
    out = tmp_path_factory.mktemp("signals") / "out"
    assert _run(out, "--rows", "siren", "--vary", VARY, "--seeds", "0,1") == 0
    return out


def _record(out: Path) -> dict:
    return {r["id"]: r for r in json.loads((out / "experiment.json").read_text())["rows"]}


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def _members(out: Path, row: str) -> dict[str, dict]:
    return {f"{row}/{s}/seed{n}": _metrics(out / row / s / f"seed{n}")
            for s in SIGNALS for n in (0, 1)}


def test_every_row_on_every_signal_and_seed_in_its_own_folder(trained):
    for folder, summary in _members(trained, "siren").items():
        _, sig, seed = folder.split("/")
        cfg = OmegaConf.load(trained / folder / "config.yaml")
        assert summary["seed"] == int(seed[4:]) and summary["steps"] == 2
        assert cfg.data.crop == ([16, 16] if sig.endswith("16_16") else [16, 24])
        assert summary["signal_shape"] == list(cfg.data.crop)
    # nothing else was trained: four run folders, under the row's folder
    assert len(list(trained.rglob("metrics.json"))) == 4
    row = _record(trained)["siren"]
    assert row["status"] == "ok" and row["vary"] == {"key": "data.crop",
                                                    "values": ["[16,16]", "[16,24]"]}
    assert [(m["signal"], m["seed"], m["status"]) for m in row["members"]] == [
        (s, n, "trained") for s in SIGNALS for n in (0, 1)]
    # the seeds took effect, and so did the signals
    values = [s["best_psnr"] for s in _members(trained, "siren").values()]
    assert len(set(values)) == 4


def test_the_aggregate_is_the_mean_and_sample_std_of_the_members(trained):
    members = _members(trained, "siren")
    agg = _record(trained)["siren"]["aggregate"]
    assert agg["n"] == agg["of"] == 4 and sorted(agg["over"]) == sorted(members)
    assert agg["metric"] == "psnr" and "ddof 1" in agg["std"]
    assert {"psnr", "best_psnr", "ssim", "params", "macs"} <= set(agg["figures"])
    for key, fig in agg["figures"].items():
        xs = [float(s[key]) for s in members.values()]
        assert fig["n"] == 4
        assert fig["mean"] == pytest.approx(statistics.fmean(xs), rel=1e-12)
        assert fig["std"] == pytest.approx(statistics.stdev(xs), rel=1e-12, abs=1e-12)
    # each member's entry keeps its own numbers, as its metrics.json has them
    for m in _record(trained)["siren"]["members"]:
        assert m["summary"]["psnr"] == members[m["folder"]]["psnr"]


def _report_line(results: Path, out: Path, label: str) -> str:
    assert main(["report", str(results), "--out", str(out), "--tables", NAME,
                 "--format", "md"]) == 0
    md = (out / "report.md").read_text()
    section = md.split(f"## {EXPERIMENT['title']}", 1)[1].split("\n## ", 1)[0]
    return next(line for line in section.splitlines() if line.startswith(f"| {label} |"))


def test_the_report_prints_mean_and_std_beside_the_paper(trained, tmp_path):
    xs = [s["best_psnr"] for s in _members(trained, "siren").values()]
    mean, std = statistics.fmean(xs), statistics.stdev(xs)
    line = _report_line(trained, tmp_path / "r", "siren (tiny)")
    cells = [c.strip() for c in line.split("|")]
    psnr = cells[cells.index("20.00") - 1]  # ours, then the paper's printed figure
    assert psnr.startswith(f"[{fmt_number(mean, 2)} ± {fmt_number(std, 2)}](")
    assert "0, 1 × 2 signals" in line


def test_one_run_per_row_keeps_its_folder_and_its_report_line(conf, tmp_path):
    """Without --vary and --seeds: OUT/<row id>/, as before, and no ± in the report."""
    out = tmp_path / "one"
    assert _run(out, "--rows", "siren") == 0
    summary = _metrics(out / "siren")
    assert _record(out)["siren"]["summary"]["best_psnr"] == summary["best_psnr"]
    assert "members" not in _record(out)["siren"]
    line = _report_line(out, tmp_path / "r", "siren (tiny)")
    assert f"[{fmt_number(summary['best_psnr'], 2)}](" in line and "±" not in line


def test_a_rerun_keeps_finished_members_and_resumes_an_interrupted_one(trained, tmp_path):
    out = tmp_path / "again"
    shutil.copytree(trained, out)
    folders = sorted(_members(out, "siren"))
    kept = {f: (out / f / "metrics.json").stat().st_mtime_ns for f in folders}
    # a member stopped after its checkpoint, before its results: no metrics.json yet
    (out / folders[0] / "metrics.json").unlink()
    assert _run(out, "--rows", "siren", "--vary", VARY, "--seeds", "0,1") == 0
    statuses = {m["folder"]: m["status"] for m in _record(out)["siren"]["members"]}
    assert statuses == {f: "resumed" if f == folders[0] else "done" for f in folders}
    assert _metrics(out / folders[0])["steps"] == 2
    for f in folders[1:]:  # untouched
        assert (out / f / "metrics.json").stat().st_mtime_ns == kept[f]
    # a rerun that plans another length is refused before anything trains
    assert _run(out, "--rows", "siren", "--vary", VARY, "--seeds", "0,1", "--steps", "3") == 2


def test_a_failing_member_is_recorded_and_the_others_train(conf, tmp_path, capsys):
    """One member's folder is held by another live process: that member fails, in one line,
    and the three others train."""
    import socket

    from inrbench.run.folder import LOCK_NAME, _start_time

    out = tmp_path / "busy"
    held = out / "siren" / SIGNALS[1] / "seed0"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        held.mkdir(parents=True)
        (held / LOCK_NAME).write_text(json.dumps({
            "pid": holder.pid, "host": socket.gethostname(), "started": _start_time(holder.pid),
            "since": "then"}))
        assert _run(out, "--rows", "siren", "--vary", VARY, "--seeds", "0,1") == 1
    finally:
        holder.kill()
        holder.wait()
    row = _record(out)["siren"]
    status = {m["folder"]: m["status"] for m in row["members"]}
    assert status.pop(f"siren/{SIGNALS[1]}/seed0") == "failed"
    assert set(status.values()) == {"trained"}
    assert row["status"] == "failed" and f"process {holder.pid}" in row["error"]
    assert row["aggregate"]["n"] == 3 and row["aggregate"]["of"] == 4
    assert "FAILED" in capsys.readouterr().out


@pytest.mark.parametrize("vary,message", [
    ("data.crop=[16,16],[999,16]", "data.crop must be [H, W] within the image size"),
    ("data.bogus=1,2", "unknown key(s) data.bogus"),
    ("crop=[16,16]", "--vary takes data.KEY=V1,V2"),
])
def test_a_bad_vary_value_is_one_line_and_nothing_is_written(conf, tmp_path, capsys, vary,
                                                             message):
    out = tmp_path / "bad"
    assert _run(out, "--vary", vary, "--seeds", "0,1") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not out.exists()


def test_vary_needs_an_experiment(capsys, tmp_path):
    assert main(["run", "--model", "siren", "--data", "cameraman", "--vary", VARY]) == 2
    assert "--vary needs --experiment" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_an_interrupted_member_names_the_experiment_folder_to_resume():
    stop = Interrupted(signal.SIGTERM, "runs/t/siren/cameraman-1/seed0", 7)
    line = _resume_line(stop, ["run", "--experiment", NAME, "--vary", VARY])
    assert line.endswith(f"--vary {shlex.quote(VARY)} --out runs/t --resume")


@pytest.fixture
def plugin(conf, tmp_path, monkeypatch):
    """The example plugin, installed as pip would (its entry points), then forgotten."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    from inrbench import plugins
    from inrbench.models.registry import MODELS

    site = tmp_path / "site"
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    info = site / f"{meta['name'].replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {meta['name']}\n"
                                   f"Version: 0.1.0\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in meta["entry-points"].items()))
    for path in (site, EXAMPLE / "src"):
        monkeypatch.syspath_prepend(str(path))
    before = set(MODELS._entries)
    plugins.load_plugins(reload=True)
    yield
    for name in set(MODELS._entries) - before:
        MODELS._entries.pop(name)
        MODELS.origins.pop(name, None)
    plugins.PROBLEMS.clear()
    plugins._state.clear()


def test_a_plugin_model_row_goes_over_signals_as_a_built_in_does(plugin, tmp_path):
    out = tmp_path / "plugin"
    assert _run(out, "--rows", "gauss", "--vary", VARY, "--seeds", "0,1") == 0
    members = _members(out, "gauss")
    assert {s["model"] for s in members.values()} == {"gauss_mlp"}
    agg = _record(out)["gauss"]["aggregate"]
    xs = [s["best_psnr"] for s in members.values()]
    assert agg["n"] == 4 and agg["figures"]["best_psnr"]["mean"] == pytest.approx(
        statistics.fmean(xs))
    assert agg["figures"]["best_psnr"]["std"] == pytest.approx(statistics.stdev(xs))
    line = _report_line(out, tmp_path / "r", "gauss (tiny)")
    assert " ± " in line and "0, 1 × 2 signals" in line
