"""ANI's bits-per-pixel count, from a model alone (no training, no file).

ANI (Table 3, facts note sec. 2b) counts every parameter at 32 bits except the quantized ones
(by default the hidden-layer weights) at ``bits``, and divides by H W C (C = 3 for RGB):
SIREN 4 x 128 on a 768 x 512 Kodak image has 66,819 parameters, so
66,819 * 32 / 1,179,648 = 1.812 bpp at fp32, (65,536 * 8 + 1,283 * 32) / 1,179,648 = 0.479 at
8 bits and 0.257 at 4 bits. No header, no step sizes, no entropy coding are counted; the
files ``inrbench compress`` writes count all of them, so their rates are higher.
"""

from __future__ import annotations

import math

from inrbench.compression.quant import selected, tensor_roles


def ani_bits(model, bits: int | None = None, layers: str = "hidden",
             biases: bool = False) -> int:
    """Bits of ``model`` in ANI's count; ``bits=None`` is full precision (32 bits each)."""
    roles = tensor_roles(model)
    state = model.state_dict()
    quantized = set(selected(model, layers, biases)) if bits is not None else set()
    return sum(state[n].numel() * (bits if n in quantized else 32) for n in roles)


def ani_bpp(model, shape, channels: int, bits: int | None = None, layers: str = "hidden",
            biases: bool = False) -> float:
    """ANI's bpp: :func:`ani_bits` / (H W C)."""
    return ani_bits(model, bits, layers, biases) / (math.prod(shape) * channels)
