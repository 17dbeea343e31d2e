"""DINER: disorder-invariant implicit neural representation (Xie, Zhu, Liu, Zhang, Zhou, Cao,
Ma, CVPR 2023), benchmarked as in "ANI: extreme compression of adaptive neural images"
(Hoshikawa et al., Table 1: Kodak, SIREN-style MLP of 4 layers x 128 neurons).

DINER replaces the coordinate input by a learned hash table with one entry per sample of the
signal: sample ``i`` (its index in the signal, row-major) is mapped to a
learned low-dimensional coordinate ``H[i]`` in R^m, and an MLP decodes it,

    y(x_i) = f_theta(H[i]),   f_theta = SIREN (DINER's main variant)

The table is DINER's "hash": a learned, injective re-arrangement of the samples, which makes
the fit invariant to the order of the samples. Initialisation follows DINER's
reference code, ``H ~ 1e-4 U(-1, 1)`` (``table_init: uniform``); ``table_init: coords`` starts
from the original coordinates instead. ``forward`` looks up the nearest sample of each
coordinate (``coords_to_index``), so DINER only represents the signal's own grid.

``n_layers`` counts the MLP's linear layers as SIREN does (DINER's image config, 2 hidden
layers of 64, is ``n_layers=4, hidden_dim=64``; ANI's "4 layers x 128" is 4 hidden layers,
``n_layers=6, hidden_dim=128``). Counting: params are the table (N m) plus the MLP; MACs per
sample are the MLP's weights (``macs_bias=False``), a table lookup being no MAC. No ASMR paper
row lists DINER; ANI's 545.55K for Kodak is not reproduced (its table alone, 393,216 x 2,
is 786K).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from inrbench.errors import ConfigError
from inrbench.models.base import INR, coords_to_index, make_grid
from inrbench.models.checks import check_choice, check_int, signal_shape_of
from inrbench.models.registry import register_model
from inrbench.models.siren import SIREN


class DINER(INR):
    """A per-sample table of ``table_dim``-dim coordinates decoded by a SIREN."""

    #: the constructor argument ``inrbench bench --ladder`` varies to match a budget, and
    #: the integer range it searches
    size_knob = "hidden_dim"
    size_knob_range = (1, 4096)

    def __init__(self, in_features: int = 2, out_features: int = 1,
                 signal_shape: Sequence[int] = (512, 512), table_dim: int | None = None,
                 hidden_dim: int = 64, n_layers: int = 4, omega0: float = 30.0,
                 first_omega0: float = 30.0, table_init: str = "uniform",
                 macs_bias: bool = False):
        super().__init__()
        in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.signal_shape = signal_shape_of(signal_shape, in_features)
        self.table_dim = in_features if table_dim is None else check_int("table_dim", table_dim)
        self.table_init = check_choice("table_init", table_init, ["uniform", "coords"])
        if table_init == "coords" and self.table_dim != in_features:
            raise ConfigError(f"model.table_init=coords needs model.table_dim == in_features "
                              f"({in_features}), got {self.table_dim}; use table_init=uniform")
        self.in_features, self.macs_bias = in_features, bool(macs_bias)
        # the SIREN checks its own arguments before the (large) table is allocated
        self.mlp = SIREN(self.table_dim, out_features, hidden_dim, n_layers, omega0, first_omega0)
        n = math.prod(self.signal_shape)
        if table_init == "uniform":
            table = 1e-4 * (2.0 * torch.rand(n, self.table_dim) - 1.0)
        else:
            table = make_grid(self.signal_shape).reshape(n, in_features)
        self.table = nn.Parameter(table)
        strides = [math.prod(self.signal_shape[k + 1:]) for k in range(in_features)]
        self.register_buffer("_strides", torch.tensor(strides), persistent=False)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        idx = (coords_to_index(coords, self.signal_shape) * self._strides).sum(-1)
        return self.mlp(self.table[idx])

    def render(self, shape: Sequence[int] | None = None, chunk: int | None = None) -> torch.Tensor:
        """The table in signal order through the MLP (no index arithmetic)."""
        if (shape is not None and list(shape) != self.signal_shape) or \
                (chunk is not None and math.prod(self.signal_shape) > chunk):
            return super().render(shape or self.signal_shape, chunk)
        return self.mlp(self.table).reshape(*self.signal_shape, self.out_features)

    def macs_per_sample(self, include_bias: bool | None = None) -> float:
        """The MLP's weights (``include_bias`` adds its biases); lookups are free."""
        return float(self.mlp.macs_per_sample(
            include_bias=self.macs_bias if include_bias is None else include_bias))


register_model(DINER, name="diner")
