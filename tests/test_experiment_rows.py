"""Every row of every experiment file trains for one step offline, through the same path as
``inrbench run --experiment E --rows R``, on small versions of its data (data keys the row
leaves open: a crop, a resolution, a shorter clip). A smaller signal than the paper's is a
stand-in of another shape: rows whose keys fit only the paper's shape (ASMR's bases) must
derive them as ``--model M --data D`` does, say so, and record the paper's keys."""

from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf

from inrbench.config import row_config
from inrbench.config.experiment import load_experiment, row_sections
from inrbench.config.files import list_experiments
from inrbench.experiments import run_experiment

#: per data set: data keys that make the row's signal small (the row's other keys stay)
SMALL = {
    "cameraman": ["data.crop=[32,32]"],
    "kodak": ["data.crop=[32,48]"],
    "pluto": ["data.crop=[48,64]", "data.batch_size=512"],
    "librispeech": ["data.seconds=0.02"],
    "shapenet_occupancy": ["data.resolution=8", "data.batch_size=256"],
    "cat_video": ["data.crop=[3,16,16]", "data.batch_size=256"],
    "uvg": ["data.crop=[3,16,16]", "data.batch_size=256"],
    "celeba": ["data.size=16", "data.max_train=4", "data.max_test=2"],
}
#: per task: task keys that make its evaluations small
TASK_SMALL = {
    "meta": ["data.batch_size=2", "task.eval_images=2", "task.grid_images=2",
             "task.curve_steps=1"],
}
CHEAP = ["trainer.latency_repeats=1", "trainer.latency_warmup=0", "trainer.latency_budget_s=1",
         "trainer.progress_bar=false", "trainer.checkpoint_every=1000"]
EXTRA = {"task.steps": 1, "trainer.logger": "none"}

#: rows that cannot run in this test, and why (each reason is asserted where it applies)
CANNOT: dict[tuple[str, str], str] = {
    ("anr", "anr"): "the official ANR size (6+6 transformer blocks of 512 at 128 px); one step "
                    "outlasts this test on a CPU: its twin anr_cpu runs the same code here",
    ("anr", "transinr"): "the official Trans-INR size; its twin transinr_cpu runs here",
}

ROWS = [(name, row["id"]) for name in list_experiments()
        for row in load_experiment(name).rows]


def _data(exp, row) -> str:
    return row_sections(exp, row).get("data", {}).get("name")


def _overrides(exp, row) -> list[str]:
    task = row_sections(exp, row).get("task", {}).get("name", "fit")
    return [*SMALL.get(_data(exp, row), []), *TASK_SMALL.get(task, []), *CHEAP]


@pytest.mark.parametrize("key", sorted(CANNOT))
def test_a_row_left_out_has_a_twin_that_runs(key):
    """A row left out for its size composes, and its CPU-sized twin runs in this test."""
    experiment, row_id = key
    exp = load_experiment(experiment)
    row = next(r for r in exp.rows if r["id"] == row_id)
    assert row_config(exp, row, CHEAP, EXTRA, served=True).model.name == row["model"]["name"]
    twin = next(r for r in exp.rows if r["id"] == f"{row_id}_cpu")
    assert (experiment, twin["id"]) not in CANNOT and twin["model"]["name"] == row["model"]["name"]
    assert f"twin {twin['id']}" in CANNOT[key]


@pytest.mark.parametrize("experiment", list_experiments())
def test_every_row_trains_one_step_offline(experiment, tmp_path, capsys):
    exp = load_experiment(experiment)
    rows = [r for r in exp.rows if (experiment, r["id"]) not in CANNOT]
    results = []
    capsys.readouterr()
    for row in rows:  # one row at a time: each gets the small keys of its own data
        results += run_experiment(exp, [row], tmp_path, _overrides(exp, row), EXTRA)
    failed = {r["id"]: r.get("error") for r in results if r["status"] != "ok"}
    assert not failed, failed
    listed = json.loads((tmp_path / "experiment.json").read_text())["rows"]
    assert [r["id"] for r in listed] == [r["id"] for r in rows]
    err = capsys.readouterr().err
    for r in results:
        assert r["summary"]["steps"] == 1
        record = r["summary"].get("paper_row")
        if record:  # a stand-in: the run says so and keeps the paper's shape-bound keys
            assert record["served_shape"] != record["paper_shape"]
            assert f"row '{r['id']}'" in err and "runs on a stand-in" in err


def test_a_stand_in_derives_the_bases_and_records_the_papers(tmp_path, capsys):
    """Table 5's ASMR on a Pluto stand-in: bases derived for the served shape, exactly as
    ``--model asmr --data pluto`` derives them; both kept in the records."""
    from inrbench.config import compose

    exp = load_experiment("table5")
    row = next(r for r in exp.rows if r["id"] == "asmr")
    small = SMALL["pluto"]
    cfg = row_config(exp, row, [*small, *CHEAP], EXTRA, served=True)
    direct = compose(model="asmr", data="pluto", overrides=[*small, *CHEAP], extra=EXTRA)
    assert cfg.model.bases is None and direct.model.bases is None
    paper = row["model"]["bases"]
    assert cfg.paper_row.paper_keys["model.bases"] == paper
    assert list(cfg.paper_row.served_shape) == [48, 64]
    assert direct.paper_row.paper_keys["model.bases"] == paper
    # profiling keeps the paper's keys, for the paper's shape
    assert row_config(exp, row).model.bases == paper
    [done] = run_experiment(exp, [row], tmp_path, [*small, *CHEAP], EXTRA)
    assert done["status"] == "ok", done.get("error")
    err = capsys.readouterr().err
    assert "runs on a stand-in" in err and "model.bases derived for it" in err
    summary = json.loads((tmp_path / "asmr" / "metrics.json").read_text())
    assert summary["paper_row"]["paper_keys"]["model.bases"] == paper
    bases = OmegaConf.load(tmp_path / "asmr" / "config.yaml").model.bases
    assert [math.prod(b) for b in bases] == [48, 64]  # the bases the run used
