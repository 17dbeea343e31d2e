"""The Lightning callbacks of a run: checkpoints kept, the schedule re-planned on a longer
resume, params/MACs at fit start, render latency at fit end, wall time (training and evaluation
apart), the wall-clock and epoch bounds with the schedule planned over them, the global
loss, the stop on a non-finite loss."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.profilers import PassThroughProfiler

from inrbench.checkpoint import checkpoints_newest_first, prune_step_checkpoints
from inrbench.console import note
from inrbench.errors import Diverged
from inrbench.profiling import latency_budget, macs_counts, profile, render_latency_ms


class NoBatchStart:
    """Mixin, first among a callback's bases, for one that does nothing when a training batch
    starts: Lightning calls a callback's hook only where it is callable, so ``None`` spares
    the dispatch, a few microseconds per callback and hook every step."""

    on_train_batch_start = None


class NoBatchHooks(NoBatchStart):
    """:class:`NoBatchStart` for a callback that does nothing when a training batch ends
    either."""

    on_train_batch_end = None


class KeepCheckpoints(NoBatchStart, ModelCheckpoint):
    """``last.ckpt`` plus the newest ``keep`` step checkpoints (older ones are deleted), so a
    corrupt last checkpoint costs at most ``checkpoint_every`` steps."""

    def __init__(self, dirpath: Path, every: int, keep: int):
        super().__init__(dirpath=dirpath, filename="step{step:06d}", save_last=True,
                         every_n_train_steps=every, save_top_k=-1,
                         auto_insert_metric_name=False)
        self.keep = keep

    def on_train_batch_end(self, trainer, pl_module, *args):
        if self._every_n_train_steps < 1 or trainer.global_step % self._every_n_train_steps:
            return  # what the base class decides, without its per-step work
        with warnings.catch_warnings():
            # its warning under manual optimization (the fitting task's own step): the
            # checkpoint holds the weights after the step, as under automatic optimization
            warnings.filterwarnings("ignore", "Using ModelCheckpoint with manual optimization")
            super().on_train_batch_end(trainer, pl_module, *args)

    def _save_checkpoint(self, trainer, filepath):
        super()._save_checkpoint(trainer, filepath)
        if trainer.is_global_zero and self.dirpath:
            prune_step_checkpoints(Path(self.dirpath), self.keep)


class NoProfiler(PassThroughProfiler):
    """The Trainer's default profiler (none), without its cost: Lightning wraps each of the
    dozens of hook calls of a step in ``profiler.profile(name)``, a generator-based context
    manager that costs a small model's step a few per cent; this one returns one reusable
    context that does nothing."""

    _nothing = contextlib.nullcontext()

    def profile(self, action_name: str):
        return self._nothing


class ReplanSchedule(NoBatchHooks, L.Callback):
    """``--resume --steps N`` with another N: from the checkpoint's step k on, the learning rate
    follows the cosine schedule of an N-step run (SGDR's closed form,
    ``lr_t = lr_min + (lr - lr_min) (1 + cos(pi t / N)) / 2``), so the run ends at ``lr_min``
    at step N as an N-step run does; the rate changes once, at step k, and the line says how.
    """

    def __init__(self, steps: int):
        self.steps = steps

    def on_train_start(self, trainer, pl_module):
        step, n = int(trainer.global_step), self.steps
        for config in trainer.lr_scheduler_configs:
            old = config.scheduler
            if not isinstance(old, torch.optim.lr_scheduler.CosineAnnealingLR):
                continue
            opt = old.optimizer
            before = opt.param_groups[0]["lr"]
            new = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(n, 1),
                                                             eta_min=old.eta_min)
            lrs = [old.eta_min + (base - old.eta_min) * (1 + math.cos(math.pi * step / n)) / 2
                   for base in new.base_lrs]
            for group, lr in zip(opt.param_groups, lrs):
                group["lr"] = lr
            new.last_epoch, new._last_lr = step, list(lrs)
            config.scheduler = new
            if trainer.is_global_zero:
                note(f"--resume: cosine schedule re-planned for {n} steps: lr {before:.3g} -> "
                     f"{lrs[0]:.3g} at step {step}, {old.eta_min:.3g} at step {n}")


def _log(trainer: L.Trainer, values: dict) -> None:
    scalars = {k: v for k, v in values.items() if isinstance(v, (int, float))}
    for logger in trainer.loggers:
        logger.log_metrics({f"model/{k}": v for k, v in scalars.items()},
                           step=trainer.global_step)


class ProfileCallback(NoBatchHooks, L.Callback):
    """Logs ``params``, ``macs`` (paper convention), ``macs_measured`` and ``macs_counts`` (each
    convention) when fitting starts."""

    def __init__(self, shape, results: dict):
        self.shape, self.results = tuple(shape), results

    def on_fit_start(self, trainer, pl_module):
        stats = profile(pl_module.model, self.shape)
        self.results.update(stats)
        self.results["macs_counts"] = macs_counts(pl_module.model)  # each paper's count
        _log(trainer, stats)


class LatencyCallback(NoBatchHooks, L.Callback):
    """Median full-signal render time (after warm-up, inference mode) when fitting ends,
    within ``latency_budget`` of the fit's seconds so far (``clock``, a :class:`WallClock`;
    without one, ``budget_s`` alone; ``inrbench.profiling.latency``)."""

    def __init__(self, shape, results: dict, repeats: int = 10, warmup: int = 3,
                 budget_s: float = 60.0, clock: WallClock | None = None):
        self.shape, self.results = tuple(shape), results
        self.repeats, self.warmup, self.budget_s = repeats, warmup, budget_s
        self.clock = clock

    def on_fit_end(self, trainer, pl_module):
        fit_s = None if self.clock is None else self.clock.elapsed()
        stats = render_latency_ms(pl_module.model, self.shape, self.repeats, self.warmup,
                                  latency_budget(self.budget_s, fit_s))
        self.results.update(stats)
        _log(trainer, {"latency_ms": stats["latency_ms"]})


class GlobalLoss(NoBatchStart, L.Callback):
    """Multi-process training: each process computes the loss on its share of the batch;
    the recorded loss is their mean (the loss of the whole batch, as one process sees it)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.world_size > 1 and pl_module.history and isinstance(outputs, dict):
            # the reduction is in place: on a copy, so the step's own loss (what the
            # loggers get, and under the task's own step the very tensor in outputs) stays
            loss = trainer.strategy.reduce(outputs["loss"].detach().clone(), reduce_op="mean")
            row = pl_module.history[-1]  # a tensor stays on the device until the task's flush
            row["loss"] = loss if hasattr(pl_module, "flush_history") else float(loss)


