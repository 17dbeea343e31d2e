"""Ladders at matched budgets (``inrbench bench --ladder``): each family's declared size knob is
chosen on meta tensors so its counted cost meets each budget, every run records the budget and
the count, plugins declare a knob the same way, and a model without one keeps its own size."""

import json

import pytest
from torch import nn

from inrbench.bench import bench, signals
from inrbench.cli import main
from inrbench.config import compose
from inrbench.errors import ConfigError
from inrbench.ladder import TOLERANCE, choose, parse_ladder, signal_spec, size_knob
from inrbench.models import register_model
from inrbench.models.base import CoordinateModule
from inrbench.models.registry import MODELS

TINY = ["trainer.logger=none", "trainer.progress_bar=false", "trainer.latency_repeats=1",
        "trainer.latency_warmup=0", "trainer.checkpoint_every=50", "task.eval_every=50"]


class KnobNet(nn.Module):
    """A plain-PyTorch plugin that declares its width as its ladder knob and its own MACs
    (hidden x (in + out): 5 per unit on an RGB image)."""

    size_knob = "hidden"
    size_knob_range = (1, 512)

    def __init__(self, in_features: int = 2, out_features: int = 1, hidden: int = 16):
        super().__init__()
        self.hidden, self.dims = hidden, (in_features, out_features)
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(),
                                 nn.Linear(hidden, out_features))

    def forward(self, coords):
        return self.net(coords)

    def macs_per_sample(self):
        return float(self.hidden * (self.dims[0] + self.dims[1]))


class NoKnob(KnobNet):
    size_knob = None


@pytest.fixture
def plugins():
    register_model(KnobNet, name="knobnet")
    register_model(NoKnob, name="noknob")
    yield
    for name in ("knobnet", "noknob"):
        MODELS._entries.pop(name, None)
        MODELS.origins.pop(name, None)


def test_parse_ladder_and_bad_ladders_are_one_line():
    assert parse_ladder("params=3e4,1e4,1e4") == ("params", [1e4, 3e4])
    for bad in ("params", "latency=1,2", "macs=", "flops=-1", "params=a,b"):
        with pytest.raises(ConfigError, match="--ladder takes AXIS="):
            parse_ladder(bad)


def test_builtin_knobs_are_declared():
    assert size_knob("siren")[0] == "hidden_dim" and size_knob("asmr")[0] == "hidden_dim"
    assert size_knob("ngp")[0] == "log2_hashmap_size"
    assert size_knob("gaussianimage")[0] == "num_points"
    assert size_knob("grid")[0] == "finest_resolution"
    # KiloNeRF: tiles for parameters, width for the per-sample costs tiles leave unchanged
    assert size_knob("kilonerf", "params") == ("grid", (1, 64))
    assert size_knob("kilonerf", "macs") == ("hidden_dim", (1, 1024))
    assert size_knob("kilonerf", "flops")[0] == "hidden_dim"


@pytest.mark.parametrize("model,axis,budget", [("siren", "params", 3000.0),
                                               ("asmr", "macs", 2000.0),
                                               ("ffn", "flops", 20000.0)])
def test_choose_meets_the_budget_within_tolerance(small_png, model, axis, budget):
    cfg = compose(model=model, data="image", overrides=[f"data.path={small_png}"])
    spec = signal_spec(cfg)
    got = choose(cfg, spec, axis, budget)
    assert got["within"] and abs(got["count"] - budget) <= TOLERANCE * budget
    # the next knob value overshoots further: the chosen one is the nearest
    bigger = choose(cfg, spec, axis, budget * 1.5)
    assert bigger["value"] > got["value"]


def test_unreachable_budget_records_the_nearest(small_png):
    cfg = compose(model="siren", data="image", overrides=[f"data.path={small_png}"])
    got = choose(cfg, signal_spec(cfg), "params", 1.0)  # below a one-unit-wide SIREN
    assert got["value"] == 1 and not got["within"] and got["count"] > 1.0


def test_coordinate_module_forwards_the_plugins_paper_macs():
    assert CoordinateModule(KnobNet(hidden=5), out_features=1).macs_per_sample() == 15.0
    with pytest.raises(NotImplementedError):
        CoordinateModule(nn.Linear(2, 1), out_features=1).macs_per_sample()


