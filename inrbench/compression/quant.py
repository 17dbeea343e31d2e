"""Quantizers for neural-image compression (ANI, Hoshikawa et al. 2024, secs. 4.2-4.3).

Which tensors are quantized
    Every floating-point entry of a model's state dict gets a *role*: ``first`` (a linear layer
    reading the coordinates: SIREN's first layer, MFN's filters, ASMR's modulators),
    ``hidden`` (the other linear layers), ``last`` (the output layer), and ``other``
    (non-linear parameters such as Gabor centres, and buffers). Biases of a linear layer
    have their layer's role and are quantized only with ``biases=True``. ANI's default
    (sec. 5, Table 3) quantizes the hidden weights only; Table 4's variants add ``first``
    or ``last``: ``layers="hidden,first"``.

Post-training quantization (ANI sec. 4.2, "the standard PTQ of Jacob et al. 2018")
    affine, per tensor:  S = (max - min) / (2^b - 1),  Z = round(-min / S),
                         q = clamp(round(r / S) + Z, 0, 2^b - 1),  r^ = S (q - Z)
    symmetric (Strümpler et al. 2022, AIMET per-tensor symmetric):
                         s = max|r| / (2^{b-1} - 1),  q = round(r / s),  r^ = s q

Quantization-aware training: LSQ+ (Bhalgat et al. 2020; ANI Alg. 1, eqs. 3-4)
    v = (x - beta) / s,   q = round(clamp(v, Qn, Qp)),   x^ = q s + beta,
    Qn = -2^{b-1}, Qp = 2^{b-1} - 1; the straight-through estimator passes d/dx inside
    [Qn, Qp]; s and beta are learned with LSQ's gradient scale g = 1 / sqrt(N Qp)
    (Esser et al. 2019 sec. 2.2), N the number of weights. ANI quantizes weights without an
    offset (eq. 3); ``offset=True`` learns beta for weights too (eq. 4's form).

Every quantized tensor is stored as unsigned symbols u in [0, 2^b - 1] and dequantized as
``x^ = scale * (u - zero) + offset`` in float32 (the same float operations the fake
quantizer runs, so a decoded model equals the trained one bit for bit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.utils.parametrize as P
from torch import nn

from inrbench.errors import ConfigError
from inrbench.models.base import model_label

ROLES = ("first", "hidden", "last", "other")
SCHEMES = ("affine", "symmetric", "lsq")


def parse_layers(layers: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """``"hidden,first"`` -> ("hidden", "first"); ``"all"`` -> every role."""
    items = layers.split(",") if isinstance(layers, str) else list(layers)
    items = [str(i).strip() for i in items if str(i).strip()]
    if items == ["all"]:
        return ROLES
    bad = [i for i in items if i not in ROLES]
    if bad or not items:
        raise ConfigError(f"quantized layers {layers!r} unknown; give a comma-separated subset of "
                          f"{', '.join(ROLES)} (or all), e.g. hidden,last (ANI Table 4)")
    return tuple(items)


def check_bits(bits) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 16:
        raise ConfigError(f"bits must be an integer in 2..16, got {bits!r}; ANI uses 8 and 4")
    return bits


def _strip(name: str) -> str:
    """State-dict name of a parametrized tensor -> the plain model's name."""
    return name.replace(".parametrizations.", ".").replace(".original", "")


def tensor_roles(model: nn.Module) -> dict[str, tuple[str, bool]]:
    """``{state-dict name: (role, is_bias)}`` for every floating-point tensor of ``model``."""
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    out_features = getattr(model, "out_features", None)
    in_features = getattr(model, "in_features", None)
    last = [n for n, m in linears if m.out_features == out_features]
    last_name = last[-1] if last else (linears[-1][0] if linears else None)
    module_role = {}
    for n, m in linears:
        if n == last_name:
            module_role[n] = "last"
        elif m.in_features == in_features:
            module_role[n] = "first"
        else:
            module_role[n] = "hidden"
    roles: dict[str, tuple[str, bool]] = {}
    for name, t in model.state_dict().items():
        if not torch.is_floating_point(t) or (".parametrizations." in name
                                               and not name.endswith(".original")):
            continue  # LSQ step sizes and offsets belong to their tensor
        plain = _strip(name)
        module, _, leaf = plain.rpartition(".")
        if module in module_role and leaf in ("weight", "bias"):
            roles[plain] = (module_role[module], leaf == "bias")
        else:
            roles[plain] = ("other", False)
    return roles