class FiniteLoss(NoBatchStart, L.Callback):
    """Stops the run at a non-finite loss with :class:`inrbench.errors.Diverged`, which names
    the first step whose loss was not finite and what the folder keeps (the step checkpoints
    written before it, if any); no result is written. Every task returns its loss from
    ``training_step``, so this one check covers them all.

    Reading the loss back to the host each step would stall an accelerator once a step, so
    the losses since the last check are kept (on the device, no work per step) and tested
    together at the trainer's logging interval, before every checkpoint (so none holds
    weights updated from a non-finite loss) and when training ends."""

    def __init__(self, checkpoints: Path):
        self.checkpoints = Path(checkpoints)
        self._losses: list[tuple[int, torch.Tensor]] = []  # (step, loss) since the last check
        self._checked_at: int | None = None

    def on_before_backward(self, trainer, pl_module, loss):
        self._losses.append((int(trainer.global_step), loss.detach()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = int(trainer.global_step)
        # once per logging step (its micro-batches under accumulation see the same step)
        if step % max(int(trainer.log_every_n_steps), 1) == 0 and step != self._checked_at:
            self._checked_at = step
            self.check(trainer)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.check(trainer)

    def on_train_end(self, trainer, pl_module):
        self.check(trainer)

    def check(self, trainer) -> None:
        """Raises :class:`Diverged` if a loss since the last check was not finite (one host
        read for them all)."""
        seen, self._losses = self._losses, []
        if not seen:
            return
        losses = torch.stack([loss if loss.dim() == 0 else loss.sum() for _, loss in seen])
        steps = torch.tensor([float(s) for s, _ in seen], dtype=torch.float64,
                             device=losses.device)
        first = torch.where(torch.isfinite(losses), math.inf, steps).min()
        if trainer.world_size > 1:  # every process stops together, at the earliest step
            first = trainer.strategy.reduce(first, reduce_op="min")
        if math.isinf(first := float(first)):
            return
        step = int(first)
        value = next((v for (s, _), v in zip(seen, losses.tolist())
                      if s == step and not math.isfinite(v)), "not finite")
        kept = [p for p in checkpoints_newest_first(self.checkpoints) if p.name != "last.ckpt"]
        left = (f"the folder keeps the checkpoints written before it (newest: {kept[0]}), "
                f"and no metrics.json" if kept else
                "no checkpoint had been written, so the run leaves no results")
        raise Diverged(f"the training loss at step {step} is {value}: training diverged "
                       f"(a lower task.lr, or a model whose output is finite, may help); "
                       f"{left}")


class WallClock(NoBatchHooks, L.Callback):
    """Wall time of ``fit`` (``elapsed``, the final latency renders included) and the training
    time within it (``train_elapsed``: evaluations and the latency renders excluded), both
    carried across resumes in the checkpoint. Each evaluation row a task appends
    (``pl_module.evals``) gets ``train_s``, the training seconds its weights had seen, and
    ``eval_s``, what the evaluation took."""

    def __init__(self):
        self.before, self.t0 = 0.0, time.perf_counter()
        self.train_before, self.eval_before = 0.0, 0.0
        self.eval_now, self._v0, self._at, self._end = 0.0, None, 0.0, None

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def _running_eval(self) -> float:
        return time.perf_counter() - self._v0 if self._v0 is not None else 0.0

    def eval_elapsed(self) -> float:
        return self.eval_before + self.eval_now + self._running_eval()

    def train_elapsed(self) -> float:
        end = self._end if self._end is not None else time.perf_counter()
        return self.train_before + end - self.t0 - self.eval_now - self._running_eval()

    def on_train_start(self, trainer, pl_module):
        self.t0, self.eval_now, self._end = time.perf_counter(), 0.0, None

    def on_train_end(self, trainer, pl_module):
        self._end = time.perf_counter()

    def on_validation_start(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self._at, self._v0 = self.train_elapsed(), time.perf_counter()

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking or self._v0 is None:
            return
        took = time.perf_counter() - self._v0
        self.eval_now, self._v0 = self.eval_now + took, None
        for row in getattr(pl_module, "evals", []):
            if row.get("step") == trainer.global_step and "train_s" not in row:
                row.update(train_s=self._at, eval_s=took)

    def state_dict(self):
        return {"wall_s": self.elapsed(), "train_s": self.train_elapsed(),
                "eval_s": self.eval_elapsed()}

    def load_state_dict(self, state):
        self.before = state.get("wall_s", 0.0)
        self.eval_before = state.get("eval_s", 0.0)
        self.train_before = state.get("train_s", self.before - self.eval_before)


class BudgetCosine(torch.optim.lr_scheduler.LRScheduler):
    """The cosine schedule over a run's progress ``p`` in [0, 1] rather than its step count:
    ``lr = lr_min + (lr0 - lr_min) (1 + cos(pi p)) / 2``, so a run bounded by wall time ends
    at ``lr_min`` when its time is up. ``progress`` is read at every step."""

    def __init__(self, optimizer, eta_min: float, progress):
        self.eta_min, self.progress = eta_min, progress
        super().__init__(optimizer)

    def get_lr(self):
        p = min(max(float(self.progress()), 0.0), 1.0)
        return [self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * p)) / 2
                for base in self.base_lrs]

    def state_dict(self):
        return {k: v for k, v in super().state_dict().items() if k != "progress"}


class Budget(NoBatchStart, L.Callback):
    """The bounds of a run besides ``task.steps``: ``max_time`` training seconds (evaluations
    excluded, :class:`WallClock`) and the Trainer's ``max_epochs``. When either is set, the
    cosine schedule follows ``p = max(step / horizon, train_s / max_time)`` (``horizon``: the
    optimizer steps the step and epoch bounds allow), so it reaches ``lr_min`` at whichever
    bound ends the run. ``stopped_by(trainer)``: ``max_time``, ``steps`` or ``epochs``."""

    def __init__(self, clock: WallClock, max_time: float | None, max_epochs: int | None):
        self.clock, self.max_time, self.max_epochs = clock, max_time, max_epochs
        self.timed_out, self.horizon, self.spent = False, None, 0.0

    def _elapsed(self, trainer) -> float:
        """Training seconds; with several processes rank 0's, so that every process takes
        the same learning rate and stops at the same step."""
        t = self.clock.train_elapsed()
        return trainer.strategy.broadcast(t, src=0) if trainer.world_size > 1 else t

    def progress(self, trainer) -> float:
        steps = trainer.global_step / max(self.horizon or 1, 1)
        return max(steps, self.spent / self.max_time if self.max_time else 0.0)

    def on_train_start(self, trainer, pl_module):
        self._check(trainer)
        if self.max_time is None and self.max_epochs is None:
            return  # the step-planned schedule as the task made it
        self.horizon = int(trainer.estimated_stepping_batches)
        for config in trainer.lr_scheduler_configs:
            old = config.scheduler
            if isinstance(old, torch.optim.lr_scheduler.CosineAnnealingLR):
                config.scheduler = BudgetCosine(old.optimizer, old.eta_min,
                                                lambda t=trainer: self.progress(t))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._check(trainer)

    def _check(self, trainer) -> None:
        if self.max_time is None:
            return
        self.spent = self._elapsed(trainer)
        if self.spent >= self.max_time:
            self.timed_out, trainer.should_stop = True, True

    def stopped_by(self, trainer, steps: int) -> str:
        if trainer.global_step >= steps:
            return "steps"
        if self.timed_out:
            return "max_time"
        if self.max_epochs is not None and trainer.current_epoch >= self.max_epochs:
            return "epochs"
        return "interrupted"
