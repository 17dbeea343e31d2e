"""SIREN: sinusoidal representation networks (Sitzmann et al., NeurIPS 2020).

    z_0 = x,   z_i = sin(omega_i (W_i z_{i-1} + b_i))  for i = 1..L-1,   y = W_L z_{L-1} + b_L

with ``omega_1 = first_omega0`` and ``omega_i = omega0`` after; ``x`` is the coordinate in
[-1, 1] times ``coord_scale`` (1 by default; 5 reproduces the official code's audio inputs,
``coord_mode: 2`` = ``linspace(-5, 5)`` "following COIN++", see
``conf/experiment/table4.yaml``). ``n_layers`` counts linear layers as the ASMR paper does:
"SIREN (3)" is in->h, h->h, h->out. Initialisation (paper sec. 3.2): first layer
W ~ U(-1/n_in, 1/n_in); later layers W ~ U(-sqrt(6/n_in)/omega0, +...).
Biases are drawn from the same range, as the SIREN of the official ASMR code does (its
Tables 2 and 3 were produced with it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from inrbench.models.base import INR, mlp_macs
from inrbench.models.checks import check_positive, check_sizes
from inrbench.models.registry import register_model, register_variant


class SineLayer(nn.Module):
    """``sin(omega * (W x + b))`` with SIREN's initialisation."""

    def __init__(self, in_features: int, out_features: int, omega: float, is_first: bool,
                 bias: bool = True):
        super().__init__()
        self.omega = omega
        self.linear = nn.Linear(in_features, out_features, bias=bias)
        siren_uniform_(self.linear, omega, is_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.omega * self.linear(x))


def siren_uniform_(linear: nn.Linear, omega: float, is_first: bool) -> None:
    """SIREN initialisation of a linear layer's weight and bias, in place."""
    fan_in = linear.in_features
    bound = 1.0 / fan_in if is_first else math.sqrt(6.0 / fan_in) / omega
    with torch.no_grad():
        for p in (linear.weight, linear.bias):
            if p is not None:
                p.uniform_(-bound, bound)


class SIREN(INR):
    """SIREN with ``n_layers`` linear layers of width ``hidden_dim``."""

    #: the constructor argument ``inrbench bench --ladder`` varies to match a budget, and
    #: the integer range it searches
    size_knob = "hidden_dim"
    size_knob_range = (1, 4096)

    def __init__(self, in_features: int = 2, out_features: int = 1, hidden_dim: int = 256,
                 n_layers: int = 3, omega0: float = 30.0, first_omega0: float = 30.0,
                 coord_scale: float = 1.0):
        super().__init__()
        check_sizes(in_features, out_features, hidden_dim, n_layers)
        check_positive(omega0=omega0, first_omega0=first_omega0, coord_scale=coord_scale)
        # not first_omega0 x coord_scale: that would also scale the first layer's bias
        self.coord_scale = float(coord_scale)
        self.in_features, self.out_features = in_features, out_features
        self.hidden_dim, self.n_layers = hidden_dim, n_layers
        dims = [in_features] + [hidden_dim] * (n_layers - 1)
        self.net = nn.Sequential(*[
            SineLayer(dims[i], dims[i + 1], first_omega0 if i == 0 else omega0, is_first=i == 0)
            for i in range(n_layers - 1)
        ])
        self.last_layer = nn.Linear(hidden_dim, out_features)
        siren_uniform_(self.last_layer, omega0, is_first=False)

    def inputs(self, coords: torch.Tensor) -> torch.Tensor:
        """``coords`` on the scale the first layer sees (see ``coord_scale``)."""
        return coords if self.coord_scale == 1.0 else coords * self.coord_scale

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.net(self.inputs(coords)))

    def macs_per_sample(self, include_bias: bool = False) -> float:
        """Weights only (ASMR paper Tables 2, 3); ``include_bias`` gives Table 7's figures.
        ``coord_scale`` is not counted: the official code generates its coordinates on that
        scale, outside the network its profiler counts."""
        return mlp_macs([self.in_features] + [self.hidden_dim] * (self.n_layers - 1)
                        + [self.out_features], include_bias)


register_model(SIREN, name="siren")
register_variant("siren3", SIREN, n_layers=3)
register_variant("siren4", SIREN, n_layers=4)
