"""The optimizer every task uses: Adam, annealed by the cosine schedule (SGDR without restarts,
ASMR appendix B) ``lr_t = lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2`` over ``T = steps``
optimizer steps, or held constant (``scheduler: none``). The fitting task may pick Adan
instead (``optimizer: adan``) and a step decay (``lr_step``, ``lr_gamma``), GaussianImage's
recipe."""

from __future__ import annotations

import math

import torch

from inrbench.errors import ConfigError

SCHEDULERS = ("cosine", "none")
OPTIMIZERS = ("adam", "adan")


class Adan(torch.optim.Optimizer):
    """Adan (Xie et al., 2022), as the Adan in GaussianImage's ``optimizer.py`` (sail-sg's
    reference implementation; no gradient clipping, weight decay by the proximal division).
    Per parameter, with ``g`` the gradient, ``g'`` the previous one (``g' = g`` at step 1):

        m = b1 m + (1 - b1) g
        v = b2 v + (1 - b2) (g - g')
        n = b3 n + (1 - b3) (g + b2 (g - g'))^2
        p -= lr (m / (1 - b1^t) + b2 v / (1 - b2^t)) / (sqrt(n / (1 - b3^t)) + eps)
        p /= 1 + lr weight_decay

    ``adan-pytorch`` writes the same update with its betas as ``1 - b`` (0.02, 0.08, 0.01),
    but updates no moment at its first step (its first update is zero), so its moments
    run one step behind this one's."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.98, 0.92, 0.99), eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            b1, b2, b3 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["m"], state["v"], state["n"] = (torch.zeros_like(p) for _ in range(3))
                    state["prev"] = g.clone()
                state["step"] += 1
                t = state["step"]
                diff = g - state["prev"]
                state["m"].mul_(b1).add_(g, alpha=1 - b1)
                state["v"].mul_(b2).add_(diff, alpha=1 - b2)
                u = g + b2 * diff
                state["n"].mul_(b3).addcmul_(u, u, value=1 - b3)
                denom = (state["n"] / (1 - b3 ** t)).sqrt_().add_(group["eps"])
                p.addcdiv_(state["m"], denom, value=-group["lr"] / (1 - b1 ** t))
                p.addcdiv_(state["v"], denom, value=-group["lr"] * b2 / (1 - b2 ** t))
                p.div_(1 + group["lr"] * group["weight_decay"])
                state["prev"].copy_(g)
        return loss


def check_optimizer(optimizer: str, scheduler: str, lr_step: int, lr_gamma: float) -> None:
    """ConfigError for an unknown optimizer or a step decay combined with the cosine."""
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"task.optimizer must be one of {', '.join(OPTIMIZERS)}, got "
                          f"{optimizer!r}")
    if lr_step < 0 or not (isinstance(lr_gamma, (int, float)) and math.isfinite(lr_gamma)
                           and lr_gamma > 0):
        raise ConfigError(f"task.lr_step must be >= 0 and task.lr_gamma > 0, got "
                          f"{lr_step} and {lr_gamma}")
    if lr_step and scheduler != "none":
        raise ConfigError(f"task.lr_step={lr_step} (a step decay) replaces the cosine schedule: "
                          f"give task.scheduler=none with it")


def fit_optimizer(params, lr: float, optimizer: str = "adam", scheduler: str = "cosine",
                  steps: int = 1, lr_min: float = 0.0, lr_step: int = 0,
                  lr_gamma: float = 0.5):
    """Adam or Adan over ``params``; with ``lr_step`` > 0 the rate is multiplied by
    ``lr_gamma`` every ``lr_step`` optimizer steps (StepLR), else :func:`adam`'s schedule."""
    if optimizer == "adam" and not lr_step:
        return adam(params, lr, scheduler, steps, lr_min)
    opt = Adan(params, lr=lr) if optimizer == "adan" else torch.optim.Adam(params, lr=lr)
    if lr_step:
        return with_schedule(opt, torch.optim.lr_scheduler.StepLR(opt, step_size=lr_step,
                                                                  gamma=lr_gamma))
    if scheduler == "none":
        return opt
    return with_schedule(opt, torch.optim.lr_scheduler.CosineAnnealingLR(
        opt, T_max=max(int(steps), 1), eta_min=lr_min))


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
