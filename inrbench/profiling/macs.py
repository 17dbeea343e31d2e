"""MACs per sample, two ways.

``macs``: the convention of the paper whose table the model appears in, computed by the
model's own ``macs_per_sample`` (e.g. ASMR's follows the official ``my_profiler.py``).
``macs_measured``: multiply-accumulates of the matrix products that one full-signal render
actually executes, counted by ``torch.utils.flop_counter`` on meta tensors (so even an
8192x8192 signal costs nothing to count) and divided by the number of samples, plus the
interpolations done by ``F.grid_sample``: a weighted sum of the 2^d corner values, counted as
one multiply-accumulate per corner and output value (bilinear 4, trilinear 8; nearest 0,
bicubic 16), as the matrix products of a network are. Other elementwise work (sines,
additions) is not in this figure; it is the same rule for every model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode


def _corner_macs(mode: int, dims: int) -> int:
    """Corners weighted per output value by grid_sampler's ``interpolation_mode``."""
    return {0: 2 ** dims, 1: 0, 2: 4 ** dims}.get(int(mode), 2 ** dims)


def _grid_sampler_flops(dims: int):
    def flops(input_shape, grid_shape, mode, *args, out_shape=None, **kwargs) -> int:
        return 2 * _corner_macs(mode, dims) * math.prod(out_shape)
    return flops


#: flop formulas of the interpolations counted besides the matrix products (module docstring)
INTERPOLATION_FLOPS = {torch.ops.aten.grid_sampler_2d: _grid_sampler_flops(2),
                       torch.ops.aten.grid_sampler_3d: _grid_sampler_flops(3)}


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def measured_macs(model, shape: Sequence[int]) -> float:
    """MACs per sample of ``model.render(shape)``, from the matmul and interpolation FLOPs
    torch dispatches."""
    meta = copy.deepcopy(model).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False,
                                          custom_mapping=INTERPOLATION_FLOPS) as counter:
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
    """``{"params", "macs", "macs_measured", "macs_source"}`` for a model over a signal of
    ``shape``; ``macs`` is None and ``macs_source`` ``measured only`` for a model without a
    paper convention, every other model's ``macs_source`` is ``paper convention``."""
    macs = paper_macs(model)
    return {
        "params": count_params(model),
        "macs": macs,
        "macs_measured": float(measured_macs(model, shape)),
        "macs_source": "measured only" if macs is None else "paper convention",
    }
