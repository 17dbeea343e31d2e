"""Multiplicative filter networks (Fathony, Sahu, Willmott, Kolter, ICLR 2021), FourierNet and
GaborNet; the ASMR paper's Table 3 baseline is FourierNet (sec. 4.2, appendix C: input scale
256, weight scale 1, 4 layers x 256, lr 1e-2).

MFN (Fathony et al. sec. 3): filters are multiplied into a linear recursion,

    z_1 = g_1(x),   z_{i+1} = (W_i z_i + b_i) * g_{i+1}(x)  (i = 1..k-1),   y = W_k z_k + b_k

FourierNet:  g_i(x) = sin(Omega_i x + phi_i)
GaborNet:    g_i(x)_j = exp(-gamma_ij / 2 ||x - mu_ij||^2) sin(Omega_ij x + phi_ij)

Initialisation (Fathony et al. sec. 3 and their reference code): Omega_i scaled by
``input_scale / sqrt(k)`` (times sqrt(gamma_ij) for Gabor) over PyTorch's default linear
init, phi ~ U(-pi, pi), W_i ~ U(+-sqrt(weight_scale / h)); Gabor centres mu ~ U(-1, 1) (the
coordinate domain) and gamma ~ Gamma(alpha / k, beta). ``n_layers`` counts linear layers on
the main path as SIREN does: the first filter plus the k - 1 hidden W_i plus the output, so
"MFN, 4 layers" has k = 3 filters (n_layers = k + 1).

Counting: params are every weight and bias (Table 3 FourierNet 4x256 on RGB: 134,659 =
134.7K). MACs per sample (``macs_bias=False``): the filters' Omega (k d h), the hidden W
((k-1) h^2) and the output (h out), weights only: 133,376 = 133.4K as Table 3 prints (with
biases: 134.7K). Elementwise products and the Gabor envelope are not counted, except that a
GaborNet's distance to its centres is one more k d h weight product (x . mu).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from inrbench.models.base import INR
from inrbench.models.checks import check_choice, check_int, check_number
from inrbench.models.registry import register_model, register_variant


class FourierFilter(nn.Module):
    """``sin(Omega x + phi)``."""

    def __init__(self, in_features: int, out_features: int, scale: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        with torch.no_grad():
            self.linear.weight.mul_(scale)
            self.linear.bias.uniform_(-math.pi, math.pi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(self.linear(x))


class GaborFilter(nn.Module):
    """``exp(-gamma/2 ||x - mu||^2) sin(Omega x + phi)`` with learned centres and widths."""

    def __init__(self, in_features: int, out_features: int, scale: float, alpha: float,
                 beta: float):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)
        self.mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-1.0, 1.0))
        gamma = torch.distributions.Gamma(alpha, beta).sample((out_features,))
        self.gamma = nn.Parameter(gamma)
        with torch.no_grad():
            self.linear.weight.mul_(scale * gamma.sqrt().unsqueeze(-1))
            self.linear.bias.uniform_(-math.pi, math.pi)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dist = (x.square().sum(-1, keepdim=True) + self.mu.square().sum(-1)
                - 2.0 * x @ self.mu.T)
        return torch.exp(-0.5 * dist * self.gamma) * torch.sin(self.linear(x))


class MFN(INR):
    """FourierNet (``filter="fourier"``) or GaborNet (``filter="gabor"``)."""

    #: the constructor argument ``inrbench bench --ladder`` varies to match a budget, and
    #: the integer range it searches
    size_knob = "hidden_dim"
    size_knob_range = (1, 4096)

    def __init__(self, in_features: int = 2, out_features: int = 1, hidden_dim: int = 256,
                 n_layers: int = 4, filter: str = "fourier", input_scale: float = 256.0,
                 weight_scale: float = 1.0, alpha: float = 6.0, beta: float = 1.0,
                 macs_bias: bool = False):
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.n_layers = check_int("n_layers", n_layers, minimum=2)
        self.filter = check_choice("filter", filter, ["fourier", "gabor"])
        input_scale = check_number("input_scale", input_scale)
        weight_scale = check_number("weight_scale", weight_scale)
        alpha, beta = check_number("alpha", alpha), check_number("beta", beta)
        self.macs_bias = bool(macs_bias)
        k = n_layers - 1  # filters
        scale = input_scale / math.sqrt(k)
        if filter == "fourier":
            filters = [FourierFilter(in_features, hidden_dim, scale) for _ in range(k)]
        else:
            filters = [GaborFilter(in_features, hidden_dim, scale, alpha / k, beta)
                       for _ in range(k)]
        self.filters = nn.ModuleList(filters)
        self.linears = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(k - 1))
        bound = math.sqrt(weight_scale / hidden_dim)
        with torch.no_grad():
            for lin in self.linears:
                lin.weight.uniform_(-bound, bound)
        self.last_layer = nn.Linear(hidden_dim, out_features)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        z = self.filters[0](coords)
        for lin, g in zip(self.linears, self.filters[1:]):
            z = lin(z) * g(coords)
        return self.last_layer(z)

    def macs_per_sample(self, include_bias: bool | None = None) -> float:
        """Filter, hidden and output weights (Table 3); ``include_bias`` adds the biases."""
        bias = self.macs_bias if include_bias is None else include_bias
        k, h, d = self.n_layers - 1, self.hidden_dim, self.in_features
        per_filter = d * h * (2 if self.filter == "gabor" else 1) + (h if bias else 0)
        return float(k * per_filter + (k - 1) * (h * h + (h if bias else 0))
                     + h * self.out_features + (self.out_features if bias else 0))


register_model(MFN, name="mfn")
register_variant("mfn_fourier", MFN, filter="fourier")
register_variant("mfn_gabor", MFN, filter="gabor")
