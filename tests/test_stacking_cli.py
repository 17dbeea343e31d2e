"""Stacking where users meet it: ``inrbench bench`` (seeds, ``--vary``, ladders), ``inrbench
run --seeds`` and ``run --experiment --vary/--seeds`` train the runs of one config as stacked
models, into the folders and records runs trained alone would write; ``--no-stack`` turns it
off, and a time budget or a time-to-quality question never stacks."""

import json

import pytest

from inrbench.bench import bench, plan, signals
from inrbench.bench_stacks import stack_groups
from inrbench.cli import main
from inrbench.compare import compare
from inrbench.plugins import load_references

CHEAP = ["trainer.latency_repeats=1", "trainer.latency_warmup=0", "trainer.progress_bar=false",
         "task.eval_every=5", "trainer.checkpoint_every=5", "model.hidden_dim=8"]


def records(folder):
    return {p.parent.relative_to(folder).as_posix(): json.loads(p.read_text())
            for p in sorted(folder.rglob("metrics.json"))}


def test_bench_stacks_seeds_and_signals_in_a_child_and_no_stack_trains_alone(tmp_path):
    args = ["bench", "--models", "siren", "--data", "cameraman", "--vary",
            "data.crop=[16,16],[16,24]", "--seeds", "0,1", "--steps", "6", *CHEAP]
    assert main([*args, "--out", str(tmp_path / "stacked")]) == 0
    assert main([*args, "--out", str(tmp_path / "alone"), "--no-stack"]) == 0
    stacked, alone = records(tmp_path / "stacked"), records(tmp_path / "alone")
    assert stacked.keys() == alone.keys() and len(stacked) == 4
    for k, rec in stacked.items():
        assert rec["stack"]["of"] == 2 and "stack" not in alone[k]  # one stack per crop
        assert rec["psnr"] == pytest.approx(alone[k]["psnr"], abs=1e-3)
        assert rec["signal_shape"] == alone[k]["signal_shape"]
    assert not (tmp_path / "stacked" / ".stacks").exists()  # the plans are gone
    # the report and compare read stacked folders as they read the others
    assert (tmp_path / "stacked" / "frontier.json").is_file()
    assert "siren" in compare([str(tmp_path / "stacked")])
    # a rerun of the finished bench trains nothing
    assert main([*args, "--out", str(tmp_path / "stacked")]) == 0
    assert records(tmp_path / "stacked") == stacked


def test_a_plugin_stacks_in_an_in_process_bench(small_png, tmp_path, monkeypatch):
    (tmp_path / "my_bench_inr.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, in_features=2, out_features=3, hidden_dim=8):\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(in_features, hidden_dim), nn.Tanh(),\n"
        "                                 nn.Linear(hidden_dim, out_features))\n"
        "    def forward(self, coords):\n"
        "        return self.net(coords)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_references({"model": ["my_bench_inr:Net"]})
    done = bench(["my_bench_inr:Net", "siren"], signals("image"), tmp_path / "b", steps=4,
                 seeds=(0, 1, 2), overrides=[f"data.path={small_png}", *CHEAP], isolate=False)
    assert [r["stacked"] for r in done["runs"]] == [3] * 6
    recs = records(tmp_path / "b")
    assert {r["model"] for r in recs.values()} == {"my_bench_inr:Net", "siren"}
    assert all(r["stack"]["of"] == 3 for r in recs.values())


def test_time_budgets_and_quality_questions_never_stack(small_png, tmp_path):
    sigs = signals("image")
    over = [f"data.path={small_png}", *CHEAP]
    steps = plan(["siren"], sigs, [0, 1], tmp_path, over, {"task.steps": 5,
                                                           "trainer.max_time": None})
    assert [len(g) for g in stack_groups(steps)] == [2]
    assert [len(g) for g in stack_groups(steps, stack=False)] == [1, 1]
    assert [len(g) for g in stack_groups(steps, quality=30.0)] == [1, 1]
    timed = plan(["siren"], sigs, [0, 1], tmp_path, over, {"task.steps": 10**9,
                                                           "trainer.max_time": 2.0})
    assert [len(g) for g in stack_groups(timed)] == [1, 1]


def test_run_seeds_stacks_and_no_stack_trains_one_by_one(small_png, tmp_path, capsys):
    args = ["run", "--model", "siren", "--data", "image", f"data.path={small_png}",
            "--seeds", "0,1", "--steps", "5", "--logger", "none", *CHEAP]
    assert main([*args, "--out", str(tmp_path / "s")]) == 0
    assert main([*args, "--out", str(tmp_path / "a"), "--no-stack"]) == 0
    s, a = records(tmp_path / "s"), records(tmp_path / "a")
    assert set(s) == set(a) == {"seed0", "seed1"}
    assert all(s[k]["stack"]["of"] == 2 and "stack" not in a[k] for k in s)
    assert all(s[k]["psnr"] == pytest.approx(a[k]["psnr"], abs=1e-3) for k in s)
    # a second time into the same folder is refused, as a single run is
    assert main([*args, "--out", str(tmp_path / "s")]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bench", "run"])
def test_a_bad_stack_size_is_one_line(command, tmp_path, capsys):
    what = (["--models", "siren", "--data", "cameraman", "--steps", "2"] if command == "bench"
            else ["--model", "siren", "--data", "cameraman", "--seeds", "0,1"])
    assert main([command, *what, "--stack-size", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["inrbench: error: --stack-size must be an integer >= 1 (runs in one "
                   "stacked model), got 0"]
    assert not (tmp_path / "x").exists()


def test_a_stopped_stack_of_a_bench_points_at_the_bench_command(tmp_path):
    from inrbench.cli import _resume_line
    from inrbench.errors import Interrupted

    line = _resume_line(Interrupted(15, str(tmp_path / "sig" / "siren" / "seed0"), 7),
                        ["stack-runs", str(tmp_path / ".stacks" / "x.json"), "--result", "r"])
    assert line.startswith("stopped by SIGTERM at step 7; each run of the stack keeps")
    assert line.endswith("rerun the bench command to continue")
