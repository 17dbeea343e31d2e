"""Users' own models in the suite: by entry point (the example plugin package), by
``module:Class``, or registered from a script; a broken plugin or a name clash is one line and
never breaks the others; a module that does not subclass INR is benchmarked on measured MACs."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from inrbench import plugins
from inrbench.cli import main
from inrbench.config import compose
from inrbench.models.registry import MODELS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "inrbench-example-plugin"
TINY = ["trainer.logger=none", "trainer.progress_bar=false", "trainer.latency_repeats=1",
        "trainer.latency_warmup=0", "trainer.checkpoint_every=50", "task.eval_every=50"]


def _entry_points_txt(groups: dict) -> str:
    return "".join(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
                   for group, eps in groups.items())


def _install(site: Path, name: str, groups: dict) -> None:
    """What pip writes for a package's entry points, without building it (offline)."""
    info = site / f"{name.replace('-', '_')}-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(_entry_points_txt(groups))


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A folder on the path (of this process and of the ones it starts) holding the example
    plugin's source and the metadata its pyproject.toml declares."""
    site = tmp_path / "site"
    site.mkdir()
    for path in (site, EXAMPLE / "src"):
        monkeypatch.syspath_prepend(str(path))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(site), str(EXAMPLE / "src"), os.environ.get("PYTHONPATH", "")]))
    before = set(MODELS._entries)
    yield site
    for name in set(MODELS._entries) - before:
        MODELS._entries.pop(name)
        MODELS.origins.pop(name, None)
    plugins.PROBLEMS.clear()
    plugins._state.clear()


@pytest.fixture
def example(site):
    meta = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    _install(site, meta["name"], meta["entry-points"])
    plugins.load_plugins(reload=True)
    return site


def test_entry_point_model_is_listed_with_its_package_and_its_conf(example, capsys):
    assert main(["list"]) == 0
    assert "gauss_mlp (inrbench-example-plugin)" in capsys.readouterr().out
    cfg = compose(model="gauss_mlp", data="cameraman")
    assert (cfg.model.hidden_dim, cfg.model.sigma, cfg.task.lr) == (64, 0.1, 1e-3)
    with pytest.raises(Exception, match=r"model.hidden_dim must be an integer"):
        compose(model="gauss_mlp", data="cameraman", overrides=["model.hidden_dim=abc"])


def test_the_plugin_through_every_tool_beside_asmr(example, small_png, tmp_path, capsys):
    data = ["--data", "image", f"data.path={small_png}"]
    assert main(["profile", "--model", "gauss_mlp", *data]) == 0
    assert "params" in capsys.readouterr().out
    runs = tmp_path / "runs"
    for model, out, extra in (("gauss_mlp", "gauss", []),
                              ("gauss_mlp", "gauss-blocks", ["data.sampling=blocks",
                                                             "data.batch_size=256"]),
                              ("asmr", "asmr", ["model.hidden_dim=16"])):
        assert main(["run", "--model", model, *data, "--steps", "3", "--out",
                     str(runs / out), *TINY, *extra]) == 0
    summary = json.loads((runs / "gauss-blocks" / "metrics.json").read_text())
    assert summary["model"] == "gauss_mlp" and summary["sampling"] == "blocks"
    assert summary["macs_source"] == "paper convention" and summary["macs"] > 0
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(textwrap.dedent(f"""\
        name: gauss-sigma
        method: grid
        metric: {{name: best_psnr, goal: maximize}}
        parameters:
          model.name: {{value: gauss_mlp}}
          data.name: {{value: image}}
          data.path: {{value: "{small_png}"}}
          task.steps: {{value: 2}}
          model.sigma: {{values: [0.1, 0.2]}}
        """))
    assert main(["sweep", str(sweep), "--local", "--out", str(tmp_path / "sw"),
                 "--logger", "none"]) == 0
    assert len(list((tmp_path / "sw").glob("trial-*/metrics.json"))) == 2
    capsys.readouterr()
    assert main(["compare", str(runs)]) == 0
    table = capsys.readouterr().out
    assert "gauss_mlp" in table and "asmr" in table
    assert main(["report", str(runs), "--out", str(tmp_path / "rep"), "--format", "md"]) == 0
    assert "gauss" in (tmp_path / "rep" / "report.md").read_text()


def test_a_broken_plugin_and_a_name_clash_are_one_line_each(site, capsys):
    _install(site, "bad-plugin", {"inrbench.models": {"broken": "no_such_module_xyz:Model",
                                                      "siren": "inrbench_example.gauss:GaussMLP"}})
    from inrbench.models.siren import SIREN

    assert main(["list"]) == 0
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line]
    assert len(lines) == 2, out.err
    assert "plugin 'broken' of bad-plugin" in out.err and "pip uninstall bad-plugin" in out.err
    assert "plugin 'siren' of bad-plugin claims" in out.err and "rename" in out.err
    assert MODELS.get("siren") is SIREN and "broken" not in MODELS
    assert "siren" in out.out  # everyone else's list still works


