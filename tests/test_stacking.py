"""Stacked members (inrbench.run.stacked): runs of one config trained as one stacked model
end where separate runs end, write ordinary results folders, resume stacked or alone, and
fall back to one by one where they cannot stack."""

import json
import math
import os
import signal
import sys

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from inrbench.checkpoint import read_checkpoint
from inrbench.config import compose
from inrbench.config.files import load_yaml
from inrbench.data.base import SignalSpec
from inrbench.errors import Interrupted
from inrbench.models.registry import list_models
from inrbench.models.stack import NotStackable, StackedModel, stack_refusal
from inrbench.plugins import load_references
from inrbench.run import run
from inrbench.run.runner import _build
from inrbench.run.stacked import run_stack, stack_key, train_runs
from inrbench.tasks.fit import FitTask
from inrbench.tasks.stacked import StackedFitTask

#: models whose forward vmap cannot batch (data-dependent shapes): their runs go one by one
NOT_STACKABLE = {"gaussianimage"}
SMALL = {"anr": {"hidden_dim": 32, "token_len": 16, "n_heads": 2, "head_dim": 8},
         "transinr": {"hidden_dim": 32, "n_groups": 8}}
TINY = ["trainer.latency_repeats=1", "trainer.latency_warmup=0", "trainer.progress_bar=false",
        "trainer.checkpoint_every=25", "task.eval_every=25"]


def member_cfg(name, png, out, seed, steps=50, extra=()):
    cfg = compose(model=name, data="image", overrides=[f"data.path={png}", *TINY, *extra],
                  extra={"task.steps": steps, "trainer.out": str(out), "trainer.seed": seed,
                         "trainer.logger": "none"})
    for key, small in (("hidden_dim", 16), ("n_layers", 3), ("num_points", 256)):
        if key in cfg.model:
            cfg.model[key] = min(small, cfg.model[key])
    if "bases" in cfg.model:
        cfg.model.bases = None
    with open_dict(cfg):  # models without a conf file: the sizes test_contract uses
        cfg.model.update(SMALL.get(name, {}))
    return cfg


def weights(out):
    return read_checkpoint(out / "checkpoints" / "last.ckpt")["state_dict"]


def initial_weights(out):
    """The weights the run at ``out`` started from: its config built as a run builds it."""
    cfg = load_yaml(out / "config.yaml")
    model = _build(cfg, False, 1)[2]
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def assert_same_run(stacked_out, alone_out):
    """The same weights within float tolerance: batched products round differently from
    single ones, and training carries such differences forward (Adam's first steps turn a
    gradient at rounding level into a step of up to ``lr``), so each tensor may differ by
    1e-6 plus 10% of how far training moved it from its initialisation (a frozen tensor
    must agree to 1e-6). The worst measured: 5.3% (ANR's first layer); most models agree to
    under 1%. The first gradient itself is checked to rounding by
    :func:`assert_same_gradients`."""
    a, b = weights(stacked_out), weights(alone_out)
    start = initial_weights(alone_out)
    assert a.keys() == b.keys()
    for k in a:
        if not (a[k].is_floating_point() or a[k].is_complex()):
            assert torch.equal(a[k], b[k]), k
            continue
        moved = float((b[k] - start[k]).abs().max())
        diff = float((a[k] - b[k]).abs().max())
        assert diff <= 1e-6 + 0.1 * moved, f"{k}: differs by {diff:.3g}, moved {moved:.3g}"
    ja, jb = (json.loads((o / "metrics.json").read_text()) for o in (stacked_out, alone_out))
    for k in ("steps", "params", "macs", "flops", "seed", "signal_shape", "model", "data"):
        assert ja[k] == jb[k], k
    assert ja["psnr"] == pytest.approx(jb["psnr"], rel=5e-3)  # 0.25 dB at 50 dB
    ca, cb = (pd.read_csv(o / "metrics.csv") for o in (stacked_out, alone_out))
    assert list(ca.columns) == list(cb.columns) and len(ca) == len(cb)
    # the curves agree to 1% of the first loss (relative agreement is lost near zero loss)
    np.testing.assert_allclose(ca["loss"], cb["loss"], rtol=0,
                               atol=0.01 * float(cb["loss"].iloc[0]), equal_nan=True)


