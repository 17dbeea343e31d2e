"""MACs per sample, two ways.

``macs``: the convention of the paper whose table the model appears in, computed by the
model's own ``macs_per_sample`` (e.g. ASMR's follows the official ``my_profiler.py``).
``macs_measured``: multiply-accumulates of the matrix products that one full-signal render
actually executes, counted by ``torch.utils.flop_counter`` on meta tensors (so even an
8192x8192 signal costs nothing to count) and divided by the number of samples. Elementwise
work (sines, additions) is not in this figure; it is the same rule for every model.
``flops``: every op of that render, by class (``inrbench.profiling.flops``, the rule named in
``cost_rule``), the cost that is counted the same way for built-ins and plugins.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from inrbench.profiling.flops import flops_per_sample


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def measured_macs(model, shape: Sequence[int]) -> float:
    """MACs per sample of ``model.render(shape)``, from the matmul FLOPs torch dispatches."""
    meta = copy.deepcopy(model).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta.render(shape)
    return counter.get_total_flops() / 2 / math.prod(shape)


def paper_macs(model) -> float | None:
    """The model's own ``macs_per_sample()`` (a paper's convention), or None for a model that
    has none (``NotImplementedError`` or no such method): its figures are measured only."""
    fn = getattr(model, "macs_per_sample", None)
    if fn is None:
        return None
    try:
        return float(fn())
    except NotImplementedError:
        return None


def profile(model, shape: Sequence[int]) -> dict:
    """``{"params", "macs", "macs_measured", "macs_source", "flops", "flops_by_class",
    "cost_rule", "flops_unclassified"}`` for a model over a signal of ``shape``; ``macs`` is
    None and ``macs_source`` ``measured only`` for a model without a paper convention, every
    other model's ``macs_source`` is ``paper convention``. ``flops`` (per sample, all the
    arithmetic of one render) is counted for every model by the rule ``cost_rule`` names;
    ``flops_unclassified`` lists the ops that rule did not know (counted as elementwise)."""
    macs = paper_macs(model)
    cost = flops_per_sample(model, shape)
    return {
        "params": count_params(model),
        "macs": macs,
        # the rule's matmul class is torch's FLOP counter on the same render: one pass gives both
        "macs_measured": cost["by_class"]["matmul"] / 2,
        "macs_source": "measured only" if macs is None else "paper convention",
        "flops": cost["flops"],
        "flops_by_class": cost["by_class"],
        "cost_rule": cost["rule"],
        "flops_unclassified": cost["unclassified"],
    }
