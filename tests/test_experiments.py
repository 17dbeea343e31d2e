"""Paper experiments (``conf/experiment/``): every file loads and every row composes into a
run config; every row's params and MACs equal the paper's printed figures at the printed
precision, or differ only where the row documents a paper inconsistency; ``inrbench profile
--experiment`` and ``inrbench run --experiment`` work end to end, and their user errors exit 2.
"""

import json
import math
import shutil

import pytest
from omegaconf import OmegaConf

import inrbench.data  # noqa: F401  (registers the data modules)
import inrbench.models  # noqa: F401  (registers the models)
from inrbench.cli import main
from inrbench.config import conf_dir, list_experiments, row_config
from inrbench.config.experiment import get_row, load_experiment, printed
from inrbench.errors import ConfigError
from inrbench.experiments import profile_row, row_signal
from inrbench.models import create_model
from inrbench.profiling import profile

PAPER_TABLES = [f"table{i}" for i in range(2, 13)]  # Tables 2-12; 7 and 9 are Figures 2, 3
ROWS = [(name, row["id"]) for name in list_experiments() for row in load_experiment(name).rows]
TINY = ["model.hidden_dim=32", "task.eval_every=3", "trainer.latency_repeats=1",
        "trainer.latency_warmup=0", "trainer.progress_bar=false"]


def test_one_experiment_per_paper_table():
    assert set(PAPER_TABLES) <= set(list_experiments())
    for name in PAPER_TABLES:
        exp = load_experiment(name)
        assert exp.rows and exp.title and exp.source


@pytest.mark.parametrize("name,row_id", ROWS)
def test_row_composes_into_a_run_config(name, row_id):
    exp = load_experiment(name)
    row = get_row(exp, row_id)
    cfg = row_config(exp, row)
    for section in ("model", "data", "task"):  # the row's keys over the table's common ones
        given = {**exp.common.get(section, {}), **row.get(section, {})}
        for key, value in given.items():
            assert OmegaConf.to_container(cfg[section])[key] == value, (section, key)
    assert cfg.task.steps > 0 and cfg.task.get("lr", cfg.task.get("outer_lr")) > 0
    if "epochs" in row:  # epochs -> steps: one epoch samples every sample (or the stated count)
        signal = row.get("signal") or exp.signal
        samples = row.get("samples_per_epoch") or math.prod(signal["shape"])
        assert cfg.task.steps == row["epochs"] * math.ceil(samples / cfg.data.batch_size)
    # the paper's signal; a registered data module must describe the same one
    spec = row_signal(exp, row, cfg)
    declared = row.get("signal") or exp.signal
    assert (list(spec.shape), spec.channels) == (declared["shape"], declared["channels"])


@pytest.mark.parametrize("name,row_id", ROWS)
def test_row_matches_the_paper_or_documents_why_not(name, row_id):
    """Printed params/MACs equal ours, except each figure the row documents as a paper
    inconsistency, which must really differ (and, with explained_by, be reproduced by the
    named count of ours)."""
    exp = load_experiment(name)
    row = get_row(exp, row_id)
    result = profile_row(exp, row)
    assert result["status"] != "error", result["note"]
    documented = row.get("inconsistency") or {}
    for key in exp.compared:  # params and MACs, or what the experiment compares (ANI: bpp)
        value = (row.get("paper") or {}).get(key)
        if value is None:
            assert key in documented and result["figures"][key] == "not printed"
        elif key in documented:
            assert result["figures"][key] == "documented", result["note"]
            assert result["ours_printed"][key] != value, result["note"]
            assert "NOT reproduced" not in result["note"], result["note"]
        else:
            assert result["ours_printed"][key] == value, result["note"]
            assert result["figures"][key] == "match"
    assert result["status"] == ("documented" if documented else "match"), result["note"]
    assert result["match"] is (not documented)


@pytest.mark.parametrize("rows", [
    [("table2", "loe4"), ("table8", "loe_h24")],  # 2.07K vs 1.992K
    [("table2", "siren3"), ("table7", "siren3")],  # 66.3K vs 66.8K
    [("table2", "siren4"), ("table7", "siren4")],  # 132K vs 132.6K
    [("table2", "asmr4"), ("table7", "asmr4"), ("table12", "b4448")],  # 1.35K vs 1.3K, 1.34K
])
def test_paper_prints_one_model_with_different_macs(rows):
    """The same network appears in several tables with MACs that disagree; each row states
    the count its table used, and under that count every printed figure is ours."""
    picked = [(load_experiment(name), row_id) for name, row_id in rows]
    picked = [(exp, get_row(exp, row_id)) for exp, row_id in picked]
    assert all(row["model"] == picked[0][1]["model"] for _, row in picked)
    assert len({row["paper"]["macs"] for _, row in picked}) == len(picked)
    assert len({row.get("macs_count", "model") for _, row in picked}) > 1
    results = [profile_row(exp, row) for exp, row in picked]
    assert len({r["params"] for r in results}) == 1
    for (_, row), r in zip(picked, results):
        assert r["figures"]["macs"] == "match", r["note"]
        assert r["macs"] == r["macs_counts"][row.get("macs_count", "model")]