def assert_same_gradients(cfgs):
    """The stacked loss's gradient, member by member, is each member's own (to rounding)."""
    built = [_build(c, False, 1) for c in cfgs]
    spec = built[0][1]
    for dm, _, model, task, _ in built:
        dm.setup()
        task._loss(model.render(spec.shape), dm.signal).backward()
    stacked = StackedModel([b[2] for b in built])
    target = torch.stack([b[0].signal for b in built])
    pred = stacked.call("render", tuple(spec.shape))
    torch.func.vmap(built[0][3]._loss)(pred, target).sum().backward()
    for i, (_, _, model, _, _) in enumerate(built):
        for k, p, q in zip(stacked.names, stacked.params, model.parameters()):
            if q.grad is None:
                assert p.grad is None or not p.grad[i].any(), k
                continue
            scale = float(q.grad.abs().max()) + 1e-12
            torch.testing.assert_close(p.grad[i], q.grad, rtol=1e-4, atol=1e-5 * scale,
                                       msg=lambda m, k=k: f"{k}: {m}")


@pytest.mark.parametrize("name", list_models())
def test_every_stackable_model_ends_where_separate_runs_end(name, small_png, tmp_path):
    """Two seeds trained stacked for 50 steps hold, member by member, the weights, losses and
    scores of the two seeds trained alone; their first gradients agree to rounding."""
    cfgs = [member_cfg(name, small_png, tmp_path / "stack" / f"s{s}", s) for s in (0, 1)]
    try:
        records = run_stack(cfgs)
    except NotStackable as e:
        assert name in NOT_STACKABLE, f"{name} did not stack: {e}"
        assert str(e) and not (tmp_path / "stack").exists()  # refused before writing
        return
    assert name not in NOT_STACKABLE
    assert_same_gradients(cfgs)
    for s, rec in zip((0, 1), records):
        alone = tmp_path / "alone" / f"s{s}"
        run(member_cfg(name, small_png, alone, s))
        assert rec["stack"]["member"] == s and rec["stack"]["of"] == 2
        assert_same_run(tmp_path / "stack" / f"s{s}", alone)
    # two seeds start from two initialisations
    w0, w1 = weights(tmp_path / "stack" / "s0"), weights(tmp_path / "stack" / "s1")
    assert any(not torch.equal(w0[k], w1[k]) for k in w0 if w0[k].is_floating_point())


def test_same_shape_signals_stack_and_keep_their_own_data(tmp_path, rng_image):
    """Two different images of one shape in one stack: each member fits its own image."""
    from PIL import Image
    pngs = []
    for i in range(2):
        p = tmp_path / f"img{i}.png"
        Image.fromarray(rng_image.integers(0, 255, (16, 24, 3), dtype="uint8")).save(p)
        pngs.append(p)
    cfgs = [member_cfg("siren", p, tmp_path / "stack" / f"i{i}", 0, steps=30)
            for i, p in enumerate(pngs)]
    assert stack_key(cfgs[0]) == stack_key(cfgs[1])
    run_stack(cfgs)
    for i, p in enumerate(pngs):
        run(member_cfg("siren", p, tmp_path / "alone" / f"i{i}", 0, steps=30))
        assert_same_run(tmp_path / "stack" / f"i{i}", tmp_path / "alone" / f"i{i}")
        rec = json.loads((tmp_path / "stack" / f"i{i}" / "metrics.json").read_text())
        assert rec["files"] if "files" in rec else True
        assert (tmp_path / "stack" / f"i{i}" / "reconstruction.png").is_file()


class StopAt(L.Callback):
    """Sends this process SIGTERM at a step, as a scheduler would."""

    def __init__(self, step):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


