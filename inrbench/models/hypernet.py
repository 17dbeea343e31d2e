"""The transformer hyper-network of ANR (Zhang et al., ECCV 2024, sec. 3.3; official
``models/hyper_network.py`` and ``models/HelperModels.py``), after Trans-INR (Chen & Wang 2022).

One forward pass maps an image to the raw tokens of its instance, no per-instance optimisation:

    tokenizer:  patches p x p (zero padding ``padding``) -> Linear(p p C, D) + learned pos-emb
    encoder:    ``enc_depth`` pre-LN blocks  x += SA(LN x);  x += FF(LN x)
    decoder:    learned queries (one per raw token), ``dec_depth`` pre-LN blocks
                q += SA(LN q);  q += CA(LN q, encoded);  q += FF(LN q)
    heads:      per token group, LN -> Linear(D, width)  (the official ``wtoken_postfc``)

SA/CA: multi-head attention, ``n_heads`` x ``head_dim``, no q/k/v biases; FF: Linear(D,
``ff_dim``), GELU, Linear(``ff_dim``, D). The encoded image is not normalised before the
cross-attention (as the official ``PreNorm`` normalises only its query). The decoder
(``inrbench.models.anr``) turns the raw tokens into the instance (``represent``).
The official CelebA-128 setting: p = 10, padding 1 (169 patches), D = 512, 6 + 6 blocks, 6 x 64
heads, ``ff_dim`` 3072.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim: int, n_heads: int, head_dim: int):
        super().__init__()
        inner = n_heads * head_dim
        self.n_heads = n_heads
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        context = x if context is None else context
        q = rearrange(self.to_q(x), "b n (h d) -> b h n d", h=self.n_heads)
        k, v = (rearrange(t, "b n (h d) -> b h n d", h=self.n_heads)
                for t in self.to_kv(context).chunk(2, dim=-1))
        # each batch row attends only within itself: instances never mix
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))


def feed_forward(dim: int, ff_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))


class EncoderBlock(nn.Module):
    def __init__(self, dim, n_heads, head_dim, ff_dim):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), Attention(dim, n_heads, head_dim)
        self.norm2, self.ff = nn.LayerNorm(dim), feed_forward(dim, ff_dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ff(self.norm2(x))


class DecoderBlock(nn.Module):
    def __init__(self, dim, n_heads, head_dim, ff_dim):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(dim), Attention(dim, n_heads, head_dim)
        self.norm2, self.cross_attn = nn.LayerNorm(dim), Attention(dim, n_heads, head_dim)
        self.norm3, self.ff = nn.LayerNorm(dim), feed_forward(dim, ff_dim)

    def forward(self, q, encoded):
        q = q + self.self_attn(self.norm1(q))
        q = q + self.cross_attn(self.norm2(q), encoded)
        return q + self.ff(self.norm3(q))


class ImgTokenizer(nn.Module):
    """Non-overlapping p x p patches (after ``padding`` zeros on each side) -> D-dim tokens."""

    def __init__(self, image_shape: Sequence[int], channels: int, patch_size: int,
                 padding: int, dim: int):
        super().__init__()
        self.patch_size, self.padding = patch_size, padding
        h, w = ((n + 2 * padding) // patch_size for n in image_shape)
        self.n_patches = h * w
        self.prefc = nn.Linear(patch_size * patch_size * channels, dim)
        self.pos_emb = nn.Parameter(torch.randn(self.n_patches, dim))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> ``(B, patches, D)``."""
        patches = F.unfold(images, self.patch_size, stride=self.patch_size,
                           padding=self.padding)
        return self.prefc(patches.transpose(1, 2)) + self.pos_emb


class HyperNetwork(nn.Module):
    """Image ``(B, H, W, C)`` in [0, 1] -> raw tokens ``{group: (B, count, width)}``."""

    def __init__(self, image_shape: Sequence[int], channels: int,
                 token_groups: list[tuple[str, int, int]], dim: int = 512,
                 patch_size: int = 10, padding: int = 1, enc_depth: int = 6,
                 dec_depth: int = 6, n_heads: int = 6, head_dim: int = 64,
                 ff_dim: int = 3072):
        super().__init__()
        self.image_shape, self.channels = tuple(image_shape), channels
        self.tokenizer = ImgTokenizer(image_shape, channels, patch_size, padding, dim)
        self.encoder = nn.ModuleList(EncoderBlock(dim, n_heads, head_dim, ff_dim)
                                     for _ in range(enc_depth))
        self.decoder = nn.ModuleList(DecoderBlock(dim, n_heads, head_dim, ff_dim)
                                     for _ in range(dec_depth))
        self.groups = [(name, count) for name, count, _ in token_groups]
        self.queries = nn.Parameter(torch.randn(sum(c for _, c in self.groups), dim))
        self.heads = nn.ModuleDict({name: nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width))
                                    for name, _, width in token_groups})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        # the official code feeds images normalised to [-1, 1]
        x = self.tokenizer(rearrange(images * 2 - 1, "b h w c -> b c h w"))
        for block in self.encoder:
            x = block(x)
        q = self.queries.expand(len(images), -1, -1)
        for block in self.decoder:
            q = block(q, x)
        raw, start = {}, 0
        for name, count in self.groups:
            raw[name] = self.heads[name](q[:, start:start + count])
            start += count
        return raw

    def macs_per_image(self) -> float:
        """Multiply-accumulates of one image's forward pass (matrix products counted by
        ``torch.utils.flop_counter`` on meta tensors)."""
        import copy

        from torch.utils.flop_counter import FlopCounterMode

        meta = copy.deepcopy(self).to("meta").requires_grad_(False)
        image = torch.zeros(1, *self.image_shape, self.channels, device="meta")
        with FlopCounterMode(display=False) as counter:
            meta(image)
        return counter.get_total_flops() / 2


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["HyperNetwork", "ImgTokenizer", "n_params"]
