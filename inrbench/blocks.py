"""Block sampling (``data.sampling: blocks``): which cells a step draws, chosen per model.

ASMR trains on whole subtrees of one level of its decomposition (sec. 3.1, 3.3): a level-k
cell is an aligned block of ``G_k = N / C_k`` samples per axis, and its layers k..L-1 share
activations exactly as a full render does, so a step costs ASMR's MACs, not SIREN's.

Which level: coarse cells share the most but put few places of the signal in a step (17 cells
of 125x125 in a 2^18-sample step of the 20 MP Pluto stand-in), fine cells spread the step
over the signal for little more work, since the coarse layers run once per cell and the
fine ones, which dominate, run per sample either way. So every level whose cells fit a step
of about ``data.batch_size`` samples is costed by the profiler's rule
(:func:`block_step_macs`: the matmul MACs of one ``forward_cells`` step counted on meta
tensors, per sample), and the default is the finest level costing at most
``data.block_cost`` (1.25) times the cheapest. When that level puts fewer than
``data.block_cells`` (256) cells in a step, the coarsest finer level that does (or, if none
does, the finest) is taken instead, provided it costs at most ``SPREAD_COST_LIMIT`` (4) times
the cheapest: at equal wall time a step of 26-64 cells trained 1.3-3.7 dB worse than one of
655-1,024 cells that cost ~3x as much, while steps of 419-1,024 cells were the best level
(``reports/blocks-spread-cpu``, ``reports/blocks-spread-2e18``). ``data.block`` picks the cells
itself. Models without
activation sharing train on the same samples as coordinates: with ``data.block`` given they
draw exactly the cells ASMR draws; otherwise cells of ASMR's default bases for the signal, of
the coarsest level that puts at least ``data.block_cells`` cells in a step (their cost per
sample is the same at every level, so only the spread differs, and it is held to the rule's).
"""

from __future__ import annotations

import copy
import math
import sys

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from inrbench.bases import default_bases
from inrbench.console import note
from inrbench.data.base import RandomBlocks, SignalSpec, choose_cells
from inrbench.data.mapped import take
from inrbench.errors import ConfigError
from inrbench.metrics import psnr_from_mse

#: a level taken for spread (``data.block_cells``) costs at most this times the cheapest level
#: (the finest spread level in the quality records cost 3.2-3.4x)
SPREAD_COST_LIMIT = 4.0
#: signals with more samples than this train on blocks when ``data.sampling: auto``
AUTO_FULL_LIMIT = 2**20
#: samples per step of ``sampling: auto`` when the signal is too big for one step
AUTO_BATCH = 2**18


