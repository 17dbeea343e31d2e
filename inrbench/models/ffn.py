"""FFN: a ReLU MLP on Gaussian random Fourier features (Tancik et al., NeurIPS 2020), the
ASMR paper's Table 3 baseline (sec. 4.2, appendix C: embedding size 128, sigma 10,
3 layers x 256, lr 1e-3).

    gamma(v) = [cos(2 pi B v), sin(2 pi B v)],  B_ij ~ N(0, sigma^2)   (Tancik et al.'s
                                                                     Gaussian Fourier mapping)
    y = W_L phi(... phi(W_1 gamma(v) + b_1) ...) + b_L,   phi = ReLU

with v in [-1, 1] (the ASMR repository's FFN uses coordinates in [-1, 1]). ``n_layers``
counts linear layers after the embedding ("3 layers": 2m -> h -> h -> out). ``B`` is a fixed
buffer, not a parameter.

Counting: params are the MLP's weights and biases (Table 3: 132,355 = 132.4K). MACs per sample
are the MLP's weights only (``macs_bias=False``): 131,840 = 131.8K as Table 3 prints; with
biases it would be 132.4K, and the projection B v (m d MACs) is not counted by the paper.
"""

from __future__ import annotations

import torch

from inrbench.models.base import INR, mlp_macs
from inrbench.models.checks import check_int
from inrbench.models.encoding import GaussianFourierFeatures, relu_mlp
from inrbench.models.registry import register_model


class FFN(INR):
    """Fourier-feature ReLU MLP with ``n_layers`` linear layers of width ``hidden_dim``."""

    #: the constructor argument ``inrbench bench --ladder`` varies to match a budget, and
    #: the integer range it searches
    size_knob = "hidden_dim"
    size_knob_range = (1, 4096)

    def __init__(self, in_features: int = 2, out_features: int = 1, embedding_size: int = 128,
                 sigma: float = 10.0, hidden_dim: int = 256, n_layers: int = 3,
                 macs_bias: bool = False):
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.n_layers = check_int("n_layers", n_layers, minimum=2)
        self.macs_bias = bool(macs_bias)
        self.encoding = GaussianFourierFeatures(in_features, embedding_size, sigma)
        self.mlp = relu_mlp(self._dims())

    def _dims(self) -> list[int]:
        return [self.encoding.out_features] + [self.hidden_dim] * (self.n_layers - 1) \
            + [self.out_features]

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.encoding(coords))

    def macs_per_sample(self, include_bias: bool | None = None) -> float:
        """MLP weights (Table 3); ``include_bias`` adds the biases."""
        return float(mlp_macs(self._dims(), self.macs_bias if include_bias is None
                              else include_bias))


register_model(FFN, name="ffn")
