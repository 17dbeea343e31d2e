"""Input encodings of the baseline models.

``PositionalEncoding``: NeRF's frequency encoding (Mildenhall et al. 2020, eq. 4), used by
KiloNeRF and LoE as the ASMR paper's appendix B says (10 and 8 frequencies):

    gamma(x) = (x, sin(2^0 pi x), cos(2^0 pi x), ..., sin(2^{F-1} pi x), cos(2^{F-1} pi x))

applied to every coordinate, so ``d`` inputs become ``d (1 + 2F)`` features (the raw input
is kept, as the official ASMR baselines do).

``GaussianFourierFeatures``: Tancik et al. 2020, the Gaussian random Fourier feature mapping:

    gamma(v) = (cos(2 pi B v), sin(2 pi B v)),   B in R^{m x d},  B_ij ~ N(0, sigma^2)

with ``B`` fixed (a persistent buffer, so checkpoints restore it; it is not a parameter and
the paper's Table 3 does not count it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from inrbench.models.checks import check_int, check_number


class PositionalEncoding(nn.Module):
    """NeRF positional encoding with ``n_freqs`` octaves, raw input included."""

    def __init__(self, in_features: int, n_freqs: int):
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.n_freqs = check_int("n_freqs", n_freqs, minimum=0)
        self.out_features = in_features * (1 + 2 * n_freqs)
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freqs, dtype=torch.float32),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.n_freqs == 0:
            return x
        angles = (x.unsqueeze(-2) * self.freqs.to(x.dtype).unsqueeze(-1)).flatten(-2)  # (..., F*d)
        return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)


class GaussianFourierFeatures(nn.Module):
    """Random Fourier features ``[cos(2 pi B v), sin(2 pi B v)]`` with ``B ~ N(0, sigma^2)``."""

    def __init__(self, in_features: int, embedding_size: int, sigma: float):
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.embedding_size = check_int("embedding_size", embedding_size)
        self.sigma = check_number("sigma", sigma)
        self.out_features = 2 * embedding_size
        self.register_buffer("B", torch.randn(embedding_size, in_features) * sigma)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        proj = 2.0 * math.pi * (v @ self.B.T)
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=-1)


def relu_mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers of widths ``dims`` with a ReLU between each pair (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
