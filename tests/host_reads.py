"""Counting a run's reads of tensor values back to the host (no synchronisation per step):
every read goes through one of :data:`READS`, patched on ``torch.Tensor`` on the CPU."""

import os
import sys

import lightning as L
import torch

READS = ["item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__"]


class StepWatch(L.Callback):
    """The step being trained, for attributing each read."""

    def __init__(self):
        self.step, self.training = None, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.step, self.training = int(trainer.global_step), True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.training = False


class LogEvery(L.Callback):
    """The logging interval of a short test run, set before training starts."""

    def __init__(self, every: int):
        self.every = every

    def on_fit_start(self, trainer, pl_module):
        trainer.log_every_n_steps = self.every


def count_reads(monkeypatch) -> tuple[StepWatch, list]:
    """``(watch, seen)``: pass ``watch`` to the run's callbacks; ``seen`` gets (step, method)
    of every tensor read made while a training batch runs. PyTorch's optimizers read their
    step counter, which they keep on the host beside any device (``torch.optim.Optimizer``'s
    non-capturable default), as a plain PyTorch loop does: those reads are no
    synchronisation and are not counted."""
    where, seen = StepWatch(), []
    for name in READS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename.replace(os.sep, "/")
            if where.training and "/torch/optim/" not in caller:
                seen.append((where.step, _name))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return where, seen


def assert_reads_at_logging_steps(seen: list, every: int, steps: int) -> None:
    """A read belongs to the batch that ends at a logging step (``global_step``, after the
    update, a multiple of ``every``): every other batch of a ``steps``-step run reads
    nothing."""
    off = sorted({(s, m) for s, m in seen if (s + 1) % every})
    assert not off, f"tensor reads between logging steps: {off[:10]}"
    assert {s for s, _ in seen} <= {k * every - 1 for k in range(1, steps // every + 1)}