def test_ladder_bench_of_a_builtin_and_a_plugin(plugins, small_png, tmp_path):
    sigs = signals("image", "data.crop_at=[0,0],[8,16]")
    assert len(sigs) == 2
    over = [f"data.path={small_png}", "data.crop=[16,16]", *TINY]
    root = tmp_path / "b"
    done = bench(["siren", "knobnet"], sigs, root, steps=3, overrides=over, isolate=False,
                 ladder=("params", [300.0, 1000.0]))
    assert len(done["runs"]) == 2 * 2 * 2 and all(r["status"] == "trained" for r in done["runs"])
    for sig in sigs:
        for model, per in (("siren", None), ("knobnet", 5)):
            counts = []
            for label, budget in (("params-300", 300.0), ("params-1e03", 1000.0)):
                m = json.loads((root / sig.label / model / label / "seed0" /
                                "metrics.json").read_text())
                lad = m["ladder"]
                assert lad["axis"] == "params" and lad["budget"] == budget
                assert lad["count"] == m["params"]  # the count is what trained
                assert abs(m["params"] - budget) <= 0.1 * budget
                counts.append(m["params"])
                if per:  # the plugin's own convention reached its record
                    assert m["macs"] == lad["value"] * per
                    assert m["macs_source"] == "paper convention"
            assert counts[0] < counts[1]
    plan = json.loads((root / "bench.json").read_text())
    assert plan["plan"]["ladder"] == {"axis": "params", "budgets": [300.0, 1000.0]}
    with pytest.raises(ConfigError, match="ladder"):  # another ladder into the same folder
        bench(["siren", "knobnet"], sigs, root, steps=3, overrides=over, isolate=False,
              ladder=("params", [300.0, 2000.0]))
    md = (root / "frontier.md").read_text()
    assert "siren @ params=300" in md and "knobnet @ params=1000" in md
    assert "FLOPs / sample, inrbench-flops-1" in md and "2 signal(s)" in md
    from PIL import Image

    with Image.open(root / "frontier.png") as im:  # a grid about 1400 px wide, not a strip
        assert 1200 <= im.width <= 1600 and im.height >= 0.4 * im.width


def test_a_model_without_a_knob_is_benched_at_its_own_size(plugins, small_png, tmp_path):
    over = [f"data.path={small_png}", "data.crop=[16,16]", *TINY]
    root = tmp_path / "n"
    bench(["noknob"], signals("image"), root, steps=2, overrides=over, isolate=False,
          ladder=("params", [1000.0]))
    m = json.loads((root / "image" / "noknob" / "params-1e03" / "seed0" /
                    "metrics.json").read_text())
    assert m["ladder"].get("knob") is None and m["params"] == 2 * 16 + 16 + 16 * 3 + 3
    assert "own size" in (root / "frontier.md").read_text()


def test_cli_refuses_a_bad_ladder(capsys):
    assert main(["bench", "--models", "siren", "--data", "cameraman", "--steps", "1",
                 "--ladder", "depth=3"]) == 2
    assert "--ladder takes AXIS=" in capsys.readouterr().err


def _rec(model, q, family=None, **costs):
    base = {"macs": 1.0, "latency_ms": 1.0, "params": 1.0, "peak_rss_mb": 500.0, "train_s": 1.0}
    base.update(costs)
    return {"model": model, "family": family or model, "quality": {"mean": q},
            "time_to": {"30.0": {"mean": None}}, **{k: {"mean": v} for k, v in base.items()}}


def test_answers_say_only_x_and_leave_memory_noise_unranked():
    from inrbench.reports.frontier import answers

    one = [_rec("asmr @ params=1e4", 31.0, "asmr"), _rec("siren @ params=1e4", 20.0, "siren")]
    assert answers(one, 30.0, "dB") == ["only asmr reaches 30 dB (asmr @ params=1e4)"]
    two = [_rec("a", 31.0, peak_rss_mb=500.0), _rec("b", 33.0, peak_rss_mb=510.0)]
    lines = answers(two, 30.0, "dB")
    assert any("not ranked" in ln for ln in lines)
    assert not any(ln.startswith("least training memory") for ln in lines)


def test_family_styles_are_stable_and_named():
    from inrbench.reports.frontier_figure import label, style

    assert label("ngp") == "Instant-NGP" and label("finer_inr:FINER") == "FINER"
    builtins = [style(label(m)) for m in ("asmr", "siren", "ffn", "ngp", "kilonerf", "grid",
                                          "gaussianimage")]
    assert len(set(builtins)) == len(builtins)  # distinct colour and marker pairs
    assert style("FINER") == style("FINER")  # a plugin's style is a function of its name