def selected(model: nn.Module, layers=("hidden",), biases: bool = False) -> list[str]:
    """Names of the tensors to quantize (plain state-dict names, in the model's order)."""
    layers = parse_layers(layers)
    return [n for n, (role, is_bias) in tensor_roles(model).items()
            if role in layers and (biases or not is_bias)]


@dataclass
class Quantized:
    """One quantized tensor: ``x^ = scale * (symbols - zero) + offset`` (float32)."""

    symbols: torch.Tensor  # int64, values in [0, 2^bits - 1]
    bits: int
    scale: float  # a float32 value
    zero: int
    offset: float = 0.0  # a float32 value; nonzero only for LSQ+ with a learned offset
    scheme: str = "affine"

    def dequantize(self) -> torch.Tensor:
        scale = torch.tensor(self.scale, dtype=torch.float32)
        q = (self.symbols - self.zero).to(torch.float32)
        out = q * scale
        if self.scheme == "lsq" and self.offset != 0.0:
            out = out + torch.tensor(self.offset, dtype=torch.float32)
        return out


def _f32(x: float) -> float:
    return float(torch.tensor(x, dtype=torch.float32))


def quantize_ptq(x: torch.Tensor, bits: int, scheme: str = "affine") -> Quantized:
    """Post-training quantization of one tensor (equations in the module docstring)."""
    x = x.detach().to(torch.float32).cpu()
    levels = 2**bits - 1
    if scheme == "affine":
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)  # zero is representable
        scale = _f32((hi - lo) / levels) if hi > lo else 1.0
        zero = int(min(max(round(-lo / scale), 0), levels))
        q = torch.clamp(torch.round(x / torch.tensor(scale)) + zero, 0, levels)
        return Quantized(q.to(torch.int64), bits, scale, zero, scheme="affine")
    if scheme == "symmetric":
        qp = 2 ** (bits - 1) - 1
        amax = float(x.abs().max())
        scale = _f32(amax / qp) if amax > 0 else 1.0
        q = torch.clamp(torch.round(x / torch.tensor(scale)), -qp, qp) + 2 ** (bits - 1)
        return Quantized(q.to(torch.int64), bits, scale, 2 ** (bits - 1), scheme="symmetric")
    raise ConfigError(f"--scheme must be one of affine, symmetric (PTQ), got {scheme!r}")


# -- LSQ+ fake quantization ---------------------------------------------------------------

