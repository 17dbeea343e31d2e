"""ASMR: Activation-Sharing Multi-Resolution coordinate networks (Li, Luo, Xu, Wong, ICLR 2024).

Multi-resolution coordinates (sec. 3.1): each axis index x is decomposed into level
coordinates x_l = floor(x / G_l) mod B_l, normalised to [0, 1] by B_l - 1 (0 when B_l = 1).
Hierarchical modulation (sec. 3.2, eq. 1) on a SIREN backbone, one level per linear layer:

    z_0 = x_0,   z_i = sin(omega_i (W_i z_{i-1} + b_i + M_i(x_i))),   y = W_L z_{L-1} + b_L

with bias-free linear modulators ``M_i(c) = omega0 W_Mi c`` (or, ``modulator="nonlinear"``, a
3-layer 32-unit SIREN per level, as the official code uses for megapixel images).
Activation sharing (sec. 3.3, eq. 2): layer i only depends on levels 0..i, so it runs once
per cell of level i and is broadcast; ``render`` does this, and folds the last sine and the
last linear layer into one matrix product via sin(a + m) = sin a cos m + cos a sin m, so no
full-resolution hidden tensor is ever built. ``forward`` is the per-sample path (any
coordinates, any batch) and is the ground truth the shared path is tested against.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import torch
from torch import nn

from inrbench.bases import default_bases, validate_bases
from inrbench.errors import ConfigError
from inrbench.models.asmr_render import render_no_grad
from inrbench.models.base import INR, coords_to_index, mlp_macs
from inrbench.models.checks import check_int, check_positive, check_sizes, signal_shape_of
from inrbench.models.registry import register_model, register_variant
from inrbench.models.siren import SIREN


class LinearModulator(nn.Module):
    """``M(c) = omega0 W c``: a bias-free projection of level coordinates (sec. 3.2)."""

    def __init__(self, in_features: int, hidden_dim: int, omega0: float):
        super().__init__()
        self.omega0 = omega0
        # PyTorch's default init is the paper's U(-1/sqrt(d0), 1/sqrt(d0))
        self.linear = nn.Linear(in_features, hidden_dim, bias=False)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.omega0 * self.linear(c)

    def macs(self, include_bias: bool = True) -> int:
        return self.linear.in_features * self.linear.out_features  # bias-free


class SirenModulator(nn.Module):
    """Nonlinear modulator: a small SIREN from level coordinates to a bias (official
    'nonlinear')."""

    def __init__(self, in_features: int, hidden_dim: int, omega0: float, width: int = 32,
                 layers: int = 3):
        super().__init__()
        self.net = SIREN(in_features, hidden_dim, hidden_dim=width, n_layers=layers,
                         omega0=omega0, first_omega0=omega0)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        return self.net(c)

    def macs(self, include_bias: bool = True) -> int:
        return self.net.macs_per_sample(include_bias=include_bias)


def _interleave_shape(outer: Sequence[int], inner: Sequence[int]) -> list[int]:
    return [n for pair in zip(outer, inner) for n in pair]


class ASMR(INR):
    """ASMR with ``n_layers`` linear layers over a signal of ``signal_shape``.

    ``bases[axis][level]`` are the partition bases (the official "dimensions"); when ``None``
    a balanced factorisation with the large bases last is chosen (appendix K) and printed.
    """

    #: the constructor argument ``inrbench bench --ladder`` varies to match a budget, and
    #: the integer range it searches
    size_knob = "hidden_dim"
    size_knob_range = (1, 4096)

    def __init__(self, in_features: int = 2, out_features: int = 1,
                 signal_shape: Sequence[int] = (512, 512), bases=None, hidden_dim: int = 256,
                 n_layers: int = 4, omega0: float = 30.0, first_omega0: float = 30.0,
                 modulator: str = "linear", modulator_width: int = 32,
                 modulator_layers: int = 3):
        super().__init__()
        check_sizes(in_features, out_features, hidden_dim, n_layers)
        check_positive(omega0=omega0, first_omega0=first_omega0)
        check_int("modulator_width", modulator_width)
        check_int("modulator_layers", modulator_layers, minimum=2)
        signal_shape = signal_shape_of(signal_shape, in_features)
        if bases is None:
            bases = default_bases(signal_shape, n_layers)
            print(f"inrbench: ASMR: model.bases not given; using {bases} for signal "
                  f"{tuple(signal_shape)}",
                  file=sys.stderr)
        self.bases = validate_bases(bases, signal_shape, n_layers)
        if modulator not in ("linear", "nonlinear"):
            raise ConfigError(f"model.modulator must be 'linear' or 'nonlinear', got {modulator!r}")

        self.in_features, self.out_features = in_features, out_features
        self.signal_shape, self.hidden_dim, self.n_layers = signal_shape, hidden_dim, n_layers
        self.modulator_kind = modulator
        self.siren = SIREN(in_features, out_features, hidden_dim, n_layers, omega0, first_omega0)
        if modulator == "linear":
            mods = [LinearModulator(in_features, hidden_dim, omega0) for _ in range(n_layers - 1)]
        else:
            mods = [SirenModulator(in_features, hidden_dim, omega0, modulator_width,
                                   modulator_layers) for _ in range(n_layers - 1)]
        self.modulators = nn.ModuleList(mods)

        # per level: bases B_l, cumulative bases C_l and grid sizes G_l = N / C_l, per axis
        self.level_bases = [[axis[l] for axis in self.bases] for l in range(n_layers)]
        self.level_cells = [[math.prod(axis[: l + 1]) for axis in self.bases]
                            for l in range(n_layers)]
        self.register_buffer("_grid_sizes", torch.tensor(
            [[n // c for n, c in zip(signal_shape, cells)] for cells in self.level_cells]),
            persistent=False)
        self.register_buffer("_bases", torch.tensor(self.level_bases), persistent=False)
        for l, bl in enumerate(self.level_bases):
            self.register_buffer(f"_level_grid{l}", self._level_grid(bl), persistent=False)

    @staticmethod
    def _level_grid(level_bases: Sequence[int]) -> torch.Tensor:
        """All level coordinates of one level: ``(*B_l, d)`` in [0, 1]."""
        axes = [torch.arange(b, dtype=torch.float32) / max(b - 1, 1) for b in level_bases]
        return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)

    def level_coords(self, coords: torch.Tensor) -> torch.Tensor:
        """``(..., L, d)`` normalised level coordinates of coordinates in [-1, 1] (sec. 3.1)."""
        idx = coords_to_index(coords, self.signal_shape).unsqueeze(-2)  # (..., 1, d)
        lvl = torch.div(idx, self._grid_sizes, rounding_mode="floor") % self._bases
        return lvl.to(coords.dtype) / (self._bases - 1).clamp(min=1).to(coords.dtype)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        """Per-sample forward, eq. (1): every layer runs on every coordinate."""
        levels = self.level_coords(coords)
        z = levels[..., 0, :]
        for i, layer in enumerate(self.siren.net):
            mod = self.modulators[i](levels[..., i + 1, :])
            z = torch.sin(layer.omega * (layer.linear(z) + mod))
        return self.siren.last_layer(z)

    def render(self, shape: Sequence[int] | None = None, chunk: int | None = None) -> torch.Tensor:
        """Activation-sharing full-signal forward, eq. (2): ``(*signal_shape, out_features)``.

        With ``chunk``, levels 0..k run once for the whole signal and the subtrees of the
        level-k cells (k: the first level whose cells hold at most ``chunk`` samples) run a
        group at a time, so peak memory follows ``chunk``, not the signal's size. Without
        autograd (evaluation, latency) the render is
        :func:`inrbench.models.asmr_render.render_no_grad`: the same products, fewer
        elementwise passes.
        """
        if shape is not None and list(shape) != self.signal_shape:
            return super().render(shape, chunk)
        if not torch.is_grad_enabled():
            return render_no_grad(self, chunk)
        return self.render_autograd(chunk)

    def render_autograd(self, chunk: int | None = None) -> torch.Tensor:
        """``render`` through ``_forward_blocks``, the path gradients flow through (full-signal
        training); ``render_no_grad`` is tested against it."""
        z0 = self._level_grid0.unsqueeze(0)  # one block holding the whole signal
        n_samples = math.prod(self.signal_shape)
        if chunk is None or n_samples <= chunk:
            return self._forward_blocks(z0, 0)[0]
        k = next((l for l in range(self.n_layers - 1)
                  if n_samples // math.prod(self.level_cells[l]) <= chunk), self.n_layers - 2)
        z = self._forward_blocks(z0, 0, stop=k)[0]  # activations entering layer k: (*C_k, K)
        d, cells = self.in_features, self.level_cells[k]
        sub = [n // c for n, c in zip(self.signal_shape, cells)]  # samples per level-k cell
        blocks = z.reshape(-1, *[1] * d, z.shape[-1])
        per_group = max(1, chunk // math.prod(sub))
        y = torch.cat([self._forward_blocks(g, k) for g in blocks.split(per_group)])
        y = y.reshape(*cells, *sub, self.out_features)
        perm = [p for j in range(d) for p in (j, d + j)] + [2 * d]
        return y.permute(*perm).reshape(*self.signal_shape, self.out_features)

    def _forward_blocks(self, z: torch.Tensor, start: int, stop: int | None = None,
                        shifts: torch.Tensor | None = None):
        """Run layers ``start..stop-1`` (to the output when ``stop`` is None) on ``n`` blocks.

        ``z``: ``(n, *c, K_in)``, the activations entering layer ``start`` on the ``c`` cells
        (per axis) of each block. Returns ``(n, *c', K)`` activations, or the output
        ``(n, *c', out_features)`` when run to the end. ``shifts`` ``(B, L-1, K)``: one set of
        shift modulations per block (meta-learning, eq. 3); ``z`` may then have one block that
        all ``B`` share, broadcast at the first layer.
        """
        d, net = self.in_features, self.siren.net
        ones = [1] * d
        for i in range(start, len(net) if stop is None else stop):
            layer, bases = net[i], self.level_bases[i + 1]
            cells = list(z.shape[1:-1])
            a = layer.linear(z)  # once per level-i cell: (n, *c, K)
            if shifts is not None:  # phi_i is constant over a cell: added to the shared a
                a = a + shifts[:, i].reshape(shifts.shape[0], *ones, -1)
            a = layer.omega * a
            n = a.shape[0]
            # once per level-(i+1) grid point: (*B_{i+1}, K)
            m = layer.omega * self.modulators[i](getattr(self, f"_level_grid{i + 1}"))
            if i < len(net) - 1:
                # nearest upsampling of a by B_{i+1} and tiling of m by C_i, as one broadcast add
                pre = (a.reshape(n, *_interleave_shape(cells, ones), -1)
                       + m.reshape(1, *_interleave_shape(ones, bases), -1))
                z = torch.sin(pre.reshape(n, *[c * b for c, b in zip(cells, bases)], -1))
            else:
                y = self._fused_last(a.reshape(-1, a.shape[-1]), m.reshape(-1, m.shape[-1]))
                y = y.reshape(n, *cells, *bases, self.out_features)
                perm = [0] + [p for j in range(d) for p in (1 + j, 1 + d + j)] + [1 + 2 * d]
                return y.permute(*perm).reshape(n, *[c * b for c, b in zip(cells, bases)],
                                                self.out_features)
        return z

    def _fused_last(self, a: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """y[p, q] = W sin(a_p + m_q) + b = [sin a_p, cos a_p] . [W cos m_q, W sin m_q] + b,
        for P coarse cells and Q last-level grid points: ``(P, Q * out_features)``."""
        last = self.siren.last_layer
        left = torch.cat([torch.sin(a), torch.cos(a)], dim=-1)  # (P, 2K)
        right = torch.cat([torch.cos(m), torch.sin(m)], dim=-1)  # (Q, 2K)
        w2 = torch.cat([last.weight, last.weight], dim=-1)  # (O, 2K)
        right = (right.unsqueeze(1) * w2).reshape(-1, w2.shape[-1])  # (Q*O, 2K)
        return left @ right.T + last.bias.repeat(right.shape[0] // self.out_features)

    # -- block sampling: training on random cells with activation sharing ----------------
    def cell_shapes(self) -> dict[int, list[int]]:
        """Samples per axis of one level-k cell, ``G_k = N / C_k``, for every level k whose
        cells ``forward_cells`` can train on (0..L-2: the last level's cells are samples)."""
        return {k: [n // c for n, c in zip(self.signal_shape, self.level_cells[k])]
                for k in range(self.n_layers - 1)}

    def cell_level_coords(self, cells: torch.Tensor, level: int) -> torch.Tensor:
        """``(n, level + 1, d)`` normalised level coordinates x_0..x_k of level-k cells given
        by their per-axis cell index ``cells`` ``(n, d)`` in ``[0, C_k)`` (sec. 3.1)."""
        lvls = []
        rest = cells.long().to(self._bases.device)
        for l in range(level, -1, -1):  # the last digit of a cell index is its level-k base
            b = self._bases[l]
            lvls.append((rest % b).to(torch.float32) / (b - 1).clamp(min=1))
            rest = torch.div(rest, b, rounding_mode="floor")
        return torch.stack(lvls[::-1], dim=-2)

    def forward_cells(self, cells: torch.Tensor, level: int) -> torch.Tensor:
        """Every sample of ``n`` level-k cells (whole subtrees), with activation sharing.

        Layers 0..k-1 run once per drawn cell (the coarse levels, only what the cells need);
        layers k..L-1 run on each cell's subtree as ``render`` runs them, through
        ``_forward_blocks`` and its fused last layer. Returns ``(n, *G_k, out_features)``,
        samples of a cell in row-major order; equal to ``forward`` on the same samples.
        """
        if level not in self.cell_shapes():
            raise ConfigError(f"ASMR trains on cells of levels 0..{self.n_layers - 2}, "
                              f"got level {level}")
        lvl = self.cell_level_coords(cells, level)
        z = lvl[:, 0, :]
        for i in range(level):  # coarse levels: one activation per drawn cell
            layer = self.siren.net[i]
            z = torch.sin(layer.omega * (layer.linear(z) + self.modulators[i](lvl[:, i + 1, :])))
        z = z.reshape(z.shape[0], *[1] * self.in_features, z.shape[-1])
        return self._forward_blocks(z, level)

    def macs_per_sample(self, include_bias: bool = True) -> float:
        """The paper's count, per sample. ``include_bias=True`` (Tables 2-5, 10, 11; official
        ``my_profiler.asmr_profiler``): layer i's weights and biases on the C_i cells of its
        level, modulator l on its B_l grid, and one addition per hidden unit per level-(l-1)
        cell for each modulation. ``include_bias=False`` (Tables 7, 12; official
        ``taco_profiler``): layer and modulator weights only."""
        dims = [self.in_features] + [self.hidden_dim] * (self.n_layers - 1) + [self.out_features]
        cells = [math.prod(c) for c in self.level_cells]
        total = sum(mlp_macs(dims[i:i + 2], include_bias) * cells[i]
                    for i in range(self.n_layers))
        for l in range(1, self.n_layers):
            total += self.modulators[l - 1].macs(include_bias) * math.prod(self.level_bases[l])
            if include_bias:
                total += self.hidden_dim * cells[l - 1]
        return total / math.prod(self.signal_shape)

    # -- meta-learning: a batch of per-instance shift modulations (appendix I, eq. 3) --------
    def forward_shifted(self, coords: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
        """Per-sample forward with per-instance shifts, appendix I eq. (3):

            z_i = sin(omega_i (W_i z_{i-1} + b_i + M_i(x_i) + phi_{i-1})),  i = 1..L-1

        ``coords`` ``(N, d)`` (shared by the batch) or ``(B, N, d)``; ``shifts`` ``(B, L-1, K)``.
        Returns ``(B, N, out_features)``; the ground truth ``render_shifted`` is tested against.
        """
        levels = self.level_coords(coords)
        z = levels[..., 0, :]
        for i, layer in enumerate(self.siren.net):
            mod = self.modulators[i](levels[..., i + 1, :])
            z = torch.sin(layer.omega * (layer.linear(z) + mod + shifts[:, i, None, :]))
        return self.siren.last_layer(z)

    def render_shifted(self, shifts: torch.Tensor) -> torch.Tensor:
        """Activation-sharing render of ``B`` signals, one set of shifts each (eq. 3 with the
        sharing of eq. 2): ``shifts`` ``(B, L-1, K)`` -> ``(B, *signal_shape, out_features)``.

        The steps of ``_forward_blocks`` with the batch as its blocks: layer i still runs once
        per level-i cell of each instance (the shift phi_{i-1} is constant over a cell, so it is
        added to the shared activation), and the fused last layer takes the shifted input, so
        an instance costs ASMR's MACs. Layer 0's input grid is shared by the whole batch.
        """
        # layer 0's input grid (1, *B_0, d) is shared by the whole batch
        return self._forward_blocks(self._level_grid0.unsqueeze(0), 0, shifts=shifts)


register_model(ASMR, name="asmr")
register_variant("asmr_nonlinear", ASMR, modulator="nonlinear")
# ASMR paper Table 5 / appendix E (Pluto 8192x8192): 6 layers of 1024 units
register_variant("asmr_big", ASMR, hidden_dim=1024, n_layers=6)