def test_a_killed_stack_resumes_stacked_or_alone_to_the_uninterrupted_result(small_png,
                                                                              tmp_path):
    def cfgs(root):
        return [member_cfg("asmr", small_png, root / f"s{s}", s, steps=40) for s in (0, 1, 2)]

    run_stack(cfgs(tmp_path / "whole"))
    with pytest.raises(Interrupted):
        run_stack(cfgs(tmp_path / "cut"), callbacks=[StopAt(17)])
    at = set()
    for s in (0, 1, 2):  # each member's folder holds a checkpoint of that member alone
        ck = read_checkpoint(tmp_path / "cut" / f"s{s}" / "checkpoints" / "last.ckpt")
        at.add(ck["global_step"])
        assert not (tmp_path / "cut" / f"s{s}" / "metrics.json").exists()
        assert all(not k.startswith("model.params") for k in ck["state_dict"])
    assert len(at) == 1 and 17 <= at.pop() < 40  # one step, mid-run
    # members 0 and 1 resume as a stack; member 2 alone, as an ordinary run
    c = cfgs(tmp_path / "cut")
    run_stack(c[:2], resume=True)
    run(c[2], resume=True)
    for s in (0, 1):
        a, b = weights(tmp_path / "cut" / f"s{s}"), weights(tmp_path / "whole" / f"s{s}")
        for k in a:
            torch.testing.assert_close(a[k], b[k], atol=1e-6, rtol=1e-5)
        ha = pd.read_csv(tmp_path / "cut" / f"s{s}" / "metrics.csv")
        hb = pd.read_csv(tmp_path / "whole" / f"s{s}" / "metrics.csv")
        assert ha["step"].tolist() == hb["step"].tolist()
        np.testing.assert_allclose(ha["loss"], hb["loss"], rtol=1e-5, equal_nan=True)
    assert_same_run(tmp_path / "cut" / "s2", tmp_path / "whole" / "s2")


def test_stack_key_groups_seeds_and_signals_not_other_settings(small_png, tmp_path):
    base = member_cfg("siren", small_png, tmp_path / "a", 0)
    assert stack_key(base) == stack_key(member_cfg("siren", small_png, tmp_path / "b", 3))
    assert stack_key(base) != stack_key(member_cfg("siren", small_png, tmp_path / "c", 0,
                                                   extra=["task.lr=0.01"]))
    assert stack_key(base) != stack_key(member_cfg("siren", small_png, tmp_path / "d", 0,
                                                   steps=51))
    timed = member_cfg("siren", small_png, tmp_path / "e", 0)
    timed.trainer.max_time = 5.0  # members would share one clock
    assert stack_key(timed) is None


def test_train_runs_goes_one_by_one_where_a_stack_cannot_train(small_png, tmp_path, capsys):
    cfgs = [member_cfg("gaussianimage", small_png, tmp_path / f"g{s}", s, steps=3)
            for s in (0, 1)]
    cfgs += [member_cfg("siren", small_png, tmp_path / f"s{s}", s, steps=3) for s in (0, 1)]
    got = train_runs(cfgs)
    assert all(isinstance(r, dict) for r in got), got
    assert [("stack" in r) for r in got] == [False, False, True, True]
    assert "2 runs of gaussianimage train one by one: vmap cannot batch" in capsys.readouterr().out
    stamps = [(c.trainer.out, os.stat(f"{c.trainer.out}/metrics.json").st_mtime_ns)
              for c in cfgs]
    assert train_runs(cfgs) == got  # finished runs: their records, nothing trained again
    assert stamps == [(c.trainer.out, os.stat(f"{c.trainer.out}/metrics.json").st_mtime_ns)
                      for c in cfgs]


