"""Block sampling (``data.sampling: blocks``): which cells a step draws, chosen per model.

ASMR trains on whole subtrees of one level of its decomposition (sec. 3.1, 3.3): a level-k
cell is an aligned block of ``G_k = N / C_k`` samples per axis, and its layers k..L-1 share
activations exactly as a full render does, so a step costs ASMR's MACs, not SIREN's. The
level is the coarsest whose cells put at least 16 scattered cells in a step of about
``data.batch_size`` samples (:func:`inrbench.data.base.choose_cells`). Models without
activation sharing train on the same samples as coordinates: with ``data.block`` given they
draw exactly the cells ASMR draws; otherwise the cells that ASMR's default bases would give.
"""

from __future__ import annotations

import math
import sys

from inrbench.bases import default_bases
from inrbench.data.base import SignalSpec, choose_cells
from inrbench.errors import ConfigError

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
    chosen (for the run's records), or None when the data is not block-sampled."""
    resolve_sampling(dm, spec)
    if getattr(dm, "sampling", None) != "blocks":
        return None
    shape, batch = list(spec.shape), int(dm.batch_size)
    shapes = model.cell_shapes() if hasattr(model, "cell_shapes") else None
    name = type(model).__name__
    if dm.block is not None:
        cell = [int(g) for g in dm.block]
        if len(cell) != len(shape) or any(n % g for n, g in zip(shape, cell)):
            raise ConfigError(f"data.block={cell} must give one cell size per axis that divides "
                              f"the signal {tuple(shape)}")
        level = next((k for k, g in (shapes or {}).items() if list(g) == cell), None)
        n_cells = max(1, round(batch / math.prod(cell)))
        if shapes is not None and level is None:
            print(f"inrbench: data.block={cell} is not a cell of any level of this {name} "
                  f"({sorted(map(tuple, shapes.values()))}): it trains per-sample on the "
                  f"drawn samples, at SIREN's cost", file=sys.stderr)
    elif shapes:
        level, cell, n_cells = choose_cells(shapes, batch)
    else:
        level = None
        _, cell, n_cells = choose_cells(_default_cell_shapes(shape), batch)
    if shapes is None:
        print(f"inrbench: {name} has no activation sharing: it trains per-sample on the "
              f"samples of the drawn cells ({n_cells} cells of {cell} per step)",
              file=sys.stderr)
    elif level is not None:
        print(f"inrbench: block sampling: {n_cells} random level-{level} cells of "
              f"{'x'.join(map(str, cell))} samples per step "
              f"({n_cells * math.prod(cell):,} samples), with activation sharing",
              file=sys.stderr)
    dm.configure_blocks(cell, n_cells, level)
    return {"cell": cell, "n_cells": n_cells, "level": level,
            "samples_per_step": n_cells * math.prod(cell), "shared": level is not None}