def _default_cell_shapes(shape) -> dict[int, list[int]]:
    try:
        bases = default_bases(shape, 4)
    except ConfigError:
        return {0: [1] * len(shape)}
    cells = [[math.prod(b[: k + 1]) for b in bases] for k in range(3)]
    return {k: [n // c for n, c in zip(shape, cells[k])] for k in range(3)}


def block_step_macs(model, level: int, n_cells: int, meta=None) -> float:
    """MACs per sample of one block step of ``n_cells`` level-``level`` cells: the matrix
    products ``model.forward_cells`` dispatches, counted on meta tensors (no memory, no time:
    the rule of :func:`inrbench.profiling.measured_macs`), over the step's samples. The
    backward pass repeats the same products, so the ratio between levels is the step's."""
    meta = meta if meta is not None else copy.deepcopy(model).to("meta")
    cells = torch.zeros(n_cells, len(model.cell_shapes()[level]), dtype=torch.long,
                        device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta.forward_cells(cells, level)
    return counter.get_total_flops() / 2 / (n_cells * math.prod(model.cell_shapes()[level]))


def level_costs(model, batch_size: int) -> list[dict]:
    """Every level whose cells fit a step of ``batch_size`` samples (the finest level when
    none does), with its cell, cells per step and :func:`block_step_macs`."""
    shapes = model.cell_shapes()
    levels = [k for k in sorted(shapes) if math.prod(shapes[k]) <= batch_size] or [max(shapes)]
    meta = copy.deepcopy(model).to("meta")
    rows = []
    for k in levels:
        cell = [int(g) for g in shapes[k]]
        n_cells = max(1, round(batch_size / math.prod(cell)))
        rows.append({"level": k, "cell": cell, "n_cells": n_cells,
                     "macs_per_sample": block_step_macs(model, k, n_cells, meta)})
    return rows


def choose_level(costs: list[dict], block_cost: float = 1.25,
                 block_cells: int | None = 256) -> dict:
    """The finest level of ``costs`` (:func:`level_costs`) whose MACs per sample are at most
    ``block_cost`` times the cheapest level's; if it has fewer than ``block_cells`` cells per
    step, the coarsest finer level with that many (else the finest) among those within
    ``SPREAD_COST_LIMIT`` times the cheapest (module docstring). ``block_cells`` None: cost
    alone. The returned row says which rule decided (``chosen_for``: cost or spread)."""
    cheapest = min(c["macs_per_sample"] for c in costs)
    chosen = max((c for c in costs if c["macs_per_sample"] <= block_cost * cheapest),
                 key=lambda c: c["level"])
    if block_cells is None or chosen["n_cells"] >= block_cells:
        return {**chosen, "chosen_for": "cost"}
    finer = sorted((c for c in costs if c["level"] > chosen["level"]
                    and c["macs_per_sample"] <= SPREAD_COST_LIMIT * cheapest),
                   key=lambda c: c["level"])
    if not finer:
        return {**chosen, "chosen_for": "cost"}
    spread = next((c for c in finer if c["n_cells"] >= block_cells), finer[-1])
    return {**spread, "chosen_for": "spread"}


def _cost_line(costs: list[dict], chosen: dict, block_cost: float,
               block_cells: int | None) -> str:
    cheapest = min(c["macs_per_sample"] for c in costs)
    parts = [f"level {c['level']} ({c['n_cells']:,} x {'x'.join(map(str, c['cell']))}): "
             f"{c['macs_per_sample']:,.0f} ({c['macs_per_sample'] / cheapest:.2f}x)"
             for c in costs]
    why = (f"the finest level within data.block_cost={block_cost:g}x of the cheapest"
           if chosen["chosen_for"] == "cost" else
           f"finer than the cheapest levels for at least data.block_cells={block_cells} "
           f"cells per step, within {SPREAD_COST_LIMIT:g}x of the cheapest")
    return (f"block sampling, MACs per sample of a step by cell level: {'; '.join(parts)} -> "
            f"{chosen['n_cells']:,} random level-{chosen['level']} cells per step with "
            f"activation sharing, {why} (data.block=[...] chooses the cells)")


def resolve_sampling(dm, spec: SignalSpec) -> None:
    """``sampling: auto``: the whole signal each step when it has at most 2^20 samples,
    else blocks of about 2^18 samples (``data.batch_size`` when given)."""
    if getattr(dm, "sampling", None) != "auto":
        return
    if spec.n_samples <= AUTO_FULL_LIMIT:
        dm.sampling = "full"
        return
    dm.sampling = "blocks"
    dm.batch_size = dm.batch_size or AUTO_BATCH
    print(f"inrbench: the signal {tuple(spec.shape)} has {spec.n_samples:,} samples, too many "
          f"for one step: block sampling, {dm.batch_size:,} samples per step "
          f"(data.sampling=full to override)", file=sys.stderr)


def configure_blocks(dm, model, spec: SignalSpec) -> dict | None:
    """Choose the cells of a block-sampled step and tell the data module; returns what was
    chosen (for the run's records: with the cost of every candidate level when the cost
    rule chose), or None when the data is not block-sampled."""
    resolve_sampling(dm, spec)
    if getattr(dm, "sampling", None) != "blocks":
        return None
    shape, batch = list(spec.shape), int(dm.batch_size)
    shapes = model.cell_shapes() if hasattr(model, "cell_shapes") else None
    name = type(model).__name__
    block_cells = getattr(dm, "block_cells", 256)
    chosen_by: dict = {}
    if dm.block is not None:
        cell = [int(g) for g in dm.block]
        if len(cell) != len(shape) or any(n % g for n, g in zip(shape, cell)):
            raise ConfigError(f"data.block={cell} must give one cell size per axis that divides "
                              f"the signal {tuple(shape)}")
        level = next((k for k, g in (shapes or {}).items() if list(g) == cell), None)
        n_cells = max(1, round(batch / math.prod(cell)))
        chosen_by = {"chosen_by": "data.block"}
        if shapes is not None and level is None:
            print(f"inrbench: data.block={cell} is not a cell of any level of this {name} "
                  f"({sorted(map(tuple, shapes.values()))}): it trains per-sample on the "
                  f"drawn samples, at SIREN's cost", file=sys.stderr)
    elif shapes:
        block_cost = float(getattr(dm, "block_cost", 1.25))
        costs = level_costs(model, batch)
        chosen = choose_level(costs, block_cost, block_cells)
        level, cell, n_cells = chosen["level"], chosen["cell"], chosen["n_cells"]
        note(_cost_line(costs, chosen, block_cost, block_cells))
        chosen_by = {"chosen_by": "cost", "chosen_for": chosen["chosen_for"],
                     "block_cost": block_cost, "block_cells": block_cells, "levels": costs}
    else:
        level = None
        _, cell, n_cells = choose_cells(_default_cell_shapes(shape), batch,
                                        min_cells=block_cells or 16)
        chosen_by = {"chosen_by": "ASMR's default bases", "block_cells": block_cells}
    if shapes is None:
        print(f"inrbench: {name} has no activation sharing: it trains per-sample on the "
              f"samples of the drawn cells ({n_cells} cells of {cell} per step)",
              file=sys.stderr)
    elif level is not None and chosen_by["chosen_by"] != "cost":  # the cost line said it
        print(f"inrbench: block sampling: {n_cells} random level-{level} cells of "
              f"{'x'.join(map(str, cell))} samples per step "
              f"({n_cells * math.prod(cell):,} samples), with activation sharing",
              file=sys.stderr)
    dm.configure_blocks(cell, n_cells, level)
    return {"cell": cell, "n_cells": n_cells, "level": level,
            "samples_per_step": n_cells * math.prod(cell), "shared": level is not None,
            **chosen_by}


def stream_evaluate(model, signal, chunk: int = 2**18, out=None, data_range: float = 1.0) -> dict:
    """PSNR of a cell-sharing model (ASMR) over ``signal`` ((*shape, C) tensor or mapped file),
    rendered a group of cells at a time so memory follows ``chunk`` samples, not the signal.

    The cells are those of the coarsest level whose cells hold at most ``chunk`` samples,
    rendered by ``forward_cells`` (equal to ``render``); the squared error is summed in float64
    (PSNR = 10 log10(R^2 / MSE), predictions clipped to [0, R] as :func:`inrbench.metrics.psnr`
    clips them). ``out``: a ``.npy`` path the prediction is written to as uint8, chunk by
    chunk (mapped, written and unmapped per group)."""
    shape, channels = tuple(signal.shape[:-1]), int(signal.shape[-1])
    shapes = model.cell_shapes()
    level = next((k for k in sorted(shapes) if math.prod(shapes[k]) <= chunk), max(shapes))
    cell = shapes[level]
    grid = RandomBlocks(torch.zeros(1, channels), shape, cell, 1, 1, level=level)
    per_group = max(1, chunk // math.prod(cell))
    if out is not None:
        np.lib.format.open_memmap(out, mode="w+", dtype=np.uint8,
                                  shape=(*shape, channels))._mmap.close()
    sse, device = 0.0, next(model.parameters()).device
    with torch.no_grad():
        for start in range(0, grid.n_total, per_group):
            flat_cells = torch.arange(start, min(start + per_group, grid.n_total))
            cells = torch.stack(torch.unravel_index(flat_cells, grid.grid), dim=-1)
            flat = grid.flat_indices(cells)
            pred = model.forward_cells(cells.to(device), level).reshape(-1, channels).cpu()
            pred = pred.clamp(0, data_range)
            sse += float(((pred.double() - take(signal, flat).double()) ** 2).sum())
            if out is not None:
                mm = np.load(out, mmap_mode="r+")
                mm.reshape(-1, channels)[flat.numpy()] = (
                    (pred / data_range * 255).round().to(torch.uint8).numpy())
                mm.flush()
                mm._mmap.close()
    mse = sse / (math.prod(shape) * channels)
    return {"psnr": float(psnr_from_mse(mse, data_range)), "mse": mse, "level": level}