def lsq_range(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """Value ``x``, gradient ``g * dL/dx`` (LSQ sec. 2.2)."""
    return (x - x * g).detach() + x * g


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return (torch.round(x) - x).detach() + x


def lsq_fake_quant(x: torch.Tensor, step: torch.Tensor, offset: torch.Tensor | None,
                   bits: int) -> torch.Tensor:
    """LSQ+: ``round(clamp((x - beta)/s, Qn, Qp)) * s + beta`` with the STE and LSQ's
    gradient scale on ``s`` and ``beta``; its gradients are LSQ+'s (Bhalgat et al. eq. 5-6):
    d/ds = round(v) - v inside, Qn/Qp outside; d/dbeta = 0 inside, 1 outside."""
    qn, qp = lsq_range(bits)
    g = 1.0 / math.sqrt(x.numel() * qp)
    s = _grad_scale(step, g)
    beta = _grad_scale(offset, g) if offset is not None else None
    v = (x - beta) / s if beta is not None else x / s
    q = _round_ste(torch.clamp(v, qn, qp))
    return q * s + beta if beta is not None else q * s


def lsq_symbols(x: torch.Tensor, step: float, offset: float | None, bits: int) -> Quantized:
    """The integer symbols the LSQ+ fake quantizer uses, for the bitstream."""
    qn, qp = lsq_range(bits)
    x = x.detach().to(torch.float32).cpu()
    s = torch.tensor(step, dtype=torch.float32)
    v = (x - torch.tensor(offset, dtype=torch.float32)) / s if offset is not None else x / s
    q = torch.round(torch.clamp(v, qn, qp)).to(torch.int64) - qn
    return Quantized(q, bits, float(s), -qn, float(offset or 0.0), scheme="lsq")


class LSQWeight(nn.Module):
    """A ``torch.nn.utils.parametrize`` parametrization: the weight the model sees is the
    LSQ+ fake-quantized weight. Initialisation (LSQ+ sec. 3.3): s = max(|mu - 3 sigma|,
    |mu + 3 sigma|) / 2^{b-1}; beta = 0 (mu when an offset is learned, with sigma around it)."""

    def __init__(self, weight: torch.Tensor, bits: int, offset: bool = False):
        super().__init__()
        self.bits = check_bits(bits)
        w = weight.detach().float()
        mu, sigma = float(w.mean()), float(w.std()) if w.numel() > 1 else 0.0
        if offset:
            init = max(3 * sigma, 1e-8) / 2 ** (bits - 1)
            self.offset = nn.Parameter(torch.tensor(mu))
        else:
            init = max(abs(mu - 3 * sigma), abs(mu + 3 * sigma), 1e-8) / 2 ** (bits - 1)
            self.offset = None
        self.step = nn.Parameter(torch.tensor(init))
        self.init_step = init  # the scale of this tensor's quantizer (QAT's relative rate)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        # |s| keeps the step positive if an update overshoots zero
        return lsq_fake_quant(weight, self.step.abs() + 1e-12, self.offset, self.bits)

    def quantized(self, weight: torch.Tensor) -> Quantized:
        step = float(self.step.detach().abs() + 1e-12)
        offset = float(self.offset.detach()) if self.offset is not None else None
        return lsq_symbols(weight, _f32(step), None if offset is None else _f32(offset),
                           self.bits)


def _module_and_leaf(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    module, _, leaf = name.rpartition(".")
    return (model.get_submodule(module) if module else model), leaf


def apply_lsq(model: nn.Module, bits: int, layers="hidden", biases: bool = False,
              offset: bool = False) -> list[str]:
    """Register LSQ+ fake quantization on the selected tensors of ``model`` (in place)."""
    names = selected(model, layers, biases)
    if not names:
        raise ConfigError(f"task.quant_layers={layers!r} selects no tensor of "
                          f"model {model_label(model)!r}; try hidden or all")
    for name in names:
        module, leaf = _module_and_leaf(model, name)
        P.register_parametrization(module, leaf, LSQWeight(getattr(module, leaf), bits, offset))
    return names


def lsq_quantized(model: nn.Module) -> dict[str, Quantized]:
    """``{plain name: Quantized}`` for every LSQ-parametrized tensor of ``model``."""
    out = {}
    for mname, module in model.named_modules():
        if not P.is_parametrized(module):
            continue
        for leaf, plist in module.parametrizations.items():
            for p in plist:
                if isinstance(p, LSQWeight):
                    out[f"{mname}.{leaf}" if mname else leaf] = p.quantized(plist.original)
    return out


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The state dict a model without parametrizations would have (fake-quantized values for
    quantized tensors, as the model computes with them)."""
    out = {}
    for name, t in model.state_dict().items():
        if ".parametrizations." in name:
            continue
        out[name] = t
    for mname, module in model.named_modules():
        if P.is_parametrized(module):
            for leaf in module.parametrizations:
                with torch.no_grad():
                    out[f"{mname}.{leaf}" if mname else leaf] = getattr(module, leaf).detach()
    return out
