"""The optimizer every task uses: Adam, annealed by the cosine schedule (SGDR without restarts,
ASMR appendix B) ``lr_t = lr_min + (lr - lr_min) (1 + cos(pi t / T)) / 2`` over ``T = steps``
optimizer steps, or held constant (``scheduler: none``). The fitting task may pick Adan
instead (``optimizer: adan``) and a step decay (``lr_step``, ``lr_gamma``), GaussianImage's
recipe. :class:`TakesOwnStep`: the optimizer step a task takes itself, with the hooks of
Lightning's automatic step but only where something listens to them."""

from __future__ import annotations

import math
from functools import partial

import lightning as L
import torch
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden

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


#: the hooks Lightning calls around an optimizer step, in its order: on each callback that
#: defines one, then on the module
STEP_HOOKS = ("on_before_zero_grad", "on_before_backward", "on_after_backward",
              "on_before_optimizer_step")


class TakesOwnStep:
    """For a LightningModule under manual optimization that takes one optimizer step per
    batch itself (:meth:`take_step`), with the arithmetic and the hooks of Lightning's
    automatic step: ``on_before_zero_grad``, zero the gradients, ``on_before_backward``,
    ``backward``, ``on_after_backward``, ``on_before_optimizer_step``, the optimizer step,
    then the step-interval schedulers.

    Lightning dispatches each of those hooks to every callback, most of which leave it empty,
    at a cost of tens of microseconds a hook with a run's ten callbacks: more than a small
    model's step spends in the optimizer. Here each hook is called only on the callbacks (and
    the module) that define it, which is all a no-op hook's call would do. On one device at
    full precision the backward and the step are the ones Lightning's plain strategy and
    precision take; any other strategy or precision (several processes, mixed precision)
    goes through Lightning's own ``manual_backward`` and optimizer step."""

    def take_step(self, loss: torch.Tensor) -> None:
        trainer = self.trainer
        plain, hooks = self._step_hooks(trainer)
        loop = trainer.fit_loop.epoch_loop
        # the automatic loop's counters, kept as it keeps them: checkpoints hold the same
        # loop state as under automatic optimization (see own_step_checkpoint)
        counts = loop.automatic_optimization.optim_progress.optimizer
        opt = trainer.strategy._lightning_optimizers[0]  # counts the step (global_step)
        raw = opt.optimizer
        counts.zero_grad.increment_ready()
        self._run_hooks(hooks["on_before_zero_grad"], "on_before_zero_grad", raw)
        counts.zero_grad.increment_started()
        raw.zero_grad()
        counts.zero_grad.increment_completed()
        counts.step.increment_ready()
        if plain:
            self._run_hooks(hooks["on_before_backward"], "on_before_backward", loss)
            self.backward(loss)
            self._run_hooks(hooks["on_after_backward"], "on_after_backward")
            opt._on_before_step()
            self._run_hooks(hooks["on_before_optimizer_step"], "on_before_optimizer_step", raw)
            raw.step()
            opt._on_after_step()
        else:
            self.manual_backward(loss)
            opt.step()
        counts.step.increment_completed()
        step = trainer.global_step
        for config in trainer.lr_scheduler_configs:
            # what the automatic loop steps after each optimizer step
            if config.interval == "step" and not config.reduce_on_plateau \
                    and step % config.frequency == 0:
                loop.scheduler_progress.increment_ready()
                self.lr_scheduler_step(config.scheduler, None)
                loop.scheduler_progress.increment_completed()

    def own_step_checkpoint(self, checkpoint: dict, saving: bool) -> None:
        """The loop state of a checkpoint as automatic optimization writes it, whichever
        took the steps: Lightning counts a manual step apart (the count global_step reads
        under manual optimization), which a checkpoint holds at zero and a resume takes
        from the automatic count, so checkpoints written before and after this task took
        its own steps resume alike."""
        loops = checkpoint.get("loops", {}).get("fit_loop", {})
        auto = loops.get("epoch_loop.automatic_optimization.optim_progress")
        manual = "epoch_loop.manual_optimization.optim_step_progress"
        if auto is None or manual not in loops:
            return
        step = auto["optimizer"]["step"]
        loops[manual] = {part: {k: 0 if saving else step[part][k] for k in ("ready", "completed")}
                         for part in ("total", "current")}

    def _run_hooks(self, hooks: list, name: str, *args) -> None:
        if hooks:
            before, self._current_fx_name = self._current_fx_name, name
            for hook in hooks:
                hook(*args)
            self._current_fx_name = before

    def _step_hooks(self, trainer) -> tuple[bool, dict[str, list]]:
        """Whether the strategy and precision are Lightning's plain ones, and per hook of
        :data:`STEP_HOOKS` the callables that define it; found once per fit (kept on the
        trainer, which holds the callbacks)."""
        found = trainer.__dict__.get("_inrbench_step_hooks")
        if found is None or found[0] is not self:
            plain = (type(trainer.strategy) is SingleDeviceStrategy
                     and type(trainer.precision_plugin) is Precision)
            hooks = {}
            for name in STEP_HOOKS:
                hooks[name] = [partial(getattr(cb, name), trainer, self)
                               for cb in trainer.callbacks
                               if is_overridden(name, cb, L.Callback)]
                if is_overridden(name, self, L.LightningModule):
                    hooks[name].append(getattr(self, name))
            found = trainer.__dict__["_inrbench_step_hooks"] = (self, plain, hooks)
        return found[1], found[2]