def test_row_profile_is_the_rows_model():
    """The experiment path builds the row's own model, not a default one."""
    exp = load_experiment("table3")
    row = get_row(exp, "asmr")
    kwargs = {k: v for k, v in row["model"].items() if k != "name"}
    model = create_model("asmr", in_features=2, out_features=3,
                         signal_shape=exp.signal["shape"], **kwargs)
    stats = profile(model, exp.signal["shape"])
    result = profile_row(exp, row)
    assert result["params"] == stats["params"]
    assert result["macs"] == pytest.approx(stats["macs"])
    assert result["macs_measured"] == pytest.approx(stats["macs_measured"])


def test_printed_precision_rounds_half_up():
    assert printed(66_817, "66.8", "K") == "66.8"
    assert printed(1_289.5, "1.29", "K") == "1.29"
    assert printed(1_250, "1.3", "K") == "1.3"  # half up, not to even
    assert printed(1_313_792, "1313.79", "K") == "1313.79"
    assert printed(5_925.07, "0.006", "M") == "0.006"


# -- the comparison flags what it should, on a scratch copy of conf/ ------------------------

@pytest.fixture
def scratch_conf(tmp_path, monkeypatch):
    root = tmp_path / "conf"
    shutil.copytree(conf_dir(), root)
    monkeypatch.setenv("INRBENCH_CONF", str(root))

    def write(name, rows, **top):
        asmr3 = get_row(load_experiment("table2"), "asmr3")
        doc = {"title": "scratch", "source": "test", "signal": {"shape": [512, 512],
                                                                "channels": 1},
               "units": {"params": "K", "macs": "K"},
               "common": {"data": {"name": "cameraman"}, "task": {"steps": 5}},
               "rows": [{**asmr3, **r} for r in rows], **top}
        (root / "experiment" / f"{name}.yaml").write_text(OmegaConf.to_yaml(doc))
        return name

    return write


def test_mismatches_are_flagged(scratch_conf):
    good = get_row(load_experiment("table2"), "asmr3")["paper"]
    name = scratch_conf("flags", [
        {"id": "wrong", "paper": {**good, "params": "99.9"}},
        {"id": "stale", "inconsistency": {"params": "claimed to differ"}},
        {"id": "unexplained", "paper": {**good, "macs": "1.28"},
         "inconsistency": {"macs": {"note": "x", "explained_by": "macs:model"}}},
        {"id": "explained", "paper": {**good, "macs": "1.28"},
         "inconsistency": {"macs": {"note": "weights only", "explained_by": "macs:weights"}}},
    ])
    exp = load_experiment(name)
    results = {row["id"]: profile_row(exp, row) for row in exp.rows}
    assert results["wrong"]["status"] == "mismatch" and results["wrong"]["match"] is False
    assert results["wrong"]["figures"] == {"params": "MISMATCH", "macs": "match"}
    assert results["stale"]["status"] == "mismatch"
    assert results["stale"]["figures"]["params"] == "documented but matches"
    assert results["unexplained"]["status"] == "mismatch"
    assert "NOT reproduced by our macs:model" in results["unexplained"]["note"]
    assert results["explained"]["status"] == "documented"
    assert "reproduced by our macs:weights: 1.28K" in results["explained"]["note"]


def test_unregistered_data_profiles_from_the_declared_signal(scratch_conf):
    name = scratch_conf("later", [{"data": {"name": "not_written_yet"}}])
    exp = load_experiment(name)
    result = profile_row(exp, exp.rows[0])
    assert result["status"] == "match", result["note"]
    assert result["signal"] == [512, 512, 1]


@pytest.mark.parametrize("row,message", [
    ({"paper": {"params": 67.8, "macs": "1.29"}}, "quoted as printed"),
    ({"paper": {"params": "67.8"}}, "paper.macs is missing"),
    ({"bogus": 1}, "unknown key(s) bogus"),
    ({"macs_count": "flops"}, "macs_count must be one of"),
    ({"epochs": 3}, "epochs need data.batch_size"),
    ({"id": "a b"}, "folder-safe"),
])
def test_bad_rows_are_refused(scratch_conf, row, message):
    name = scratch_conf("bad", [row])
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_experiment(name)


def test_duplicate_row_ids_are_refused(scratch_conf):
    name = scratch_conf("dup", [{}, {}])
    with pytest.raises(ConfigError, match="used twice"):
        load_experiment(name)


# -- command line --------------------------------------------------------------------------

