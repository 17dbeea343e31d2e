"""WIRE: wavelet implicit neural representations with the complex Gabor wavelet (Saragadam,
LeJeune, Tan, Balakrishnan, Veeraraghavan, Baraniuk, CVPR 2023), the ASMR paper's Table 3
baseline (sec. 4.2, appendix C: omega0 20, s0 20, 4 layers x 212, lr 1e-3).

Each Gabor layer applies WIRE's complex Gabor wavelet nonlinearity to an affine map:

    z_i = psi(W_i z_{i-1} + b_i),   psi(u) = exp(j omega0 u) exp(-|s0 u|^2)
    y = Re(W_out z_n + b_out)

The first layer's W, b are real (the input is real coordinates in [-1, 1]); the later layers
and the output layer are complex, as in WIRE's reference code; the output is the real part.
``n_layers`` counts **Gabor layers** (the paper's "4 layers" for WIRE: 4 Gabor layers and the
output linear, i.e. 5 linear maps, which is what reproduces Table 3), unlike SIREN's
``n_layers`` which counts linear maps. omega0 and s0 are stored per Gabor layer as parameters
(frozen unless ``trainable_scales``), as WIRE's reference code does. Weights and biases are
drawn U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (real and imaginary parts independently).

Counting, as the ASMR paper's Table 3: one complex weight counts as one parameter and one MAC
(the numel of a complex tensor). Params 636 + 3 x 45,156 + 639 + 8 (omega0, s0 of the 4 Gabor
layers) = 136,751 = 136.8K; MACs per sample, weights only (``macs_bias=False``): 424 +
3 x 44,944 + 636 = 135,892 = 135.9K (with biases 136.7K). A complex MAC is four real
multiplications, so real arithmetic is about 4x this figure.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from inrbench.models.base import INR
from inrbench.models.checks import check_int, check_number
from inrbench.models.registry import register_model


class ComplexLinear(nn.Module):
    """``W u + b`` with real (``complex_weights=False``) or complex weights."""

    def __init__(self, in_features: int, out_features: int, complex_weights: bool):
        super().__init__()
        dtype = torch.cfloat if complex_weights else torch.float32
        bound = 1.0 / math.sqrt(in_features)
        self.weight = nn.Parameter(self._uniform((out_features, in_features), bound, dtype))
        self.bias = nn.Parameter(self._uniform((out_features,), bound, dtype))

    @staticmethod
    def _uniform(shape, bound: float, dtype) -> torch.Tensor:
        if dtype.is_complex:
            return torch.complex(torch.empty(shape).uniform_(-bound, bound),
                                 torch.empty(shape).uniform_(-bound, bound))
        return torch.empty(shape).uniform_(-bound, bound)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        if self.weight.is_complex() and not u.is_complex():
            u = u.to(self.weight.dtype)
        return u @ self.weight.T + self.bias


class GaborLayer(nn.Module):
    """``exp(j omega0 u - |s0 u|^2)`` of ``u = W z + b``."""

    def __init__(self, in_features: int, out_features: int, omega0: float, s0: float,
                 is_first: bool, trainable: bool):
        super().__init__()
        self.linear = ComplexLinear(in_features, out_features, complex_weights=not is_first)
        self.omega0 = nn.Parameter(torch.tensor([float(omega0)]), requires_grad=trainable)
        self.s0 = nn.Parameter(torch.tensor([float(s0)]), requires_grad=trainable)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = self.linear(z)
        return torch.exp(1j * self.omega0 * u - (self.s0 * u).abs().square())


class WIRE(INR):
    """``n_layers`` complex Gabor layers of width ``hidden_dim`` and a complex linear output."""

    #: the constructor argument ``inrbench bench --ladder`` varies to match a budget, and
    #: the integer range it searches
    size_knob = "hidden_dim"
    size_knob_range = (1, 4096)

    def __init__(self, in_features: int = 2, out_features: int = 1, hidden_dim: int = 212,
                 n_layers: int = 4, omega0: float = 20.0, s0: float = 20.0,
                 first_omega0: float | None = None, trainable_scales: bool = False,
                 macs_bias: bool = False):
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.n_layers = check_int("n_layers", n_layers)
        omega0, s0 = check_number("omega0", omega0), check_number("s0", s0)
        first = omega0 if first_omega0 is None else check_number("first_omega0", first_omega0)
        self.macs_bias = bool(macs_bias)
        dims = [in_features] + [hidden_dim] * n_layers
        self.net = nn.Sequential(*[
            GaborLayer(a, b, first if i == 0 else omega0, s0, is_first=i == 0,
                       trainable=bool(trainable_scales))
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:]))])
        self.last_layer = ComplexLinear(hidden_dim, out_features, complex_weights=True)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.last_layer(self.net(coords)).real

    def macs_per_sample(self, include_bias: bool | None = None) -> float:
        """Weights of the ``n_layers + 1`` linear maps, a complex MAC counted as one (Table 3)."""
        bias = self.macs_bias if include_bias is None else include_bias
        dims = [self.in_features] + [self.hidden_dim] * self.n_layers + [self.out_features]
        return float(sum(a * b + (b if bias else 0) for a, b in zip(dims[:-1], dims[1:])))


register_model(WIRE, name="wire")
