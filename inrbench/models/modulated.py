"""Per-instance shift modulations of a shared network, for meta-learning over a data set
(COIN++, Dupont et al. 2022; ASMR paper sec. 4.4 and appendix I).

A latent vector per instance is mapped by one linear layer to ``phi``, one shift of width K per
hidden layer (``n_shift_layers x K`` values), which is added to that layer's pre-activation:

* SIREN, as COIN++'s ``ModulatedSiren``:  z_i = sin(omega_i (W_i z_{i-1} + b_i + phi_{i-1}))
* ASMR, appendix I eq. (3):
  z_i = sin(omega_i (W_i z_{i-1} + b_i + M_i(x_i) + phi_{i-1}))
* Instant-NGP, shifts on the hidden layers of its ReLU MLP (the paper gives no equation; the
  hash tables stay shared):              z_i = relu(W_i z_{i-1} + b_i + phi_{i-1})

The last (linear) layer is not modulated. ``render_shifted(model, shifts, shape)`` renders a batch
of whole signals ``(B, *shape, C)``; ASMR goes through its activation-sharing path
(``ASMR.render_shifted``), so a step costs ASMR's MACs; SIREN and Instant-NGP run their first
(shared) layer once for the batch. ``forward_shifted(model, coords, shifts)`` is the per-sample
path ``(B, N, C)`` for any coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from inrbench.errors import ConfigError
from inrbench.models.asmr import ASMR
from inrbench.models.base import make_grid
from inrbench.models.ngp import InstantNGP
from inrbench.models.siren import SIREN

#: the registered model families that take shift modulations
SHIFTABLE = (ASMR, SIREN, InstantNGP)


def check_shiftable(model: nn.Module, name: str = "") -> None:
    if not isinstance(model, SHIFTABLE):
        raise ConfigError(f"model {name or type(model).__name__!r} has no shift modulations; "
                          f"meta-learning (task.name=meta) supports the asmr, siren and ngp "
                          f"families (e.g. --model asmr)")


def shift_layout(model: nn.Module) -> tuple[int, int]:
    """``(number of modulated hidden layers, their width)``: ``hidden x (layers - 1)`` shifts."""
    check_shiftable(model)
    # SIREN, ASMR: every sine layer; Instant-NGP: every hidden layer of its MLP
    return model.n_layers - 1, model.hidden_dim


def _check_shifts(model: nn.Module, shifts: torch.Tensor) -> None:
    layers, width = shift_layout(model)
    if shifts.dim() != 3 or tuple(shifts.shape[1:]) != (layers, width):
        raise ValueError(f"shifts must be (B, {layers}, {width}) for this model, got "
                         f"{tuple(shifts.shape)}")


def _siren_shifted(siren: SIREN, x: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    z = siren.inputs(x)
    for i, layer in enumerate(siren.net):
        z = torch.sin(layer.omega * (layer.linear(z) + shifts[:, i, None, :]))
    return siren.last_layer(z)


def _ngp_shifted(ngp: InstantNGP, coords: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    lead = coords.shape[:-1]
    x = ((coords.reshape(-1, ngp.in_features) + 1.0) * 0.5).clamp(0.0, 1.0)
    z = ngp.encoding(x).to(x.dtype).reshape(*lead, -1)
    linears = [m for m in ngp.mlp if isinstance(m, nn.Linear)]
    for i, linear in enumerate(linears[:-1]):
        z = torch.relu(linear(z) + shifts[:, i, None, :])
    return linears[-1](z)


def forward_shifted(model: nn.Module, coords: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Per-sample forward with shifts: ``coords`` ``(N, d)`` (shared) or ``(B, N, d)``,
    ``shifts`` ``(B, layers, K)`` -> ``(B, N, out_features)``."""
    _check_shifts(model, shifts)
    if isinstance(model, ASMR):
        return model.forward_shifted(coords, shifts)
    if isinstance(model, SIREN):
        return _siren_shifted(model, coords, shifts)
    return _ngp_shifted(model, coords, shifts)


def render_shifted(model: nn.Module, shifts: torch.Tensor,
                   shape: Sequence[int] | None = None) -> torch.Tensor:
    """A batch of whole signals ``(B, *shape, out_features)``, one set of shifts each."""
    _check_shifts(model, shifts)
    if isinstance(model, ASMR) and (shape is None or list(shape) == model.signal_shape):
        return model.render_shifted(shifts)
    if shape is None:
        raise ValueError(f"{type(model).__name__} needs the signal shape to render")
    device = next(model.parameters()).device
    grid = make_grid(shape, device=device, dtype=shifts.dtype).reshape(-1, len(shape))
    out = forward_shifted(model, grid, shifts)
    return out.reshape(shifts.shape[0], *shape, out.shape[-1])


class LatentToShift(nn.Module):
    """COIN++'s ``LatentToModulation`` with one layer: ``phi = W z + b`` (default PyTorch
    init), reshaped to ``(B, layers, K)``."""

    def __init__(self, latent_dim: int, layers: int, width: int):
        super().__init__()
        self.layers, self.width = layers, width
        self.linear = nn.Linear(latent_dim, layers * width)

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        return self.linear(latents).reshape(latents.shape[0], self.layers, self.width)
