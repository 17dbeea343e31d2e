"""The optimizer every task uses: Adam, annealed by the cosine schedule (SGDR without restarts,
ASMR appendix B) ``lr_t = lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2`` over ``T = steps``
optimizer steps, or held constant (``scheduler: none``)."""

from __future__ import annotations

import torch

SCHEDULERS = ("cosine", "none")


def adam(params, lr: float, scheduler: str = "cosine", steps: int = 1, lr_min: float = 0.0,
         betas=(0.9, 0.999)):
    """What ``configure_optimizers`` returns: Adam over ``params`` (tensors or groups) with the
    cosine schedule stepped every optimizer step, or the bare optimizer for ``none``."""
    opt = torch.optim.Adam(params, lr=lr, betas=tuple(betas))
    if scheduler == "none":
        return opt
    return with_schedule(opt, torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(int(steps), 1), eta_min=lr_min))


def with_schedule(opt, sched):
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
