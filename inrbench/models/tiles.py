"""Position-dependent weights without a Python loop over tiles (KiloNeRF, LoE).

A ``TiledLinear`` holds one weight matrix per tile, ``(T, in, out)``. Samples are run through
it in one batched matrix product (``torch.bmm`` over tiles) after grouping them by tile:

* ``Grouping`` (any batch of samples): a stable sort by tile id, padding each tile's samples
  to the largest tile's count, ``bmm``, and the inverse permutation. Padding rows are zeros
  and are dropped; the only cost is ``max_count / mean_count`` extra rows.
* ``AxisGrouping`` (a whole grid, ``render``): tiles are products of per-axis labels, so
  grouping is a gather per axis and a permute, planned from the axis sizes alone: no sort of
  the samples, no padding when the tiles split the axes evenly, and it runs on meta tensors,
  so the profiler can count it at any size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from inrbench.errors import ConfigError

INITS = ("official", "fan_in")


class TiledLinear(nn.Module):
    """``T`` independent ``in -> out`` linear maps; ``bias``: "tile" (one per tile), "shared"
    (one for all tiles) or "none"; biases start at zero (as in the ASMR repository).

    ``init`` chooses the weights' Kaiming-uniform bound U(-b, b):

    * ``"official"`` (default; what the ASMR paper's KiloNeRF/LoE figures came from): the ASMR
      repository's ``AdaptiveLinearWithChannel`` calls ``torch.nn.init.kaiming_uniform_`` with
      its defaults (a=0, fan_in, leaky_relu) on the 3-D ``(T, in, out)`` weight. PyTorch takes
      a 3-D tensor's fan-in as ``size(1) * prod(size(2:)) = in * out``, so
      ``b = sqrt(2) * sqrt(3 / (in * out))``: sqrt(out) times smaller than a per-tile Kaiming
      init (4x for 16 units).
    * ``"fan_in"``: Kaiming-uniform with each tile's true fan-in ``in`` and the gain of the
      given leaky-ReLU slope, ``b = sqrt(2 / (1 + slope^2)) * sqrt(3 / in)`` (He et al. 2015,
      as ``nn.Linear``-style layers would be initialised one tile at a time).
    """

    def __init__(self, n_tiles: int, in_features: int, out_features: int, bias: str = "tile",
                 negative_slope: float = 0.0, init: str = "official"):
        super().__init__()
        if init not in INITS:
            raise ConfigError(f"model.init={init!r} is not one of {list(INITS)}; use 'official' "
                              f"(the ASMR repository's init, reproduces the paper) or 'fan_in'")
        self.n_tiles, self.in_features, self.out_features = n_tiles, in_features, out_features
        self.init = init
        self.weight = nn.Parameter(torch.empty(n_tiles, in_features, out_features))
        if init == "official":
            nn.init.kaiming_uniform_(self.weight)  # fan-in in*out of the 3-D tensor, on purpose
        else:
            gain = math.sqrt(2.0 / (1.0 + negative_slope ** 2))
            bound = gain * math.sqrt(3.0 / in_features)
            with torch.no_grad():
                self.weight.uniform_(-bound, bound)
        shape = {"tile": (n_tiles, 1, out_features), "shared": (out_features,), "none": None}[bias]
        self.bias = nn.Parameter(torch.zeros(shape)) if shape is not None else None
        self.bias_kind = bias

    @staticmethod
    def bound(in_features: int, out_features: int, init: str = "official",
              negative_slope: float = 0.0) -> float:
        """The half-width b of the uniform weight init (see the class docstring)."""
        if init == "official":
            return math.sqrt(2.0) * math.sqrt(3.0 / (in_features * out_features))
        return math.sqrt(2.0 / (1.0 + negative_slope ** 2)) * math.sqrt(3.0 / in_features)

    def forward_grouped(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(T, M, in)``, the samples of tile ``t`` in row ``t`` -> ``(T, M, out)``."""
        y = torch.bmm(x, self.weight)
        return y if self.bias is None else y + self.bias


class Grouping:
    """Samples grouped by tile id: ``pad`` to ``(T, width, f)``, ``unpad`` back to ``(N, f)``."""

    def __init__(self, tile: torch.Tensor, n_tiles: int):
        n = tile.shape[0]
        self.order = torch.argsort(tile, stable=True)
        self.tile_sorted = tile[self.order]
        counts = torch.bincount(tile, minlength=n_tiles)
        starts = torch.cumsum(counts, 0) - counts
        self.slot = torch.arange(n, device=tile.device) - starts[self.tile_sorted]
        self.n, self.n_tiles = n, n_tiles
        self.width = int(counts.max()) if n > 0 else 0

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(self.n_tiles, self.width, x.shape[-1])
        return out.index_put((self.tile_sorted, self.slot), x[self.order])

    def unpad(self, y: torch.Tensor) -> torch.Tensor:
        rows = y[self.tile_sorted, self.slot]
        return rows.new_empty(self.n, y.shape[-1]).index_put((self.order,), rows)


class AxisGrouping:
    """A whole grid grouped by separable per-axis labels, with no sort and no data access.

    Sample ``(i_0, ..., i_{d-1})`` belongs to tile ``(g_0(i_0), ..., g_{d-1}(i_{d-1}))``
    (row-major flat index). Axis k's samples are listed per label and padded to the largest
    label's count ``W_k`` (no padding when labels split the axis evenly), so ``pad`` gives
    ``(prod G_k, prod W_k, f)`` for one ``bmm`` and ``unpad`` puts the rows back. The index
    tensors depend on the labels only, so this also runs on meta tensors (the profiler).
    """

    def __init__(self, labels: Sequence[torch.Tensor], n_groups: Sequence[int], device=None):
        self.n_groups = [int(g) for g in n_groups]
        self.gather, self.position = [], []
        for lab, g in zip(labels, self.n_groups):
            lab = lab.to("cpu", torch.long)
            counts = torch.bincount(lab, minlength=g)
            width = max(int(counts.max()), 1)
            order = torch.argsort(lab, stable=True)
            slot = torch.arange(lab.numel()) - (torch.cumsum(counts, 0) - counts)[lab[order]]
            gather = torch.zeros(g, width, dtype=torch.long)  # padding rows repeat sample 0
            gather[lab[order], slot] = order
            position = torch.empty_like(lab)
            position[order] = lab[order] * width + slot
            self.gather.append(gather.to(device))
            self.position.append(position.to(device))
        self.widths = [gt.shape[1] for gt in self.gather]

    def _broadcast(self, index: torch.Tensor, axis: int, per_axis: int) -> torch.Tensor:
        d = len(self.gather)
        shape = [1] * (per_axis * d)
        shape[per_axis * axis: per_axis * axis + per_axis] = index.shape
        return index.reshape(shape)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``(*shape, f)`` -> ``(prod G, prod W, f)``."""
        d = len(self.gather)
        xp = x[tuple(self._broadcast(g, k, 2) for k, g in enumerate(self.gather))]
        perm = [2 * k for k in range(d)] + [2 * k + 1 for k in range(d)] + [2 * d]
        return xp.permute(*perm).reshape(math.prod(self.n_groups), math.prod(self.widths),
                                         x.shape[-1])

    def unpad(self, y: torch.Tensor) -> torch.Tensor:
        """``(prod G, prod W, f)`` -> ``(*shape, f)``."""
        d = len(self.gather)
        y = y.reshape(*self.n_groups, *self.widths, y.shape[-1])
        perm = [p for k in range(d) for p in (k, d + k)] + [2 * d]
        y = y.permute(*perm).reshape(*[g * w for g, w in zip(self.n_groups, self.widths)],
                                     y.shape[-1])
        return y[tuple(self._broadcast(p, k, 1) for k, p in enumerate(self.position))]


def flat_tile_id(digits: torch.Tensor, tiles: Sequence[int]) -> torch.Tensor:
    """Row-major flat index of per-axis tile digits ``(N, d)`` in a grid of ``tiles``."""
    tid = torch.zeros_like(digits[..., 0])
    for k, t in enumerate(tiles):
        tid = tid * t + digits[..., k]
    return tid
