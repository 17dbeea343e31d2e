"""MACs per sample, two ways.

``macs``: the convention of the paper whose table the model appears in, computed by the
model's own ``macs_per_sample`` (e.g. ASMR's follows the official ``my_profiler.py``).
``macs_measured``: multiply-accumulates of the matrix products that one full-signal render
actually executes, counted by ``torch.utils.flop_counter`` on meta tensors (so even an
8192x8192 signal costs nothing to count) and divided by the number of samples. Elementwise
work (sines, additions) is not in this figure; it is the same rule for every model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def measured_macs(model, shape: Sequence[int]) -> float:
    """MACs per sample of ``model.render(shape)``, from the matmul FLOPs torch dispatches."""
    meta = copy.deepcopy(model).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta.render(shape)
    return counter.get_total_flops() / 2 / math.prod(shape)


def profile(model, shape: Sequence[int]) -> dict:
    """``{"params", "macs", "macs_measured"}`` for a model over a signal of ``shape``."""
    return {
        "params": count_params(model),
        "macs": float(model.macs_per_sample()),
        "macs_measured": float(measured_macs(model, shape)),
    }
