"""`inrbench run --model M --data D` follows the paper's row for M on D, and the config records
which (its `paper_row` section)."""

import pytest

import inrbench.data.fetch as fetch_mod
from inrbench.config import compose, rowdefaults


@pytest.fixture
def offline(tmp_path, monkeypatch):
    monkeypatch.setenv("INRBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch_mod, "reachable", lambda url, timeout=5.0: False)


def test_asmr_on_pluto_takes_table5_and_re_derives_bases_for_the_stand_in(offline):
    cfg = compose(model="asmr", data="pluto")
    assert (cfg.model.hidden_dim, cfg.model.n_layers) == (512, 6)  # Table 5's ASMR, not 4x256
    assert cfg.model.bases is None  # [[4,4,4,4,4,8],...] fits 8192, not the stand-in photo
    assert cfg.data.sampling == "blocks" and cfg.data.batch_size == 2**18
    # 500 epochs of the stand-in's 3375 x 6000 pixels at 2^18 per step
    assert cfg.task.steps == 500 * -(-3375 * 6000 // 2**18)
    assert (cfg.paper_row.experiment, cfg.paper_row.id) == ("table5", "asmr")
    note = cfg.paper_row.note
    assert "Table 5 row 'asmr'" in note and "(3375, 6000)" in note and "model.bases" in note


def test_overrides_win_over_the_row(offline):
    cfg = compose(model="asmr", data="pluto", overrides=["model.hidden_dim=64",
                                                         "data.sampling=random"],
                  extra={"task.steps": 7})
    assert cfg.model.hidden_dim == 64 and cfg.model.n_layers == 6
    assert cfg.data.sampling == "random" and cfg.task.steps == 7


@pytest.mark.parametrize("model,data,row,check", [
    ("asmr", "cameraman", "asmr4", {"n_layers": 4, "bases": [[4, 4, 4, 8], [4, 4, 4, 8]]}),
    ("siren", "cameraman", "siren4", {"n_layers": 4, "hidden_dim": 256}),  # deepest of two
    ("kilonerf", "cameraman", "kilonerf3", {"hidden_dim": 16, "n_layers": 3}),
    ("asmr", "cat_video", "asmr1", {"n_layers": 7, "hidden_dim": 512}),  # first on a tie
    ("siren", "pluto", "siren", {"hidden_dim": 512}),  # SIREN before SIREN-BIG
])
def test_the_row_chosen_for_each_model(offline, model, data, row, check):
    cfg = compose(model=model, data=data)
    assert f"row '{row}'" in cfg.paper_row.note and cfg.paper_row.id == row
    for key, value in check.items():
        assert cfg.model[key] == value, key


def test_no_row_no_note(offline):
    cfg = compose(model="asmr", data="image", overrides=["data.path=x.png"])
    assert cfg.model.hidden_dim == 256 and "paper_row" not in cfg
    assert rowdefaults.find_row("wire", "cameraman") is None  # Table 2 has no WIRE row


def test_experiment_rows_are_not_replaced(offline):
    """A run of an experiment row composes that row, never the data's default row."""
    from inrbench.config import row_config
    from inrbench.config.experiment import get_row, load_experiment

    exp = load_experiment("table2")
    cfg = row_config(exp, get_row(exp, "asmr3"))
    assert cfg.model.n_layers == 3 and "paper_row" not in cfg


def test_the_row_followed_is_printed_and_recorded(offline, tmp_path, capsys):
    """The runner prints the row once the config is accepted, and config.yaml and metrics.json
    name it; a config without a row has neither."""
    import json

    from omegaconf import OmegaConf

    from inrbench.run import run

    cfg = compose(model="siren", data="cameraman", extra={"task.steps": 1},
                  overrides=["model.hidden_dim=8", "trainer.logger=none",
                             "trainer.progress_bar=false", f"trainer.out={tmp_path / 'r'}",
                             "trainer.latency_repeats=1", "trainer.latency_warmup=0"])
    run(cfg)
    assert "follows Table 2 row 'siren4'" in capsys.readouterr().err
    saved = OmegaConf.load(tmp_path / "r" / "config.yaml")
    summary = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert saved.paper_row.id == summary["paper_row"]["id"] == "siren4"
    assert summary["paper_row"]["experiment"] == "table2"
