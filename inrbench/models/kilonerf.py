"""KiloNeRF: a grid of tiny MLPs (Reiser, Peng, Liao, Geiger, ICCV 2021), as the ASMR paper
benchmarks it on signals (ASMR paper sec. 4.1, 4.3; appendices A, B, D-G).

The signal's domain is cut into a regular grid of ``prod(grid)`` cells; cell ``c`` owns an
independent tiny MLP f_c (KiloNeRF's "thousands of tiny MLPs", one per grid cell):

    y(x) = f_{c(x)}(gamma(x)),   f_c = W_L^c o phi o W_{L-1}^c o ... o phi o W_1^c   (affine W)

with gamma NeRF's positional encoding of the global coordinate x in [-1, 1] (``n_freqs``
octaves, raw x kept; 10 in the ASMR paper's appendix B) and phi a ReLU (LeakyReLU(0.2) by
default, as the ASMR repository's KiloNeRF). ``n_layers`` counts linear layers, as the ASMR
paper does: "KiloNeRF (3)" is gamma -> h -> h -> out. A sample's cell along an axis of size N
with ``G`` cells is ``floor(i G / N)`` for its sample index ``i`` (``coords_to_index``), so cells
are equal blocks whenever G divides N. All cells run in one ``bmm`` (``tiles.py``): samples
are grouped by cell (sort + pad for any batch; a per-axis gather planned from the shape in
``render``).

Weights: ``init="official"`` (default) is the ASMR repository's ``AdaptiveLinearWithChannel``
init, ``kaiming_uniform_`` on the ``(cells, in, out)`` tensor, whose fan-in is ``in * out``
(weights sqrt(out) times smaller than per-cell Kaiming); the paper's figures came from it.
``init="fan_in"`` uses each cell's true fan-in ``in`` (see ``tiles.TiledLinear``). Biases 0.

Counting (``macs_per_sample``), checked against every KiloNeRF row of the ASMR paper. Params
are always all weights and per-cell biases. The paper's MAC figures follow three conventions:

* ``macs_bias=True, macs_pe=True`` (default): weights + biases of one cell's MLP on the encoded
  input. Table 2 (0.98K), Table 8 (0.425K, 0.977K), Table 9 (0.98/1.25/1.52/1.79K).
* ``macs_bias=False``: weights only. Table 4 audio (8.16K), Table 10 cat video (6.21K, with
  the official config's grid [3, 8, 8]: 192 cells give the printed 1.223M params; the text's
  [16, 16] cannot be a 3-D grid), Table 7 (2.4-5.5K; its params need an 8x8 grid, not the
  printed "[16]", which would give 631K for L=3).
* ``macs_pe=False``: the first layer counted on the raw coordinates, as the official
  ``my_profiler.py`` calls ``mlp_profiler(n_layers, dim_in, ...)``. Table 5 (0.004M) and
  Table 11 (0.025M, with the 8 layers of appendix G; the script's 6 layers give 0.017M).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from inrbench.errors import ConfigError
from inrbench.models.base import INR, coords_to_index, make_grid, mlp_macs
from inrbench.models.checks import check_choice, check_int, per_axis, signal_shape_of
from inrbench.models.encoding import PositionalEncoding
from inrbench.models.registry import register_model
from inrbench.models.tiles import INITS, AxisGrouping, Grouping, TiledLinear, flat_tile_id

ACTIVATIONS = {"relu": 0.0, "leaky_relu": 0.2}


class KiloNeRF(INR):
    """``prod(grid)`` independent MLPs of ``n_layers`` linear layers, width ``hidden_dim``."""

    #: what ``inrbench bench --ladder`` varies to match a budget: the tiles per axis for
    #: parameters (KiloNeRF's size grows by cells at a cell's fixed cost per sample), the
    #: width for MACs and FLOPs per sample (which the tile count leaves unchanged)
    size_knob = {"params": "grid", "macs": "hidden_dim", "flops": "hidden_dim"}
    size_knob_range = {"grid": (1, 64), "hidden_dim": (1, 1024)}

    def __init__(self, in_features: int = 2, out_features: int = 1,
                 signal_shape: Sequence[int] = (512, 512), grid=(16, 16), hidden_dim: int = 16,
                 n_layers: int = 3, n_freqs: int = 10, activation: str = "leaky_relu",
                 macs_bias: bool = True, macs_pe: bool = True, init: str = "official"):
        super().__init__()
        in_features = check_int("in_features", in_features)
        out_features = check_int("out_features", out_features)
        self.signal_shape = signal_shape_of(signal_shape, in_features)
        self.grid = per_axis("grid", grid, in_features)
        for axis, (g, n) in enumerate(zip(self.grid, self.signal_shape)):
            if g > n:
                raise ConfigError(f"model.grid has {g} cells on axis {axis} but the signal has "
                                  f"only {n} samples there; use at most {n}")
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.n_layers = check_int("n_layers", n_layers, minimum=2)
        self.activation = check_choice("activation", activation, list(ACTIVATIONS))
        self.macs_bias, self.macs_pe = bool(macs_bias), bool(macs_pe)
        self.init = check_choice("init", init, list(INITS))
        self.in_features, self.out_features = in_features, out_features
        self.n_cells = math.prod(self.grid)

        self.encoding = PositionalEncoding(in_features, n_freqs)
        slope = ACTIVATIONS[activation]
        dims = [self.encoding.out_features] + [hidden_dim] * (n_layers - 1) + [out_features]
        self.layers = nn.ModuleList(
            TiledLinear(self.n_cells, a, b, bias="tile", negative_slope=slope, init=init)
            for a, b in zip(dims[:-1], dims[1:]))
        self.act = nn.LeakyReLU(slope) if slope else nn.ReLU()
        self.register_buffer("_sizes", torch.tensor(self.signal_shape), persistent=False)
        self.register_buffer("_grid", torch.tensor(self.grid), persistent=False)

    def _mlps(self, x: torch.Tensor) -> torch.Tensor:
        """Every cell's MLP on its own rows: ``(T, M, enc)`` -> ``(T, M, out)``."""
        for i, layer in enumerate(self.layers):
            x = layer.forward_grouped(x)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x

    def cell_of(self, coords: torch.Tensor) -> torch.Tensor:
        """Flat cell index of each coordinate ``(N, d)`` (row-major over ``grid``)."""
        idx = coords_to_index(coords, self.signal_shape)
        return flat_tile_id(idx * self._grid // self._sizes, self.grid)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        lead = coords.shape[:-1]
        x = coords.reshape(-1, self.in_features)
        groups = Grouping(self.cell_of(x), self.n_cells)
        y = groups.unpad(self._mlps(groups.pad(self.encoding(x))))
        return y.reshape(*lead, self.out_features)

    def axis_index(self, shape: Sequence[int]) -> list[torch.Tensor]:
        """Per axis of a grid of ``shape``: the signal sample index each position maps to (the
        same float arithmetic as ``coords_to_index`` in ``forward``)."""
        return [coords_to_index(make_grid([n]), [size])[:, 0]
                for n, size in zip(shape, self.signal_shape)]

    def render(self, shape: Sequence[int] | None = None, chunk: int | None = None) -> torch.Tensor:
        """Full grid with samples grouped by cell per axis (``AxisGrouping``), no sort."""
        shape = list(self.signal_shape if shape is None else shape)
        if len(shape) != self.in_features or (chunk is not None and math.prod(shape) > chunk):
            return super().render(shape, chunk)
        device = self.layers[0].weight.device
        labels = [i * g // n for i, g, n in zip(self.axis_index(shape), self.grid,
                                                 self.signal_shape)]
        groups = AxisGrouping(labels, self.grid, device)
        x = self.encoding(make_grid(shape, device=device))
        return groups.unpad(self._mlps(groups.pad(x)))

    def macs_per_sample(self, include_bias: bool | None = None) -> float:
        """One cell's MLP (see the module docstring for the three conventions)."""
        bias = self.macs_bias if include_bias is None else include_bias
        first = self.encoding.out_features if self.macs_pe else self.in_features
        dims = [first] + [self.hidden_dim] * (self.n_layers - 1) + [self.out_features]
        return float(mlp_macs(dims, bias))


register_model(KiloNeRF, name="kilonerf")
