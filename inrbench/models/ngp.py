"""Instant-NGP: multiresolution hash encoding + a small ReLU MLP (Müller, Evans, Schied,
Keller, SIGGRAPH 2022), as the ASMR paper benchmarks it (sec. 4.3, appendices D, E, G, I).

Encoding (Instant-NGP sec. 3). Level l = 0..L-1 has, on each axis, the resolution (eqs. 2, 3)

    N_l = floor(N_min b^l),   b = exp((ln N_max - ln N_min) / (L - 1))   (or ``per_level_scale``)

i.e. N_l cells and N_l + 1 vertices per axis. A point x in [0, 1]^d (the coordinate in [-1, 1]
mapped linearly) is scaled by N_l; the 2^d vertices of its cell are looked up in the level's
table of F-dim feature vectors and multilinearly interpolated. Each level's table holds
``min(align8(prod(N_l + 1)), T)`` entries (T = 2^log2_hashmap_size; rounding the dense size up
to a multiple of 8 is tiny-cuda-nn's alignment). When the level's vertex grid fits the table,
indexing is dense (one entry per vertex, first axis fastest); otherwise vertices go through
the spatial hash (eq. 4)

    h(v) = (XOR_k v_k pi_k) mod T,   pi = (1, 2654435761, 805459861)

The L interpolated vectors are concatenated (L F features) and decoded by an MLP with
``n_layers`` linear layers of width ``hidden_dim`` and ReLUs between them. Tables are
initialised U(-1e-4, 1e-4) (sec. 4). Any number of input axes works (1-D audio, 2-D, 3-D);
``base_resolution`` / ``finest_resolution`` may be per axis (appendix G's video).

``implementation: tcnn`` uses tiny-cuda-nn's ``HashGrid`` encoding for the tables when the
package imports and a GPU is there (same MLP after it); otherwise it falls back to this torch
code with a printed note. ``self.backend`` says which ran. tcnn allocates its levels slightly
differently (N_l = ceil(N_min b^l - 1) + 1 vertices), so its parameter count may differ by a
few hundred entries.

Counting, checked against the ASMR paper's Instant-NGP rows. Params: all table entries as
above plus the MLP's weights and biases: Table 4 audio 32,865 (32.9K; tcnn's own allocation
gives 32.8K), Table 5 1,229,395 (1.229M). Table 11 (UVG, 1.990M) is reproduced only with the
official repository's video config, 16 levels and T = 2^17 (1,990,435); the appendix text's
17 levels and T = 2^16 give 1,235,331. MACs per sample (``macs_bias=True``, default): the MLP's
weights and biases, as the official ``my_profiler.mlp_profiler``; hash lookups and
interpolation are not MACs of weights (paper footnote 1). Table 4: 1,025 (1.0K), Table 5:
6,467 (0.006M), Table 11: 6,467 (0.006M). Weights only (``macs_bias=False``) rounds the same.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from inrbench.errors import ConfigError
from inrbench.models.base import INR, mlp_macs
from inrbench.models.checks import check_choice, check_int, check_number, cuda_extension, per_axis
from inrbench.models.encoding import relu_mlp
from inrbench.models.registry import register_model

#: Instant-NGP's hash primes, one per axis (the first is 1 for cache coherence).
PRIMES = (1, 2654435761, 805459861, 3674653429, 2097192037, 1434869437, 2165219737)


def level_resolutions(n_levels: int, base: Sequence[int], finest: Sequence[float] | None,
                      scale: Sequence[float] | None) -> list[list[int]]:
    """``N_l`` per level and axis (Instant-NGP eqs. 2, 3)."""
    if scale is None:
        scale = [math.exp((math.log(f) - math.log(b)) / (n_levels - 1)) if n_levels > 1 else 1.0
                 for b, f in zip(base, finest)]
    # the epsilon keeps exact products (125 * 2^6) from flooring one below
    return [[int(math.floor(b * s ** lvl + 1e-6)) for b, s in zip(base, scale)]
            for lvl in range(n_levels)]


class HashGrid(nn.Module):
    """Multiresolution hash encoding in plain PyTorch: ``(N, d)`` in [0, 1] -> ``(N, L F)``."""

    def __init__(self, dims: int, n_levels: int, n_features: int, log2_hashmap_size: int,
                 resolutions: list[list[int]]):
        super().__init__()
        if dims > len(PRIMES):
            raise ConfigError(f"the hash encoding supports at most {len(PRIMES)} axes, got {dims}")
        self.dims, self.n_levels, self.n_features = dims, n_levels, n_features
        self.table_size = 2 ** log2_hashmap_size
        sizes, dense, strides = [], [], []
        for res in resolutions:
            vertices = math.prod(r + 1 for r in res)
            dense.append(vertices <= self.table_size)
            sizes.append(min(-(-vertices // 8) * 8, self.table_size))
            strides.append([math.prod(r + 1 for r in res[:k]) for k in range(dims)])
        self.level_sizes = sizes
        offsets = [0] + list(torch.tensor(sizes).cumsum(0).tolist())
        self.embeddings = nn.Parameter(torch.empty(offsets[-1], n_features).uniform_(-1e-4, 1e-4))
        self.n_dense = sum(dense)
        if dense != [True] * self.n_dense + [False] * (n_levels - self.n_dense):
            raise ConfigError("the hash grid's levels must not shrink (per_level_scale >= 1)")
        corners = torch.tensor([[(c >> k) & 1 for k in range(dims)] for c in range(2 ** dims)])
        self.register_buffer("_res", torch.tensor(resolutions), persistent=False)  # (L, d)
        self.register_buffer("_dense", torch.tensor(dense), persistent=False)  # (L,)
        self.register_buffer("_strides", torch.tensor(strides), persistent=False)  # (L, d)
        self.register_buffer("_offsets", torch.tensor(offsets[:-1]), persistent=False)  # (L,)
        # dense index step from a cell's first vertex to each corner, per level: (L, 2^d)
        self.register_buffer("_corner_steps", (corners.unsqueeze(0)
                                               * torch.tensor(strides).unsqueeze(1)).sum(-1),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        res = self._res.to(x.dtype)
        pos = x.unsqueeze(-2) * res  # (N, L, d)
        cell = torch.minimum(torch.floor(pos), (res - 1).clamp(min=0))
        frac = pos - cell
        cell = cell.long()
        # corners by doubling over axes: corner c has bit k = (c >> k) & 1 (a vertex + e_k)
        weight = torch.ones_like(frac[..., :1])
        for k in range(self.dims):
            f = frac[..., k:k + 1]
            weight = torch.cat([weight * (1 - f), weight * f], dim=-1)  # (N, L, 2^(k+1))
        nd = self.n_dense  # dense levels come first: vertex counts grow with the level
        parts = []
        if nd:
            base = (cell[:, :nd] * self._strides[:nd]).sum(-1, keepdim=True)  # (N, nd, 1)
            parts.append(base + self._corner_steps[:nd])
        if nd < self.n_levels:
            v = cell[:, nd:]
            h = torch.zeros_like(v[..., :1])
            for k in range(self.dims):
                lo = v[..., k:k + 1] * int(PRIMES[k])
                h = torch.cat([h ^ lo, h ^ (lo + int(PRIMES[k]))], dim=-1)
            parts.append(h & (self.table_size - 1))
        index = (torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]) \
            + self._offsets.unsqueeze(-1)  # (N, L, 2^d)
        feats = (self.embeddings[index] * weight.unsqueeze(-1)).sum(-2)  # (N, L, F)
        return feats.flatten(-2)


class InstantNGP(INR):
    """Hash encoding (``n_levels`` x ``n_features_per_level``) + ReLU MLP."""

    #: the constructor argument ``inrbench bench --ladder`` varies to match a budget, and
    #: the integer range it searches
    size_knob = "log2_hashmap_size"
    size_knob_range = (2, 24)

    def __init__(self, in_features: int = 2, out_features: int = 1, n_levels: int = 16,
                 n_features_per_level: int = 2, log2_hashmap_size: int = 16,
                 base_resolution=16, finest_resolution=4096, per_level_scale: float | None = None,
                 n_layers: int = 3, hidden_dim: int = 64, implementation: str = "torch",
                 macs_bias: bool = True):
        super().__init__()
        d = self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.n_levels = check_int("n_levels", n_levels)
        self.n_features_per_level = check_int("n_features_per_level", n_features_per_level)
        self.log2_hashmap_size = check_int("log2_hashmap_size", log2_hashmap_size)
        if self.log2_hashmap_size > 30:
            raise ConfigError(f"model.log2_hashmap_size={log2_hashmap_size} is too large "
                              f"(2^30 entries per level at most)")
        base = per_axis("base_resolution", base_resolution, d)
        scale = None
        if per_level_scale is not None:
            scale = [check_number("per_level_scale", per_level_scale)] * d
            if scale[0] < 1:
                raise ConfigError(f"model.per_level_scale must be >= 1 (levels get finer), got "
                                  f"{per_level_scale}")
        finest = None if finest_resolution is None else \
            per_axis("finest_resolution", finest_resolution, d, integer=False)
        if finest is None and scale is None:
            raise ConfigError("give model.finest_resolution or model.per_level_scale")
        if finest is not None:
            if any(f < b for f, b in zip(finest, base)):
                raise ConfigError(f"model.finest_resolution {finest} is below "
                                  f"model.base_resolution {base}")
            if scale is not None:
                implied = [b * scale[0] ** (self.n_levels - 1) for b in base]
                if any(abs(i - f) > 1e-3 * f for i, f in zip(implied, finest)):
                    raise ConfigError(
                        f"model.per_level_scale={per_level_scale} reaches {implied} after "
                        f"{self.n_levels} levels, not model.finest_resolution={finest}; give "
                        f"only one of them")
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.n_layers = check_int("n_layers", n_layers)
        self.implementation = check_choice("implementation", implementation, ["torch", "tcnn"])
        self.macs_bias = bool(macs_bias)
        self.resolutions = level_resolutions(self.n_levels, base, finest, scale)
        self.base_resolution = base
        self.per_level_scale = scale if scale is not None else \
            [math.exp((math.log(f) - math.log(b)) / max(self.n_levels - 1, 1))
             for b, f in zip(base, finest)]

        self.encoding = self._tcnn_encoding() if implementation == "tcnn" else None
        if self.encoding is None:
            self.backend = "torch"
            self.encoding = HashGrid(d, self.n_levels, self.n_features_per_level,
                                     self.log2_hashmap_size, self.resolutions)
        enc = self.n_levels * self.n_features_per_level
        self.mlp = relu_mlp([enc] + [self.hidden_dim] * (self.n_layers - 1) + [self.out_features])

    def _tcnn_encoding(self):
        """tiny-cuda-nn's HashGrid, or ``None`` (with a note) when it cannot run here."""
        def load():
            import tinycudann  # noqa: PLC0415  (optional: CUDA machines only)

            return tinycudann

        limit = None
        if len(set(self.base_resolution)) > 1 \
                or len(set(round(s, 9) for s in self.per_level_scale)) > 1:
            limit = "tcnn needs the same base resolution and scale on every axis"
        tcnn = cuda_extension(load, "InstantNGP: implementation 'tcnn'", "tinycudann",
                              "the torch hash grid", limit)
        if tcnn is None:
            return None
        self.backend = "tcnn"
        config = {"otype": "HashGrid", "n_levels": self.n_levels,
                  "n_features_per_level": self.n_features_per_level,
                  "log2_hashmap_size": self.log2_hashmap_size,
                  "base_resolution": self.base_resolution[0],
                  "per_level_scale": self.per_level_scale[0]}
        return tcnn.Encoding(self.in_features, config)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        lead = coords.shape[:-1]
        x = ((coords.reshape(-1, self.in_features) + 1.0) * 0.5).clamp(0.0, 1.0)
        feats = self.encoding(x).to(x.dtype)
        return self.mlp(feats).reshape(*lead, self.out_features)

    def macs_per_sample(self, include_bias: bool | None = None) -> float:
        """The MLP's MACs per sample (module docstring): the paper counts no encoding MACs."""
        bias = self.macs_bias if include_bias is None else include_bias
        dims = [self.n_levels * self.n_features_per_level] \
            + [self.hidden_dim] * (self.n_layers - 1) + [self.out_features]
        return float(mlp_macs(dims, bias))


register_model(InstantNGP, name="ngp")