PLAIN = """
import torch
from torch import nn


class PlainNet(nn.Module):
    '''Not an inrbench INR: only forward(coords).'''

    def __init__(self, in_features: int = 2, out_features: int = 1, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(),
                                 nn.Linear(hidden, out_features))

    def forward(self, coords):
        return self.net(coords)
"""


def test_module_colon_class_and_a_module_that_is_not_an_inr(site, small_png, tmp_path, capsys):
    (site / "my_inr.py").write_text(PLAIN)
    out = tmp_path / "plain"
    assert main(["run", "--model", "my_inr:PlainNet", "--data", "image",
                 f"data.path={small_png}", "--steps", "3", "--out", str(out), *TINY,
                 "model.hidden=8"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["model"] == "my_inr:PlainNet" and summary["macs"] is None
    assert summary["macs_source"] == "measured only"
    # 2x8 + 8x3 weights: the matmuls a render runs, per sample
    assert summary["macs_measured"] == pytest.approx(2 * 8 + 8 * 3)
    assert "measured only" in capsys.readouterr().out
    assert main(["compare", str(out)]) == 0


@pytest.mark.parametrize("reference,message", [
    ("no_such_pkg_abc:Net", "cannot import 'no_such_pkg_abc'"),
    ("my_inr:Missing", "has no 'Missing'"),
])
def test_a_bad_reference_is_one_line(site, reference, message, capsys):
    (site / "my_inr.py").write_text(PLAIN)
    assert main(["profile", "--model", reference, "--data", "cameraman"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_register_model_from_a_script_then_the_cli(site, tmp_path):
    script = tmp_path / "bench_mine.py"
    script.write_text(PLAIN + textwrap.dedent("""
        import sys

        import inrbench.cli
        from inrbench.models import register_model

        register_model(PlainNet, name="plain")
        sys.exit(inrbench.cli.main(["list"]))
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "plain" in done.stdout.split("models:")[1].splitlines()[0]


DATA = """
from inrbench.data.image import ImageDataModule


class Flipped(ImageDataModule):
    '''A user's data module: an image file, upside down.'''

    def load_signal(self):
        return super().load_signal().flip(0)
"""

TASK = """
from inrbench.tasks import FitTask


def build_slow_fit(model, spec, lr: float = 1e-4, steps: int = 10, eval_every: int = 10,
                   accumulate: int = 1, slowdown: float = 10.0):
    '''Fitting at lr / slowdown: a task of the user's own, with a key of its own.'''
    return FitTask(model, spec, lr=lr / slowdown, lr_min=0.0, steps=steps, scheduler="none",
                   eval_every=eval_every, accumulate=accumulate)
"""


def test_a_data_module_by_reference_and_a_task_by_entry_point(site, small_png, tmp_path):
    (site / "my_data.py").write_text(DATA)
    pkg = site / "my_tasks"
    (pkg / "conf" / "task").mkdir(parents=True)
    (pkg / "__init__.py").write_text(TASK)
    (pkg / "conf" / "task" / "slow_fit.yaml").write_text(
        "task:\n  name: slow_fit\n  lr: 1.0e-3\n  steps: 10\n  eval_every: 10\n"
        "  accumulate: 1\n  slowdown: 10.0\n")
    _install(site, "my-tasks", {"inrbench.tasks": {"slow_fit": "my_tasks:build_slow_fit"},
                                "inrbench.conf": {"my_tasks": "my_tasks"}})
    plugins.load_plugins(reload=True)
    out = tmp_path / "mine"
    try:
        assert main(["run", "--model", "siren", "--data", "my_data:Flipped",
                     f"data.path={small_png}", "--task", "slow_fit", "--steps", "2",
                     "--out", str(out), *TINY, "model.hidden_dim=8", "task.slowdown=5"]) == 0
    finally:
        from inrbench.data.registry import DATAMODULES
        from inrbench.registry import TASKS

        DATAMODULES._entries.pop("my_data:Flipped", None)
        TASKS._entries.pop("slow_fit", None)
    summary = json.loads((out / "metrics.json").read_text())
    assert (summary["data"], summary["task"]) == ("my_data:Flipped", "slow_fit")
    assert json.loads(json.dumps(summary["signal_shape"])) == [32, 48]
    lines = (out / "metrics.csv").read_text().splitlines()
    # siren's own file gives the rate it fits at (1e-4), over the task file's; / slowdown 5
    assert float(lines[1].split(",")[lines[0].split(",").index("lr")]) == pytest.approx(2e-5)
