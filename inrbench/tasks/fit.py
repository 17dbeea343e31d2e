"""Fitting one signal with MSE (ASMR paper sec. 4 / appendix B).

Adam with cosine annealing from ``lr`` to ``lr_min`` over ``steps`` (or Adan and a step
decay, ``optimizer``/``lr_step``/``lr_gamma``: GaussianImage's recipe). A batch without
coordinates means "the whole signal": the model renders it (ASMR through its
activation-sharing path, so a step costs what its MACs say); a batch with coordinates is a
random subset and goes through the per-sample forward, except under block sampling
(``data.sampling: blocks``), where a model that shares activations (ASMR) renders the drawn
cells' subtrees through ``forward_cells`` at its own MAC cost, and every other model gets the
same samples as coordinates. PSNR is logged on every full
reconstruction, SSIM at each evaluation; the best PSNR seen is kept, as the official code
reports it, beside the final one. ``targets`` are the headline-metric thresholds (dB, or IoU
for shapes) whose first crossing the run's record lists (time to quality).
"""

from __future__ import annotations

import inspect
import math

import lightning as L
import torch
import torch.nn.functional as F

from inrbench.data.base import SignalSpec
from inrbench.metrics import evaluate, prediction_to_signal, psnr_tensor
from inrbench.models.base import EVAL_CHUNK
from inrbench.registry import register_task
from inrbench.tasks.optim import TakesOwnStep, check_optimizer, fit_optimizer


class FlushesHistory:
    """Training values kept on the device until the trainer's logging interval, an
    evaluation or the end of training, then read back in one go (``flush_history``, the
    task's own): no host read per step."""

    def flush_at_interval(self) -> None:
        step, every = int(self.global_step), max(int(self.trainer.log_every_n_steps), 1)
        if step % every == 0 and step != getattr(self, "_flushed_at", None):
            self._flushed_at = step
            self.flush_history()

    def on_validation_start(self):
        self.flush_history()

    def on_train_end(self):
        self.flush_history()


class RunHistory(FlushesHistory):
    """The records a task keeps across a resume: the best PSNR, one row per training step
    and one per evaluation, saved in (and restored from) every checkpoint, so a resumed run's
    metrics.csv is complete.

    A training row may hold its values as tensors on the device: reading one back to the
    host would stall an accelerator once a step. :meth:`flush_history` turns the rows since
    the last flush into floats with one read, at the trainer's logging interval, before an
    evaluation or a checkpoint, and when training ends."""

    #: the step whose validation the final evaluation stands for (see skip_final_validation)
    final_validation: int | None = None
    #: how many leading rows of ``history`` hold floats only
    _flushed: int = 0

    #: plain attributes set every step: Lightning sets the first around each of the dozens
    #: of hook calls a step makes; nn.Module's __setattr__ (parameter, module and buffer
    #: checks) would cost a small model's step a few per cent
    _PLAIN = frozenset({"_current_fx_name", "_step_log", "_flushed", "_flushed_at"})

    def __setattr__(self, name, value):
        if name in self._PLAIN:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def flush_history(self) -> None:
        """The tensors in the unflushed training rows as floats (one host read for them
        all), and the best PSNR among them, in step order."""
        rows = self.history[self._flushed:]
        cells = [(row, k) for row in rows for k, v in row.items() if torch.is_tensor(v)]
        if cells:  # float64 holds every float32 exactly: the same floats as float(tensor)
            values = torch.stack([row[k].detach().reshape(()).to(torch.float64)
                                  for row, k in cells]).tolist()
            for (row, k), v in zip(cells, values):
                row[k] = v
        for row in rows:
            if "psnr" in row and row["psnr"] > self.best["psnr"]:
                self.best = {"psnr": row["psnr"], "step": row["step"]}
        self._flushed = len(self.history)

    def log_step(self, **values: torch.Tensor) -> None:
        """This batch's training values for the loggers and the progress bar (``train/<key>``),
        handed to ``self.log`` in ``on_train_batch_end`` only on the batches whose values
        Lightning passes on: ``self.log`` costs more than a small model's step, and a value
        logged on another batch is overwritten unread."""
        self._step_log = {f"train/{k}": v.detach() for k, v in values.items()}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        values, self._step_log = getattr(self, "_step_log", None), None
        # Lightning's own test of whether this batch's logged values reach the loggers
        if values and getattr(self.trainer._logger_connector, "should_update_logs", True):
            self.log_dict(values, prog_bar=True)
        self.flush_at_interval()

    def on_save_checkpoint(self, checkpoint):
        self.flush_history()
        checkpoint["inrbench"] = {"best": self.best, "history": self.history,
                                  "evals": self.evals, "final_validation": self.final_validation}

    def on_load_checkpoint(self, checkpoint):
        state = checkpoint.get("inrbench", {})
        self.best = state.get("best", self.best)
        self.history = state.get("history", [])
        self._flushed = len(self.history)
        self.evals = state.get("evals", [])
        self.final_validation = state.get("final_validation")

    def skip_final_validation(self) -> bool:
        """True in the validation Lightning runs after the last training step of a data-set
        task: the final evaluation (``summary``) scores the same test images with the same
        weights right after it, so that one pass gives both, and its per-image scores become
        this validation's row (:meth:`record_final_validation`): the same history at half
        the evaluation cost."""
        steps = getattr(self, "steps", None)
        if steps is None or int(self.global_step) < int(steps):
            return False
        self.final_validation = int(self.global_step)
        return True

    def record_final_validation(self, per_image: torch.Tensor) -> None:
        """The skipped last validation's row, from the final evaluation's per-image PSNRs."""
        step = int(self.global_step)
        if self.final_validation == step and not any(r["step"] == step for r in self.evals):
            self._val = [per_image]
            self.close_val_epoch()

    def close_val_epoch(self) -> dict | None:
        """The evaluation row of the per-image test PSNRs gathered in ``self._val`` (mean and
        spread), recorded in ``evals`` and ``best``; None when nothing was evaluated."""
        if not getattr(self, "_val", None):
            return None
        psnr = torch.cat(self._val)
        self._val = []
        row = {"step": int(self.global_step), "val_psnr": float(psnr.mean()),
               "val_psnr_std": float(psnr.std(unbiased=False))}
        self.evals.append(row)
        if row["val_psnr"] > self.best["psnr"]:
            self.best = {"psnr": row["val_psnr"], "step": row["step"]}
        return row


