"""Decoders of generated INRs (ANR paper, Zhang et al., ECCV 2024, arXiv 2407.15355):
``anr``, the attention-based localized INR, and ``transinr``, the linear baseline whose MLP
weights the tokens modulate (the official ``Roninton/ANR`` ``mlp`` configuration, after
Trans-INR, Chen & Wang 2022).

Both read coordinates through the same positional encoding (the official ``convert_posenc``)::

    w_k = exp(linspace(0, ln sigma, pe_dim / 2)),   gamma(x) = [cos(pi x w), sin(pi x w)]

concatenated over the axes (``in_features * pe_dim`` features; 2 x 256 = 512 for images).

**ANR** (sec. 3 of the paper; ``models/HypoNet/hypo_anr.py``). The instance is a token matrix
T in R^{token_len x hidden}. The localized attention layer (LAL) is a cross-attention from the
encoded coordinate to T, with no residual::

    A = softmax(Q K^T / sqrt(d)),  Q = gamma(x) W_q,  K = T W_k,  V = T W_v   (per head)
    L-softmax:  A' = max(A, tau) - tau,   A'' = A' / sum_j A'_j                  (rows sum to 1)
    h = concat_heads(A'' V) W_o,          y = MLP(h)

where tau = ``att_threshold`` zeroes the weak tokens so that each coordinate attends to a few
(0.0015 for 256 tokens; the official comment: 4x the tokens, tau / 4). The global MLP
(shared by every instance) is (n_layers - 1) x [Linear(hidden, hidden), ReLU] + Linear(hidden,
out). The hyper-network emits raw tokens R and T = w * LN-Linear(R) + b, with a shared ``w``
(init 1) and ``b`` (init N(0, 1), a positional embedding of the tokens): the official
``direct_wtoken`` mode; the LN-Linear head belongs to the hyper-network
(``inrbench.models.hypernet``), ``w`` and ``b`` to this decoder.

**Trans-INR** (the ``mlp`` grouping of ``models/hyper_network.py``, ``HypoMlp``): an MLP of
``n_layers`` linear layers on gamma(x) with ReLU between. Layer i has a shared base matrix
[W_i; b_i] in R^{(in_i + 1) x out_i}; the instance gives g_i = min(n_groups, out_i) tokens,
each mapped to a column u in R^{in_i}; the columns are tiled over the out_i outputs
(output j uses token j mod g_i) and

    W_i' = normalize_columns(W_i * U_i),   layer(h) = h W_i' + b_i.

Used alone (``inrbench run --model anr``, the fitting task) each decoder holds its own
instance as learned parameters (``instance``), so it fits one signal like any INR; the
``hypernet`` task (``inrbench.tasks.hypernet``) generates the instance instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from inrbench.errors import ConfigError
from inrbench.models.base import INR
from inrbench.models.checks import check_int, check_number
from inrbench.models.registry import register_model


def pixel_grid(shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates ``(*shape, len(shape))`` in (-1, 1): ``-1 + (2 i + 1) / n``,
    as the official ANR code samples images. A denser grid covers the same square, so
    super-resolution is ``render`` at a larger shape (unlike the suite's corner grid)."""
    axes = [(torch.arange(n, device=device, dtype=dtype) * 2 + 1) / n - 1 for n in shape]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def positional_encoding(x: torch.Tensor, pe_dim: int, sigma: float) -> torch.Tensor:
    """``(..., d)`` -> ``(..., d * pe_dim)``: cos then sin of pi x w_k, w_k from 1 to sigma."""
    w = torch.exp(torch.linspace(0.0, math.log(sigma), pe_dim // 2, device=x.device,
                                 dtype=x.dtype))
    xw = (x.unsqueeze(-1) * w).flatten(-2)  # x-frequencies, then y-frequencies
    return torch.cat([torch.cos(math.pi * xw), torch.sin(math.pi * xw)], dim=-1)


def l_softmax(scores: torch.Tensor, threshold: float | None) -> torch.Tensor:
    """The thresholded softmax of the LAL (see the module docstring), over the last axis.

    A row whose weights are all <= tau (only a uniform row when tau < 1 / tokens, which
    ``ANR`` enforces) would divide 0 by 0; it keeps the plain softmax."""
    attn = scores.softmax(dim=-1)
    if threshold is None:
        return attn
    kept = attn.clamp(min=threshold) - threshold
    total = kept.sum(dim=-1, keepdim=True)
    return torch.where(total > 0, kept / total.clamp(min=torch.finfo(attn.dtype).tiny), attn)


