"""Quantization-aware training with LSQ+ (ANI sec. 4.3, Alg. 1; Bhalgat et al. 2020).

``inrbench run --task qat task.quant_bits=4`` (or ``task.quant_bits=4`` on the fitting task)
fits the signal as the fitting task does (same loss, schedule, logging, checkpoints), but the
selected tensors (``task.quant_layers``, default ANI's hidden-layer weights) are seen by the
model through LSQ+ fake quantization (``inrbench.compression.quant.LSQWeight``):

    w^ = round(clamp((w - beta) / s, -2^{b-1}, 2^{b-1} - 1)) s + beta

with the straight-through estimator and learned ``s`` (and ``beta`` with
``task.quant_offset=true``; ANI's weights have none, eq. 3). Every render during training and
evaluation uses the quantized weights, so the PSNR in ``metrics.json`` is the PSNR of the
network ``inrbench compress`` writes (which stores ``s``, ``beta`` and the integer symbols).

Adam's update is invariant to gradient scale, so LSQ's gradient scale g = 1/sqrt(N Qp) alone
does not slow the step sizes down as it does under SGD, and an Adam step moves a parameter by
about its learning rate whatever its size. The step sizes (and offsets) of a tensor therefore
learn at ``task.quant_step_lr`` times that tensor's initial step size (a relative rate, the
same at every bit width; it follows the run's cosine schedule). An absolute rate, as
``task.lr * task.quant_lr_scale``, is 16x larger relative to an 8-bit step than to a 4-bit
one: measured on a 512x768 photo, ASMR QAT at 8 bits then ended 3.5 dB *below* 4 bits.
``task.quant_step_lr=null`` gives that absolute rule.
"""

from __future__ import annotations

import math

import torch

from inrbench.compression.quant import LSQWeight, apply_lsq, check_bits
from inrbench.errors import ConfigError
from inrbench.registry import register_task
from inrbench.tasks.fit import FitTask
from inrbench.tasks.optim import adam, with_schedule


class QATTask(FitTask):
    """``FitTask`` whose optimizer gives the LSQ+ quantizer parameters their own rate."""

    def __init__(self, model, spec, bits: int, quant_lr_scale: float = 0.01,
                 quant_step_lr: float | None = 0.005, **kwargs):
        super().__init__(model, spec, **kwargs)
        self.bits, self.quant_lr_scale, self.quant_step_lr = bits, quant_lr_scale, quant_step_lr

    def configure_optimizers(self):
        if self.quant_step_lr is not None:
            return self._relative_rate_optimizers()
        quant = {id(p) for m in self.model.modules() if isinstance(m, LSQWeight)
                 for p in m.parameters()}
        groups = [{"params": [p for p in self.model.parameters() if id(p) not in quant],
                   "lr": self.lr},
                  {"params": [p for p in self.model.parameters() if id(p) in quant],
                   "lr": self.lr * self.quant_lr_scale}]
        return adam(groups, self.lr, self.scheduler_name, self.steps, self.lr_min)


    def _relative_rate_optimizers(self):
        quantizers = [m for m in self.model.modules() if isinstance(m, LSQWeight)]
        quant = {id(p) for m in quantizers for p in m.parameters()}
        groups = [{"params": [p for p in self.model.parameters() if id(p) not in quant],
                   "lr": self.lr}]
        groups += [{"params": list(m.parameters()), "lr": self.quant_step_lr * m.init_step}
                   for m in quantizers]
        opt = torch.optim.Adam(groups, lr=self.lr)
        if self.scheduler_name == "none":
            return opt
        steps, floor = max(self.steps, 1), self.lr_min / self.lr

        def cosine(step: int) -> float:
            """CosineAnnealingLR's closed form as a factor of each group's own rate, so the
            step sizes anneal in proportion instead of towards the weights' lr_min."""
            t = min(step, steps)
            return floor + (1 - floor) * (1 + math.cos(math.pi * t / steps)) / 2

        return with_schedule(opt, torch.optim.lr_scheduler.LambdaLR(opt, cosine))


@register_task("qat")
def build_qat(model, spec, quant_bits: int, lr: float = 1e-4, lr_min: float = 1e-6,
              steps: int = 10_000, scheduler: str = "cosine", eval_every: int = 1000,
              accumulate: int = 1, quant_layers: str = "hidden", quant_biases: bool = False,
              quant_offset: bool = False, quant_step_lr: float | None = 0.005,
              quant_lr_scale: float = 0.01):
    """LSQ+ QAT of the model on the signal: the keys of ``conf/task/qat.yaml``."""
    if quant_bits is None:
        raise ConfigError("--task qat needs task.quant_bits=B (e.g. 8 or 4, ANI Table 3)")
    bits = check_bits(quant_bits)
    if not quant_lr_scale > 0:
        raise ConfigError(f"task.quant_lr_scale must be > 0, got {quant_lr_scale}")
    if quant_step_lr is not None and not (isinstance(quant_step_lr, (int, float))
                                          and quant_step_lr > 0):
        raise ConfigError(f"task.quant_step_lr must be a number > 0 (a fraction of each "
                          f"tensor's initial step size per Adam step) or null, got "
                          f"{quant_step_lr!r}")
    apply_lsq(model, bits, str(quant_layers), bool(quant_biases), bool(quant_offset))
    return QATTask(model, spec, bits, float(quant_lr_scale),
                   None if quant_step_lr is None else float(quant_step_lr), lr=lr,
                   lr_min=lr_min, steps=steps, scheduler=scheduler, eval_every=eval_every,
                   accumulate=accumulate)
