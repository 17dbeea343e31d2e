"""A Gaussian-activation MLP (Ramasinghe & Lucey, "Beyond Periodicity", ECCV 2022):

    y = W_L g(... g(W_1 x + b_1) ...) + b_L,   g(z) = exp(-z^2 / (2 sigma^2))

on coordinates x in [-1, 1]. MACs per sample: the weights of the linear layers (the
convention of the ASMR paper's MLP baselines); ``include_bias`` adds the biases.
"""

from __future__ import annotations

import torch
from torch import nn

from inrbench.models import INR
from inrbench.models.base import mlp_macs
from inrbench.models.checks import check_int, check_number


class GaussMLP(INR):
    """``n_layers`` linear layers of width ``hidden_dim`` with Gaussian activations."""

    def __init__(self, in_features: int = 2, out_features: int = 1, hidden_dim: int = 64,
                 n_layers: int = 3, sigma: float = 0.1):
        super().__init__()
        # a bad argument is one line naming the key (inrbench.errors.ConfigError)
        hidden_dim, n_layers = check_int("hidden_dim", hidden_dim), check_int("n_layers",
                                                                             n_layers, 2)
        self.in_features, self.out_features = in_features, out_features
        self.sigma = check_number("sigma", sigma)
        self.dims = [in_features] + [hidden_dim] * (n_layers - 1) + [out_features]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(self.dims, self.dims[1:]))

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        x = coords
        for layer in self.layers[:-1]:
            x = torch.exp(-layer(x) ** 2 / (2 * self.sigma ** 2))
        return self.layers[-1](x)

    def macs_per_sample(self, include_bias: bool = False) -> float:
        return float(mlp_macs(self.dims, include_bias))