def _pe_dim(pe_dim, in_features: int, hidden_dim: int) -> int:
    """Default: ``hidden_dim // in_features`` rounded down to even (256 for 512 and 2 axes)."""
    if pe_dim is None:
        pe_dim = max(2, (hidden_dim // in_features) // 2 * 2)
    pe_dim = check_int("pe_dim", pe_dim, minimum=2)
    if pe_dim % 2:
        raise ConfigError(f"model.pe_dim must be even (cos and sin per frequency), got {pe_dim}")
    return pe_dim


#: floats the widest per-coordinate intermediate of one decode pass may hold (64 MB in
#: float32): ``decode_chunked`` splits the coordinates so that batch x coordinates x
#: ``coord_width()`` stays under it, which bounds a render's memory whatever its size
DECODE_FLOATS = 2**24


class GeneratedINR(INR):
    """What a hyper-network needs from a decoder.

    ``token_groups``: ``(name, count, width)`` of the raw tokens one instance consists of;
    ``represent(raw)`` turns them (``{name: (B, count, width)}``) into the instance's
    parameters; ``decode(rep, coords)`` renders ``(B, N, d)`` coordinates;
    ``coord_width()`` is the widest intermediate's floats per coordinate and instance.
    Alone, ``forward`` renders with the learned ``instance`` (batch of one)."""

    token_groups: list[tuple[str, int, int]]

    def _init_instance(self) -> None:
        self.instance = nn.ParameterDict({
            name: nn.Parameter(self.instance_init(name, count, width))
            for name, count, width in self.token_groups})

    def instance_init(self, name: str, count: int, width: int) -> torch.Tensor:
        return torch.randn(count, width)

    def represent(self, raw: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def decode(self, rep: dict[str, torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def coord_width(self) -> int:
        raise NotImplementedError

    def decode_chunked(self, rep: dict[str, torch.Tensor], coords: torch.Tensor,
                       chunk: int | None = None) -> torch.Tensor:
        """``decode`` over ``(B, N, d)`` coordinates ``chunk`` at a time (default: as many as
        keep ``B x chunk x coord_width()`` under ``DECODE_FLOATS``). Each coordinate's output
        depends on the instance and that coordinate alone, so the pieces are the same values
        (and, under autograd, the same gradients) as one pass."""
        if chunk is None:
            chunk = max(1, DECODE_FLOATS // (coords.shape[0] * self.coord_width()))
        if coords.shape[1] <= chunk:
            return self.decode(rep, coords)
        return torch.cat([self.decode(rep, c) for c in coords.split(chunk, dim=1)], dim=1)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        lead = coords.shape[:-1]
        rep = self.represent({k: v.unsqueeze(0) for k, v in self.instance.items()})
        out = self.decode(rep, coords.reshape(1, -1, coords.shape[-1]))
        return out.reshape(*lead, self.out_features)

    def render_batch(self, rep: dict[str, torch.Tensor], shape: Sequence[int],
                     chunk: int | None = None) -> torch.Tensor:
        """``(B, *shape, C)`` on the pixel-centre grid of ``shape`` (any size: super-resolution
        is a denser ``shape``); ``chunk``: coordinates decoded at once (``decode_chunked``)."""
        batch = next(iter(rep.values())).shape[0]
        ref = next(self.parameters())
        grid = pixel_grid(shape, device=ref.device, dtype=ref.dtype).reshape(1, -1, len(shape))
        out = self.decode_chunked(rep, grid.expand(batch, -1, -1), chunk)
        return out.reshape(batch, *shape, self.out_features)

    def instance_floats(self) -> int:
        """Values the hyper-network emits per instance (the raw tokens)."""
        return sum(count * width for _, count, width in self.token_groups)

    def instance_params(self) -> int:
        """Per-instance parameters the decoder renders with (``represent``'s output)."""
        raise NotImplementedError

    def instance_macs(self) -> float:
        """MACs per instance spent once, before any coordinate (``represent`` and, for ANR,
        the keys and values of the tokens)."""
        raise NotImplementedError


class LocalizedAttention(nn.Module):
    """The LAL: cross-attention from encoded coordinates to the tokens with the L-softmax,
    ``n_heads`` x ``head_dim``, no biases on q/k/v (official ``SignalAttn``)."""

    def __init__(self, query_dim: int, token_dim: int, n_heads: int, head_dim: int,
                 threshold: float | None):
        super().__init__()
        inner = n_heads * head_dim
        self.n_heads, self.head_dim, self.threshold = n_heads, head_dim, threshold
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(token_dim, inner, bias=False)
        self.to_v = nn.Linear(token_dim, inner, bias=False)
        self.to_out = nn.Linear(inner, token_dim)

    def keys_values(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, T, D)`` -> keys and values ``(B, heads, T, head_dim)``: once per instance."""
        def split(t):
            return t.unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)

        return split(self.to_k(tokens)), split(self.to_v(tokens))

    #: in training, recompute A'' in the backward pass instead of keeping it (see forward)
    recompute = True

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``A'' V`` per head: ``(B, heads, N, head_dim)``."""
        attn = l_softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), self.threshold)
        return attn @ v

    def forward(self, queries: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self.to_q(queries).unflatten(-1, (self.n_heads, self.head_dim)).transpose(1, 2)
        if self.recompute and torch.is_grad_enabled() and any(
                t.requires_grad for t in (q, k, v)):
            # the scores and the L-softmax's steps are (B, heads, N, tokens) each, ~7 of them
            # kept for the backward: 50 MB apiece for 8 32x32 images at 6 heads x 256 tokens,
            # 12x the (B, heads, N, head_dim) q that is kept instead; recomputing them in the
            # backward costs one more Q K^T and A V and gives the same gradients
            out = torch.utils.checkpoint.checkpoint(self.attend, q, k, v, use_reentrant=False)
        else:
            out = self.attend(q, k, v)
        return self.to_out(out.transpose(1, 2).flatten(-2))


class ANR(GeneratedINR):
    """Attention-based localized INR (see the module docstring)."""

    def __init__(self, in_features: int = 2, out_features: int = 3, hidden_dim: int = 512,
                 n_layers: int = 5, token_len: int = 256, n_heads: int = 6, head_dim: int = 64,
                 pe_dim: int | None = None, pe_sigma: float = 1024.0,
                 att_threshold: float | None = 0.0015):
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.n_layers = check_int("n_layers", n_layers)
        self.token_len = check_int("token_len", token_len)
        self.n_heads, self.head_dim = check_int("n_heads", n_heads), check_int("head_dim", head_dim)
        self.pe_dim = _pe_dim(pe_dim, in_features, hidden_dim)
        self.pe_sigma = check_number("pe_sigma", pe_sigma)
        if att_threshold is not None:
            att_threshold = check_number("att_threshold", att_threshold)
            if att_threshold >= 1.0 / token_len:
                raise ConfigError(
                    f"model.att_threshold={att_threshold} is >= 1/token_len = "
                    f"{1.0 / token_len:.4g}: a uniform attention row would lose every token; "
                    f"use about 0.384/token_len (0.0015 for 256 tokens) or null")
        self.att_threshold = att_threshold
        self.pos_dim = in_features * self.pe_dim
        self.attn = LocalizedAttention(self.pos_dim, hidden_dim, n_heads, head_dim, att_threshold)
        layers: list[nn.Module] = []
        for _ in range(n_layers - 1):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.ReLU()]
        self.mlp = nn.Sequential(*layers, nn.Linear(hidden_dim, out_features))
        # direct_wtoken: T = w * R + b, shared across instances
        self.token_w = nn.Parameter(torch.ones(token_len, hidden_dim))
        self.token_b = nn.Parameter(torch.randn(token_len, hidden_dim))
        self.token_groups = [("tokens", token_len, hidden_dim)]
        self._init_instance()

    def represent(self, raw):
        tokens = self.token_w * raw["tokens"] + self.token_b
        k, v = self.attn.keys_values(tokens)
        return {"tokens": tokens, "k": k, "v": v}

    def decode(self, rep, coords):
        pe = positional_encoding(coords, self.pe_dim, self.pe_sigma)
        return self.mlp(self.attn(pe, rep["k"], rep["v"]))

    def coord_width(self) -> int:
        return max(self.n_heads * self.token_len, self.pos_dim, self.hidden_dim)  # the scores

    def instance_params(self) -> int:
        return self.token_len * self.hidden_dim

    def instance_macs(self) -> float:
        inner = self.n_heads * self.head_dim
        return 2.0 * self.token_len * self.hidden_dim * inner  # keys and values

    def macs_per_sample(self) -> float:
        """Per coordinate (weights only): the query, Q K^T and A V over the tokens, the output
        projection and the global MLP. The tokens' keys and values are ``instance_macs``."""
        inner = self.n_heads * self.head_dim
        return float(self.pos_dim * inner + 2 * self.token_len * inner + inner * self.hidden_dim
                     + (self.n_layers - 1) * self.hidden_dim ** 2
                     + self.hidden_dim * self.out_features)


class TransINR(GeneratedINR):
    """The linear baseline: a ReLU MLP whose weights the tokens modulate (module docstring)."""

    def __init__(self, in_features: int = 2, out_features: int = 3, hidden_dim: int = 512,
                 n_layers: int = 6, n_groups: int = 128, pe_dim: int | None = None,
                 pe_sigma: float = 1024.0):
        super().__init__()
        self.in_features = check_int("in_features", in_features)
        self.out_features = check_int("out_features", out_features)
        self.hidden_dim = check_int("hidden_dim", hidden_dim)
        self.n_layers = check_int("n_layers", n_layers)
        self.n_groups = check_int("n_groups", n_groups)
        self.pe_dim = _pe_dim(pe_dim, in_features, hidden_dim)
        self.pe_sigma = check_number("pe_sigma", pe_sigma)
        dims = [in_features * self.pe_dim] + [hidden_dim] * (n_layers - 1) + [out_features]
        self.shapes = list(zip(dims[:-1], dims[1:]))
        self.base_w = nn.ParameterList()
        self.base_b = nn.ParameterList()
        self.token_groups = []
        for i, (fan_in, fan_out) in enumerate(self.shapes):
            layer = nn.Linear(fan_in, fan_out)  # PyTorch's init, as the official init_wb
            self.base_w.append(nn.Parameter(layer.weight.detach().t().contiguous()))
            self.base_b.append(nn.Parameter(layer.bias.detach().clone()))
            groups = min(n_groups, fan_out)
            if fan_out % groups:
                raise ConfigError(f"model.n_groups={n_groups} must divide every layer's width "
                                  f"({fan_out}); choose a divisor of model.hidden_dim")
            self.token_groups.append((f"layer{i}", groups, fan_in))
        self._init_instance()

    def instance_init(self, name, count, width):
        return torch.ones(count, width)  # alone: the normalised base weights at the start

    def represent(self, raw):
        rep = {}
        for i, (_, fan_out) in enumerate(self.shapes):
            u = raw[f"layer{i}"].transpose(-1, -2)  # (B, in, g)
            u = u.repeat(1, 1, fan_out // u.shape[-1])  # output j uses token j mod g
            rep[f"w{i}"] = F.normalize(self.base_w[i] * u, dim=1)
        return rep

    def decode(self, rep, coords):
        h = positional_encoding(coords, self.pe_dim, self.pe_sigma)
        for i in range(len(self.shapes)):
            h = h @ rep[f"w{i}"] + self.base_b[i]
            if i < len(self.shapes) - 1:
                h = torch.relu(h)
        return h

    def coord_width(self) -> int:
        return max(max(shape) for shape in self.shapes)

    def instance_params(self) -> int:
        return sum(fan_in * fan_out for fan_in, fan_out in self.shapes)

    def instance_macs(self) -> float:
        return 0.0  # the modulation is elementwise (no multiply-accumulate products)

    def macs_per_sample(self) -> float:
        """Per coordinate (weights only): one product per weight of the generated MLP."""
        return float(sum(fan_in * fan_out for fan_in, fan_out in self.shapes))


@register_model(name="anr")
def anr(in_features: int = 2, out_features: int = 3, hidden_dim: int = 512, n_layers: int = 5,
        token_len: int = 256, n_heads: int = 6, head_dim: int = 64, pe_dim: int | None = None,
        pe_sigma: float = 1024.0, att_threshold: float | None = 0.0015) -> ANR:
    """ANR decoder (ECCV 2024): PE -> localized attention over the tokens -> global ReLU MLP."""
    return ANR(in_features, out_features, hidden_dim, n_layers, token_len, n_heads, head_dim,
               pe_dim, pe_sigma, att_threshold)


@register_model(name="transinr")
def transinr(in_features: int = 2, out_features: int = 3, hidden_dim: int = 512,
             n_layers: int = 6, n_groups: int = 128, pe_dim: int | None = None,
             pe_sigma: float = 1024.0) -> TransINR:
    """Trans-INR-style decoder: PE -> ReLU MLP with token-modulated weight columns."""
    return TransINR(in_features, out_features, hidden_dim, n_layers, n_groups, pe_dim, pe_sigma)