def test_cli_profile_experiment_json(capsys):
    assert main(["profile", "--experiment", "table7", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    exp = load_experiment("table7")
    assert [r["id"] for r in rows] == exp.row_ids
    for r in rows:
        assert {"id", "params", "macs", "macs_measured", "paper_params", "paper_macs", "match",
                "note"} <= set(r)
        row = get_row(exp, r["id"])
        assert r["paper_params"] == float(row["paper"]["params"])
        assert r["match"] is (not row.get("inconsistency"))
        assert "MACs:" in r["note"]  # every row says which count its MACs follow
    siren4 = next(r for r in rows if r["id"] == "siren4")
    assert siren4["macs"] == siren4["macs_counts"]["weights+biases"]
    assert "paper inconsistency" in siren4["note"]


def test_cli_profile_experiment_table(capsys):
    assert main(["profile", "--experiment", "table2"]) == 0
    out = capsys.readouterr().out
    for row_id in load_experiment("table2").row_ids:
        assert f"\n{row_id} " in out
    assert "6 rows: 6 match, 0 differ only by documented paper inconsistencies, 0 flagged" in out


@pytest.fixture(scope="module")
def table2_out(tmp_path_factory):
    return tmp_path_factory.mktemp("table2")


def test_cli_run_experiment_rows(table2_out, capsys):
    rc = main(["run", "--experiment", "table2", "--rows", "asmr4,siren3", "--steps", "3",
               "--out", str(table2_out), "--logger", "none", *TINY])
    assert rc == 0
    summary = json.loads((table2_out / "experiment.json").read_text())
    assert [r["id"] for r in summary["rows"]] == ["siren3", "asmr4"]  # the table's order
    for row_id, n_layers in (("siren3", 3), ("asmr4", 4)):
        folder = table2_out / row_id
        metrics = json.loads((folder / "metrics.json").read_text())
        cfg = OmegaConf.load(folder / "config.yaml")
        assert metrics["steps"] == 3 and cfg.model.n_layers == n_layers
        assert cfg.model.hidden_dim == 32 and cfg.data.name == "cameraman"
        assert (folder / "reconstruction.png").is_file()
    assert OmegaConf.load(table2_out / "asmr4" / "config.yaml").model.bases == [[4, 4, 4, 8]] * 2
    assert "2 of 2 rows trained" in capsys.readouterr().out


def test_cli_run_experiment_continues_past_a_failing_row(table2_out, capsys):
    """siren3 already holds a run in this folder, so it fails; asmr3 after it still trains."""
    assert (table2_out / "siren3" / "metrics.json").is_file(), "needs the run above"
    rc = main(["run", "--experiment", "table2", "--rows", "siren3,asmr3", "--steps", "3",
               "--out", str(table2_out), "--logger", "none", *TINY])
    assert rc == 1
    captured = capsys.readouterr()
    assert "row siren3 of table2 failed" in captured.err and "already holds a run" in captured.err
    assert "siren3: FAILED" in captured.out and "1 of 2 rows trained" in captured.out
    assert json.loads((table2_out / "asmr3" / "metrics.json").read_text())["steps"] == 3
    statuses = {r["id"]: r["status"] for r in
                json.loads((table2_out / "experiment.json").read_text())["rows"]}
    # asmr4, trained by the call above into the same folder, stays listed
    assert statuses == {"siren3": "failed", "asmr3": "ok", "asmr4": "ok"}
    assert list(statuses) == ["siren3", "asmr3", "asmr4"]


@pytest.mark.parametrize("content,message", [
    ('{"experiment": "table4", "rows": []}', "records experiment 'table4', not 'table2'"),
    ('{"experiment": "tab', "is not readable JSON"),
])
def test_cli_run_experiment_refuses_a_foreign_experiment_json(tmp_path, capsys, content, message):
    (tmp_path / "experiment.json").write_text(content)
    assert main(["run", "--experiment", "table2", "--rows", "asmr3", "--steps", "1",
                 "--out", str(tmp_path), "--logger", "none", *TINY]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "asmr3").exists()  # refused before training


@pytest.mark.parametrize("argv,message", [
    (["run", "--experiment", "nope"], "unknown experiment 'nope'; valid choices: "),
    (["profile", "--experiment", "nope"], "unknown experiment 'nope'; valid choices: "),
    (["run", "--experiment", "table2", "--rows", "asmr3,nope"],
     "unknown row(s) nope in experiment table2; valid rows: kilonerf3, loe4, siren3"),
    (["run", "--experiment", "table2", "--model", "siren"], "either --experiment"),
    (["run", "--rows", "asmr3"], "--rows needs --experiment"),
    (["run", "--experiment", "table2", "--resume"], "--resume needs --out"),
    (["run", "--experiment", "table2", "task.bogus=1"], "unknown key task.bogus"),
])
def test_cli_experiment_errors_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may train, but keep any default runs/ out of the repo
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err
    assert not (tmp_path / "runs").exists()


def test_cli_list_names_the_experiments(capsys):
    assert main(["list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("experiments:"))
    assert all(name in line for name in PAPER_TABLES)
