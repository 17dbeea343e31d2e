"""The fitting task's own optimizer step (manual optimization, one micro-batch a step) trains,
records and checkpoints exactly as Lightning's automatic optimization did: same weights,
optimizer and schedule states, rows, logs and checkpointed loop state, bit for bit on the
CPU; the hooks a callback defines run around each step in Lightning's order; a checkpoint
written by either resumes under the other."""

import shutil

import lightning as L
import pandas as pd
import pytest
import torch

from inrbench.run import run
from inrbench.tasks import FitTask
from inrbench.tasks.ofa import OFATask


def _automatic(monkeypatch):
    """Lightning's automatic optimization for the fitting task, as it trained before."""
    monkeypatch.setattr(FitTask, "automatic_optimization", property(lambda self: True))


class _Hooks(L.Callback):
    """Every step hook with the step it ran at and what it was given."""

    def __init__(self):
        self.calls = []

    def _note(self, name, trainer, *args):
        kinds = [type(a).__name__ for a in args]
        self.calls.append((name, int(trainer.global_step), *kinds))

    def on_before_zero_grad(self, trainer, pl_module, optimizer):
        self._note("on_before_zero_grad", trainer, optimizer)

    def on_before_backward(self, trainer, pl_module, loss):
        assert pl_module._current_fx_name == "on_before_backward"
        self._note("on_before_backward", trainer, loss)

    def on_after_backward(self, trainer, pl_module):
        grads = [p.grad for p in pl_module.parameters() if p.requires_grad]
        assert all(g is not None for g in grads)  # after backward: every gradient is there
        self._note("on_after_backward", trainer)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self._note("on_before_optimizer_step", trainer, optimizer)


def _fit(cfg, monkeypatch, automatic: bool, callbacks=()):
    with monkeypatch.context() as m:
        if automatic:
            _automatic(m)
        return run(cfg, callbacks=list(callbacks))


def _checkpoints(folder):
    return {p.name: torch.load(p, weights_only=False)
            for p in sorted((folder / "checkpoints").glob("*.ckpt"))}


def _same(a, b, where=""):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            if str(k).endswith(("_s", "_ms")):
                continue  # wall times
            _same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif torch.is_tensor(a):
        assert torch.equal(a, b), where
    else:
        assert a == b or (a != a and b != b), where  # NaN in a row's empty cell


def _records(folder):
    rows = pd.read_csv(folder / "metrics.csv")
    return rows[[c for c in rows.columns if not c.endswith("_s")]]  # wall times apart


@pytest.mark.parametrize("model,task,extra", [
    ("asmr", "fit", []),
    ("siren", "fit", ["data.sampling=random", "data.batch_size=256"]),  # several epochs
    ("siren", "fit", ["task.optimizer=adan", "task.scheduler=none", "task.lr_step=4"]),
    ("asmr", "qat", ["task.quant_bits=4"]),
    ("siren", "fit", ["trainer.max_epochs=1"]),  # the budget's cosine
])
def test_own_step_trains_records_and_checkpoints_as_the_automatic_step(
        small_png, tmp_path, tiny_cfg, monkeypatch, model, task, extra):
    steps = 12
    hooks = {}
    for mode in ("automatic", "own"):
        cfg = tiny_cfg(small_png, tmp_path / mode, model=model, steps=steps,
                       extra_overrides=[f"task.name={task}", "task.eval_every=5",
                                        "trainer.checkpoint_every=4", *extra])
        hooks[mode] = _Hooks()
        _fit(cfg, monkeypatch, mode == "automatic", [hooks[mode]])
    auto, own = tmp_path / "automatic", tmp_path / "own"
    pd.testing.assert_frame_equal(_records(auto), _records(own))
    a, b = _checkpoints(auto), _checkpoints(own)
    assert a.keys() == b.keys() and len(a) >= 3
    for name in a:  # weights, optimizer and schedule states, history, loop state
        for key in ("state_dict", "optimizer_states", "lr_schedulers", "inrbench", "loops",
                    "global_step", "epoch"):
            _same(a[name].get(key), b[name].get(key), f"{name}:{key}")
    logs = sorted(auto.glob("logs/**/metrics.csv"))
    assert logs
    for log in logs:
        _same(pd.read_csv(log).to_dict("list"),
              pd.read_csv(own / log.relative_to(auto)).to_dict("list"), str(log))
    # the hooks a callback defines: each step, in Lightning's order, with what it passes
    assert hooks["own"].calls == hooks["automatic"].calls
    assert len(hooks["own"].calls) == 4 * steps