class FitTask(TakesOwnStep, RunHistory, L.LightningModule):
    """Fits the model to the signal. :meth:`training_loss` is a step's loss (and its history
    row); with one micro-batch a step the task takes the optimizer step itself
    (:meth:`take_step`, the arithmetic and hooks of Lightning's automatic step at a fraction
    of its per-step cost); under gradient accumulation (the task's or its Trainer's), or for
    a subclass that overrides
    :meth:`training_step`, ``optimizer_step`` or ``optimizer_zero_grad``, Lightning's
    automatic optimization takes it from the returned loss, as before."""

    def __init__(self, model: torch.nn.Module, spec: SignalSpec, lr: float = 1e-4,
                 lr_min: float = 1e-6, steps: int = 10_000, scheduler: str = "cosine",
                 eval_every: int = 1000, accumulate: int = 1, targets=(25.0, 30.0, 35.0),
                 optimizer: str = "adam", lr_step: int = 0, lr_gamma: float = 0.5):
        super().__init__()
        self.optimizer_name, self.lr_step, self.lr_gamma = optimizer, lr_step, lr_gamma
        self.targets = [float(t) for t in targets or ()]
        self.model, self.spec = model, spec
        self.eval_every, self.accumulate = eval_every, accumulate
        self.lr, self.lr_min, self.steps, self.scheduler_name = lr, lr_min, steps, scheduler
        self.best = {"psnr": -math.inf, "step": -1}
        # one row per training step and one per evaluation, keyed by the number of updates
        # the evaluated weights had seen; both are saved in checkpoints so a resumed run's
        # metrics.csv is complete
        self.history: list[dict] = []
        self.evals: list[dict] = []

    #: whether this class's step is the one :meth:`take_step` takes (a subclass that
    #: overrides how a step is taken keeps Lightning's automatic optimization)
    _own_step = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._own_step = all(getattr(cls, name) is getattr(FitTask, name) for name in
                            ("training_step", "optimizer_step", "optimizer_zero_grad"))

    @property
    def automatic_optimization(self) -> bool:
        trainer = self._trainer  # one built apart may accumulate (benchmarks/memory.py)
        return (getattr(self, "accumulate", 1) != 1 or not self._own_step
                or (trainer is not None and trainer.accumulate_grad_batches != 1))

    def on_save_checkpoint(self, checkpoint):
        super().on_save_checkpoint(checkpoint)
        if not self.automatic_optimization:
            self.own_step_checkpoint(checkpoint, saving=True)

    def on_load_checkpoint(self, checkpoint):
        super().on_load_checkpoint(checkpoint)
        if not self.automatic_optimization:
            self.own_step_checkpoint(checkpoint, saving=False)

    def configure_optimizers(self):
        return self.optimizer_for(self.model.parameters())

    def optimizer_for(self, params):
        """The task's optimizer and schedule over ``params`` (its model's, or a stack's)."""
        return fit_optimizer(params, self.lr, self.optimizer_name, self.scheduler_name,
                             self.steps, self.lr_min, self.lr_step, self.lr_gamma)

    def _predict(self, batch):
        if batch.get("level") is not None:  # block sampling, shared within each drawn cell
            pred = self.model.forward_cells(batch["cells"], batch["level"])
            return pred.reshape(-1, pred.shape[-1])
        if "coords" in batch:
            return self.model(batch["coords"])
        return self.model.render(self.spec.shape)

    def _update_best(self, value: float) -> None:
        if value > self.best["psnr"]:
            self.best = {"psnr": value, "step": int(self.global_step)}

    def _loss(self, pred, target):
        """MSE; occupancy (values in {0, 1}) uses BCE on the model's logits, as ACORN does."""
        if self.spec.modality == "occupancy":
            return F.binary_cross_entropy_with_logits(pred, target)
        return F.mse_loss(pred, target)

    def training_step(self, batch, batch_idx):
        loss = self.training_loss(batch, batch_idx)
        if not self.automatic_optimization:
            self.take_step(loss)
        return loss

    def training_loss(self, batch, batch_idx) -> torch.Tensor:
        """This batch's loss, its row appended to ``history`` and handed to the loggers."""
        pred = self._predict(batch)
        loss = self._loss(pred, batch["values"])
        # values stay on the device until flush_history (no host read per step)
        row = {"step": int(self.global_step), "loss": loss.detach(),
               "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        if "coords" not in batch and "cells" not in batch:  # the whole signal: its PSNR
            row["psnr"] = psnr_tensor(prediction_to_signal(pred.detach(), self.spec),
                                      batch["values"], self.spec.data_range)
        self.history.append(row)
        self.log_step(**({"psnr": row["psnr"]} if "psnr" in row else {}), loss=loss)
        return loss

    def validation_step(self, batch, batch_idx):
        pred = self.model.render(self.spec.shape, chunk=EVAL_CHUNK)
        metrics = evaluate(pred, batch["values"], self.spec)
        self._update_best(metrics["psnr"])
        self.evals.append({"step": int(self.global_step),
                           **{f"val_{k}": v for k, v in metrics.items()}})
        self.log_dict({f"val/{k}": v for k, v in metrics.items()}, prog_bar=True)


# Lightning reads training_step's signature every step (does it take batch_idx?); a function
# that carries its signature spares inspect rebuilding it, tens of calls a step
FitTask.training_step.__signature__ = inspect.signature(FitTask.training_step)


@register_task("fit")
def build_fit(model, spec, lr: float = 1e-4, lr_min: float = 1e-6, steps: int = 10_000,
              scheduler: str = "cosine", eval_every: int = 1000, accumulate: int = 1,
              targets: tuple[float, ...] = (25.0, 30.0, 35.0), optimizer: str = "adam",
              lr_step: int = 0, lr_gamma: float = 0.5):
    """Fitting one signal (ASMR paper sec. 4); the keys of ``conf/task/fit.yaml``."""
    check_optimizer(optimizer, scheduler, lr_step, lr_gamma)
    return FitTask(model, spec, lr=lr, lr_min=lr_min, steps=steps, scheduler=scheduler,
                   eval_every=eval_every, accumulate=accumulate, targets=targets,
                   optimizer=optimizer, lr_step=lr_step, lr_gamma=lr_gamma)
