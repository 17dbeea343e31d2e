"""Fitting ``n`` signals (or seeds) at once: the fitting task (:mod:`inrbench.tasks.fit`) over
a :class:`~inrbench.models.stack.StackedModel`.

Each step renders (or evaluates at the drawn coordinates) every member through one
``vmap``'d call and minimises the sum of the members' own losses,

    L = sum_i L_i(f(.; theta_i), y_i),

whose gradient in ``theta_i`` is ``dL_i/dtheta_i``: member ``i`` trains on its signal with its
initialisation as a separate run would. The optimizer, its schedule and the step budget are
the fitting task's, built over the stacked tensors (Adam and Adan update elementwise).

The records are the members' own: each member is a :class:`~inrbench.tasks.fit.FitTask` (its
model, spec, history, evaluations, best PSNR) that this task fills, one row per step and one
per evaluation, as the member would have filled it training alone. Rows hold stacked device
tensors until the logging interval, then one host read turns them all into floats.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.func import vmap

from inrbench.metrics import evaluate, prediction_to_signal, psnr_tensor
from inrbench.models.base import EVAL_CHUNK
from inrbench.models.stack import StackedModel
from inrbench.tasks.fit import FlushesHistory


class StackedFitTask(FlushesHistory, L.LightningModule):
    """The fitting task of every member of ``members`` (FitTasks of one configuration whose
    models are stacked in ``model``)."""

    def __init__(self, members: list, model: StackedModel):
        super().__init__()
        self.model = model
        self._members = list(members)  # a plain list: their modules are not this one's
        first = members[0]
        self.spec, self.steps = first.spec, first.steps
        self._rows: list[dict] = []  # stacked rows not yet read back

    @property
    def members(self) -> list:
        return self._members

    def _apply(self, fn, recurse=True):
        # the members' own models (evaluation, latency, final scores) go where the stack
        # goes (the trainer's device), as a run's model goes with its task
        super()._apply(fn, recurse)
        for member in self._members:
            member._apply(fn, recurse)
        return self

    def configure_optimizers(self):
        # the members share one task config: its optimizer over the stacked tensors
        return self._members[0].optimizer_for(self.model.parameters())

    def _predict(self, batch) -> torch.Tensor:
        if batch.get("level") is not None:
            pred = self.model.call("forward_cells", batch["cells"], batch["level"])
            return pred.reshape(pred.shape[0], -1, pred.shape[-1])
        if "coords" in batch:
            return self.model.call("forward", batch["coords"])
        return self.model.call("render", tuple(self.spec.shape))

    def training_step(self, batch, batch_idx):
        pred = self._predict(batch)
        losses = vmap(self._members[0]._loss)(pred, batch["values"])
        row = {"step": int(self.global_step), "loss": losses.detach(),
               "lr": self.trainer.optimizers[0].param_groups[0]["lr"]}
        if "coords" not in batch and "cells" not in batch:
            spec = self.spec
            row["psnr"] = vmap(lambda p, v: psnr_tensor(prediction_to_signal(p, spec), v,
                                                        spec.data_range))(pred.detach(),
                                                                          batch["values"])
        self._rows.append(row)
        return losses.sum()

    def flush_history(self) -> None:
        """The stacked rows since the last flush into each member's history, as floats (one
        host read for them all); each member's best PSNR follows."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        keys = [k for k in ("loss", "psnr") if k in rows[0]]
        values = torch.stack([torch.stack([r[k].to(torch.float64) for k in keys])
                              for r in rows]).tolist()  # (rows, keys, members)
        for i, member in enumerate(self._members):
            for r, vals in zip(rows, values):
                row = {"step": r["step"], "loss": vals[0][i], "lr": r["lr"]}
                row.update({k: vals[j][i] for j, k in enumerate(keys) if k != "loss"})
                member.history.append(row)
            member.flush_history()

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.flush_at_interval()

    def validation_step(self, batch, batch_idx):
        # each member's own model renders, through the code a separate run evaluates with
        # (the no-grad render paths write into preallocated outputs, which vmap cannot batch)
        step = int(self.global_step)
        for i, member in enumerate(self._members):
            model = self.model.load_member(i, member.model)
            pred = model.render(self.spec.shape, chunk=EVAL_CHUNK)
            metrics = evaluate(pred, batch["values"][i], member.spec)
            if metrics["psnr"] > member.best["psnr"]:
                member.best = {"psnr": metrics["psnr"], "step": step}
            member.evals.append({"step": step, **{f"val_{k}": v for k, v in metrics.items()}})
        # WallClock stamps each new evaluation row with the training seconds it had seen
        self.evals = [m.evals[-1] for m in self._members]

    def on_save_checkpoint(self, checkpoint):
        self.flush_history()
        checkpoint["inrbench_members"] = [
            {"best": m.best, "history": m.history, "evals": m.evals,
             "final_validation": m.final_validation} for m in self._members]

    def on_load_checkpoint(self, checkpoint):
        for m, state in zip(self._members, checkpoint.get("inrbench_members", [])):
            m.on_load_checkpoint({"inrbench": state})
