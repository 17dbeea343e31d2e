"""A multi-resolution dense grid with no network: the floor any coordinate network must beat.

The signal is the sum over levels of an interpolated dense grid of values,

    y(x) = sum_{l=0}^{L-1} interp(G_l, x),

where level ``l`` holds ``out_features`` values at each vertex of a regular grid of ``R_l``
vertices per axis, spanning [-1, 1] with vertex ``k`` at ``-1 + 2 k / (R_l - 1)`` (a single
vertex sits at 0, a constant along its axis): the grid convention of
:func:`inrbench.models.base.make_grid`, so a level whose ``R_l`` equals the signal's sample
count sits exactly on the samples. ``interp`` is linear in 1-D (audio),
bilinear in 2-D (images) and trilinear in 3-D (video, occupancy, SDF). The resolutions grow
geometrically from ``base_resolution`` to ``finest_resolution`` as Instant-NGP's levels do
(Müller et al. 2022, eqs. 2-3), ``R_l = floor(base b^l)`` with
``b = (finest / base)^(1 / (L - 1))`` (one level: the finest; ``finest_resolution: null``
takes the signal's sample counts and caps the base at them), but every level is a dense
array, with no hashing and no MLP after it: ``sum_l prod(R_l) x out_features`` parameters.
This is the "grid" baseline that the NeurIPS 2025 benchmark of INRs at matched parameter
budgets compares with FFN, SIREN, WIRE, Gaussian splats and Instant-NGP.

Implementation. 2-D and 3-D levels use ``F.grid_sample(..., align_corners=True)``: with
``align_corners=True``, -1 and +1 are the centres of the first and last vertices, as in
``make_grid``. Coordinates ``(axis 0, axis 1, ...)`` are reversed into grid_sample's
``(x, y, z)`` order, and ``padding_mode="border"`` keeps a coordinate outside [-1, 1] on the
edge vertex. 1-D levels use plain linear interpolation: the two neighbours are gathered and
weighted in one batched product, which the profiler's matrix-product rule counts as the 2
MACs per output value that they are. ``render`` is the forward on ``make_grid(shape)``.
``F.interpolate(align_corners=True)`` would not be a cheaper full-grid path: on one CPU
thread it was slower than grid_sample (0.14 s against 0.09 s for 8 levels at 512 x 512 x 3),
and its index arithmetic differs from the forward's by ~3e-4.

Occupancy: the output is a logit, as for every model (the fitting task's BCE takes logits and
the metrics apply the sigmoid), so the grid holds logits and needs no squashing of its own.

Cost. No paper gives a MAC convention for a plain grid, so ``macs_per_sample`` raises
NotImplementedError and profiles report the measured count. The profiler counts an
interpolation as one multiply-accumulate per corner and output value (see
:mod:`inrbench.profiling.macs`), so a grid measures ``L x 2^d x out_features`` MACs per sample.

Block sampling: no activations are shared within a cell, so a block-sampled run trains on the
drawn cells' coordinates (the plain path of :mod:`inrbench.blocks`), at the same cost per
sample as random sampling.

Initialisation: U(-init_scale, init_scale) for every value, 1e-4 by default as Instant-NGP's
tables. The output is linear in the parameters, so the fit is convex (least squares; logistic
for occupancy) and zeros (``init_scale: 0``) work as well.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from inrbench.errors import ConfigError
from inrbench.models.base import INR
from inrbench.models.checks import check_int, per_axis, signal_shape_of
from inrbench.models.registry import register_model


def ladder(levels: int, base: Sequence[int], finest: Sequence[int]) -> list[list[int]]:
    """Vertices per axis of each level: geometric growth from ``base`` to ``finest``."""
    if levels == 1:
        return [list(finest)]
    out = []
    for lvl in range(levels):
        # the epsilon keeps exact products (16 * 2^3) from flooring one below
        res = [int(math.floor(b * (f / b) ** (lvl / (levels - 1)) + 1e-6))
               for b, f in zip(base, finest)]
        out.append([min(max(r, b), f) for r, b, f in zip(res, base, finest)])
    return out


class Grid(INR):
    """``levels`` dense grids from ``base_resolution`` to ``finest_resolution`` vertices per
    axis (``null``: the signal's sample counts), interpolated and summed (module docstring)."""

    #: the constructor argument ``inrbench bench --ladder`` varies to match a budget, and
    #: the integer range it searches
    size_knob = "finest_resolution"
    size_knob_range = (16, 8192)

    def __init__(self, in_features: int = 2, out_features: int = 1,
                 signal_shape: Sequence[int] | None = None, levels: int = 8,
                 base_resolution: int | list[int] = 16,
                 finest_resolution: int | list[int] | None = None, init_scale: float = 1e-4):
        super().__init__()
        d = self.in_features = check_int("in_features", in_features)
        if d > 3:
            raise ConfigError(f"model.in_features={d}: the grid interpolates 1-D, 2-D or 3-D "
                              f"signals only")
        self.out_features = check_int("out_features", out_features)
        self.levels = check_int("levels", levels)
        shape = None if signal_shape is None else signal_shape_of(signal_shape, d)
        base = per_axis("base_resolution", base_resolution, d)
        if finest_resolution is None:
            if shape is None:
                raise ConfigError("model.finest_resolution is null and there is no "
                                  "model.signal_shape to take it from; give one of them")
            # the signal's own sample counts; an axis shorter than the base caps the base
            finest = shape
            base = [min(b, n) for b, n in zip(base, shape)]
        else:
            finest = per_axis("finest_resolution", finest_resolution, d)
        if any(f < b for f, b in zip(finest, base)):
            raise ConfigError(f"model.finest_resolution {finest} must be >= "
                              f"model.base_resolution {base} on every axis; lower "
                              f"model.base_resolution or raise model.finest_resolution")
        if isinstance(init_scale, bool) or not isinstance(init_scale, (int, float)) \
                or not math.isfinite(init_scale) or init_scale < 0:
            raise ConfigError(f"model.init_scale must be a number >= 0, got {init_scale!r}")
        self.init_scale = float(init_scale)
        self.signal_shape = shape
        self.base_resolution, self.finest_resolution = base, finest
        self.resolutions = ladder(self.levels, base, finest)
        self.grids = nn.ParameterList(
            nn.Parameter(torch.empty(1, self.out_features, *res)
                         .uniform_(-self.init_scale, self.init_scale))
            for res in self.resolutions)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        lead, d = coords.shape[:-1], self.in_features
        x = coords.reshape(-1, d)
        out = self._linear(x) if d == 1 else self._sampled(x)
        return out.reshape(*lead, self.out_features)

    def _sampled(self, x: torch.Tensor) -> torch.Tensor:
        """Bi-/trilinear: grid_sample wants (x, y[, z]) = the reversed axes, in a batch of 1."""
        n, d = x.shape
        grid = x.flip(-1).reshape(1, *([1] * (d - 1)), n, d).to(self.grids[0].dtype)
        out = None
        for g in self.grids:
            s = F.grid_sample(g, grid, mode="bilinear", padding_mode="border",
                              align_corners=True)
            out = s if out is None else out + s
        return out.reshape(self.out_features, n).t().to(x.dtype)

    def _linear(self, x: torch.Tensor) -> torch.Tensor:
        """Linear interpolation: each sample's two neighbouring vertices, weighted."""
        out = None
        for g in self.grids:
            table = g[0].t()  # (R, out_features)
            r = table.shape[0]
            pos = ((x[:, 0].to(table.dtype) + 1) * 0.5 * (r - 1)).clamp(0, r - 1)
            left = pos.floor().clamp(max=max(r - 2, 0))
            frac = pos - left
            # a one-vertex level (a one-sample axis) is a constant: both neighbours are vertex 0
            idx = (left.long().unsqueeze(-1) + torch.arange(2, device=x.device)).clamp(max=r - 1)
            weights = torch.stack([1 - frac, frac], dim=-1)  # (n, 2)
            # one (1 x 2) @ (2 x out) product per sample: two MACs per output value
            s = torch.einsum("nk,nkf->nf", weights, table[idx])
            out = s if out is None else out + s
        return out.to(x.dtype)

    def macs_per_sample(self) -> float:
        raise NotImplementedError("no paper convention for a plain grid: measured only "
                                  "(levels x 2^d x out_features interpolation MACs)")


register_model(Grid, name="grid")