def test_the_automatic_step_stays_under_accumulation_and_for_a_task_with_its_own_step(
        small_png, tmp_path, tiny_cfg):
    from inrbench.build import build_datamodule, build_model, build_task

    cfg = tiny_cfg(small_png, tmp_path / "o", steps=4, extra_overrides=["data.sampling=full"])
    dm = build_datamodule(cfg)
    model = build_model(cfg, dm.spec())
    task = build_task(cfg, model, dm, dm.spec())
    assert isinstance(task, FitTask) and not task.automatic_optimization
    task.accumulate = 2  # Lightning accumulates the micro-batches, as before
    assert task.automatic_optimization
    task.accumulate = 1
    # a Trainer built apart that accumulates: Lightning's step, which trains
    trainer = L.Trainer(max_steps=2, accumulate_grad_batches=2, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, accelerator="cpu")
    trainer.fit(task, datamodule=dm)
    assert task.automatic_optimization and trainer.global_step == 2
    assert len(task.history) == 4  # two micro-batches a step
    # a subclass that takes its step otherwise (OFA's training_step returns its loss)
    assert not OFATask._own_step

    class Clipped(FitTask):
        def optimizer_step(self, *args, **kwargs):
            super().optimizer_step(*args, **kwargs)

    assert not Clipped._own_step and FitTask._own_step
    assert type("Renamed", (FitTask,), {})._own_step  # a subclass that changes no step


@pytest.mark.parametrize("first", ["automatic", "own"])
def test_a_checkpoint_resumes_under_either_step_as_an_uninterrupted_run(
        small_png, tmp_path, tiny_cfg, monkeypatch, first):
    steps = 12
    extra = ["task.eval_every=100", "trainer.checkpoint_every=4"]
    whole = tiny_cfg(small_png, tmp_path / "whole", steps=steps, extra_overrides=extra)
    _fit(whole, monkeypatch, automatic=False)
    part = tiny_cfg(small_png, tmp_path / "part", steps=steps, extra_overrides=extra)
    _fit(part, monkeypatch, automatic=first == "automatic")
    # interrupted after step 4: only that checkpoint is left, then resumed by the other step
    ckpts = tmp_path / "part" / "checkpoints"
    keep = ckpts / "step000004.ckpt"
    for p in ckpts.glob("*.ckpt"):
        if p != keep:
            p.unlink()
    for name in ("metrics.json", "metrics.csv"):
        (tmp_path / "part" / name).unlink()
    shutil.rmtree(tmp_path / "part" / "logs", ignore_errors=True)
    with monkeypatch.context() as m:
        if first == "own":
            _automatic(m)
        run(part, resume=True)
    a = _checkpoints(tmp_path / "whole")["last.ckpt"]
    b = _checkpoints(tmp_path / "part")["last.ckpt"]
    assert b["global_step"] == steps
    for key in ("state_dict", "optimizer_states", "lr_schedulers"):
        _same(a[key], b[key], key)
    whole_rows, part_rows = _records(tmp_path / "whole"), _records(tmp_path / "part")
    pd.testing.assert_frame_equal(whole_rows[["step", "loss", "lr"]],
                                  part_rows[["step", "loss", "lr"]])


def test_the_global_loss_leaves_the_steps_own_loss_as_it_was():
    """Several processes: the recorded loss is the mean over them, reduced in place by the
    strategy; under the task's own step ``outputs["loss"]`` is the step's loss itself (what
    the loggers get), so the reduction works on a copy: the loggers keep this process's loss,
    as under automatic optimization."""
    from types import SimpleNamespace

    from inrbench.run.callbacks import GlobalLoss

    def reduce(tensor, reduce_op):  # an all-reduce's mean, in place, as DDP's
        assert reduce_op == "mean"
        return tensor.add_(1.0).div_(2)

    loss = torch.tensor(3.0)
    trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(reduce=reduce))
    module = SimpleNamespace(history=[{"step": 0, "loss": loss}], flush_history=None)
    GlobalLoss().on_train_batch_end(trainer, module, {"loss": loss.detach()}, None, 0)
    assert float(loss) == 3.0
    assert float(module.history[-1]["loss"]) == 2.0