def test_a_plain_pytorch_plugin_stacks_like_a_built_in(small_png, tmp_path, monkeypatch):
    (tmp_path / "my_stack_inr.py").write_text(
        "from torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, in_features=2, out_features=1, hidden=16):\n"
        "        super().__init__()\n"
        "        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.Tanh(),\n"
        "                                 nn.Linear(hidden, out_features))\n"
        "    def forward(self, coords):\n"
        "        return self.net(coords)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_references({"model": ["my_stack_inr:Net"]})  # as typed after --model
    cfgs = [member_cfg("my_stack_inr:Net", small_png, tmp_path / "stack" / f"s{s}", s,
                       extra=["model.hidden=8"]) for s in (0, 1)]
    run_stack(cfgs)
    for s in (0, 1):
        run(member_cfg("my_stack_inr:Net", small_png, tmp_path / "alone" / f"s{s}", s,
                       extra=["model.hidden=8"]))
        assert_same_run(tmp_path / "stack" / f"s{s}", tmp_path / "alone" / f"s{s}")
    sys.modules.pop("my_stack_inr", None)


def test_a_declared_refusal_is_named():
    class Fixed(torch.nn.Linear):
        stackable = "it keeps a running cache between calls"

    assert stack_refusal(Fixed(2, 1)) == "it keeps a running cache between calls"
    with pytest.raises(NotStackable, match="differ in names or shapes"):
        StackedModel([torch.nn.Linear(2, 1), torch.nn.Linear(2, 3)])
    assert math.isfinite(1.0)


def test_a_member_logs_what_a_run_alone_logs(small_png, tmp_path):
    def cfg(root, s):
        c = member_cfg("siren", small_png, root / f"s{s}", s, steps=60)
        c.trainer.logger = "csv"
        return c

    run_stack([cfg(tmp_path / "stack", s) for s in (0, 1)])
    run(cfg(tmp_path / "alone", 1))
    a = pd.read_csv(tmp_path / "stack" / "s1" / "logs" / "metrics.csv")
    b = pd.read_csv(tmp_path / "alone" / "s1" / "logs" / "metrics.csv")
    for col in ("train/loss", "val/psnr", "model/params", "model/latency_ms"):
        assert a[col].notna().any() and b[col].notna().any(), col
    steps = [sorted(x.loc[x["train/loss"].notna(), "step"]) for x in (a, b)]
    assert steps[0] == steps[1]
    got = [x.loc[x["train/loss"].notna(), "train/loss"].to_numpy() for x in (a, b)]
    np.testing.assert_allclose(got[0], got[1], rtol=1e-3)


def test_state_outside_parameters_is_caught_before_a_stack_trains(small_png, tmp_path,
                                                                   monkeypatch, capsys):
    """A plain tensor attribute drawn at construction differs between seeds but would be
    member 0's for every stacked member: the stack refuses, and the runs go one by one."""
    (tmp_path / "my_hidden_state.py").write_text(
        "import torch\nfrom torch import nn\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, in_features=2, out_features=3):\n"
        "        super().__init__()\n"
        "        self.proj = torch.randn(in_features, 8)  # not a buffer\n"
        "        self.out = nn.Linear(8, out_features)\n"
        "    def forward(self, coords):\n"
        "        return self.out(torch.sin(coords @ self.proj))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_references({"model": ["my_hidden_state:Net"]})
    cfgs = [member_cfg("my_hidden_state:Net", small_png, tmp_path / f"s{s}", s, steps=3)
            for s in (0, 1)]
    with pytest.raises(NotStackable, match="state outside its parameters and buffers"):
        run_stack(cfgs)
    got = train_runs(cfgs)
    assert all(isinstance(r, dict) and "stack" not in r for r in got)
    assert ("train one by one: a stacked my_hidden_state:Net computes another function"
            in capsys.readouterr().out)
    sys.modules.pop("my_hidden_state", None)


@pytest.mark.parametrize("model,sampling", [("siren", ["data.sampling=random",
                                                       "data.batch_size=256"]),
                                            ("asmr", ["data.sampling=blocks",
                                                      "data.batch_size=256"]),
                                            ("ffn", ["data.sampling=tile", "data.tile=[8,8]"])])
def test_each_member_draws_its_own_batches(model, sampling, small_png, tmp_path):
    """Random samples, blocks and tiles: each member's batches are the ones its run alone
    draws (its seed, its step), so it ends where that run ends."""
    cfgs = [member_cfg(model, small_png, tmp_path / "stack" / f"s{s}", s, steps=30,
                       extra=sampling) for s in (0, 1)]
    records = run_stack(cfgs)
    run(member_cfg(model, small_png, tmp_path / "alone", 1, steps=30, extra=sampling))
    assert records[1]["sampling"] == sampling[0].split("=")[1]
    assert_same_run(tmp_path / "stack" / "s1", tmp_path / "alone")


def test_the_members_models_follow_the_stack_to_its_device():
    """Lightning moves the stacked task to the trainer's device; the members' own models
    (which evaluate, time the render and give the final scores) go with it."""
    members = [FitTask(torch.nn.Linear(2, 1), SignalSpec((4, 4), 1)) for _ in range(2)]
    task = StackedFitTask(members, StackedModel([m.model for m in members]))
    task.to(torch.float64)
    assert all(p.dtype == torch.float64 for m in members for p in m.model.parameters())
    assert all(p.dtype == torch.float64 for p in task.model.parameters())
    assert task.model._shell[0].model.weight.dtype == torch.float64
