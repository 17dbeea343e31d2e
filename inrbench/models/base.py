"""Common interface of every coordinate network in inrbench.

Coordinates follow SIREN's convention: sample ``j`` of an axis of size ``n`` sits at
``-1 + 2 j / (n - 1)`` (a size-1 axis sits at 0). ``forward`` maps any batch of coordinates
``(..., in_features)`` to ``(..., out_features)``; ``render(shape)`` returns the whole signal
``(*shape, out_features)``. Grid-aware models (ASMR) override ``render`` with a cheaper path.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def make_grid(shape: Sequence[int], device=None, dtype=torch.float32) -> torch.Tensor:
    """Coordinates of every sample of a signal of ``shape``: ``(*shape, len(shape))`` in [-1, 1]."""
    axes = [
        torch.linspace(-1.0, 1.0, n, device=device, dtype=dtype)
        if n > 1
        else torch.zeros(1, device=device, dtype=dtype)
        for n in shape
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


def coords_to_index(coords: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`make_grid`: integer sample index per axis (rounded, clamped)."""
    sizes = torch.tensor(list(shape), device=coords.device, dtype=coords.dtype)
    idx = torch.round((coords + 1.0) * 0.5 * (sizes - 1).clamp(min=0))
    idx = torch.minimum(idx.clamp(min=0), (sizes - 1).clamp(min=0))
    return idx.long()


def mlp_macs(dims: list[int], include_bias: bool = False) -> int:
    """MACs of a dense MLP with layer widths ``dims`` for one sample."""
    return sum(a * b + (b if include_bias else 0) for a, b in zip(dims[:-1], dims[1:]))


#: samples per piece when a whole signal is rendered without gradients (evaluation, latency):
#: signals up to this size render in one piece; larger ones keep memory bounded.
EVAL_CHUNK = 2**20


def name_model(model: nn.Module, name: str) -> nn.Module:
    """Remember the name the user gave ``model`` (``finer``, ``my_inr:Net``), for messages."""
    model.inrbench_name = str(name)
    return model


def model_label(model: nn.Module) -> str:
    """The name the user gave the model (:func:`name_model`), else its class's: what a line
    refusing the model calls it (a wrapped module is not called ``CoordinateModule``)."""
    name = getattr(model, "inrbench_name", None)
    if name:
        return name
    inner = model.module if isinstance(model, CoordinateModule) else model
    return type(inner).__name__


class INR(nn.Module):
    """Base class: a coordinate network with a per-sample forward and a full-signal render."""

    in_features: int
    out_features: int
    #: the backend that actually runs (e.g. "torch" or "tcnn"); recorded in results.
    backend: str = "torch"
    #: the integer constructor argument that sets the model's size (``hidden_dim`` for an MLP,
    #: ``log2_hashmap_size`` for a hash grid): ``inrbench bench --ladder`` varies it to match
    #: each budget, searching ``size_knob_range``. None: the model is benched at its own size.
    #: A mapping from cost axis (params, macs, flops) to knob, with ``size_knob_range`` a
    #: mapping from knob to range, sizes a family along the knob that moves each cost.
    size_knob: str | dict[str, str] | None = None
    size_knob_range: tuple[int, int] | dict[str, tuple[int, int]] = (1, 4096)

    def render(self, shape: Sequence[int], chunk: int | None = None) -> torch.Tensor:
        """The whole signal, ``(*shape, out_features)``; ``chunk`` bounds memory without grad."""
        device = next(self.parameters()).device
        grid = make_grid(shape, device=device).reshape(-1, len(shape))
        if chunk is None or grid.shape[0] <= chunk:
            out = self(grid)
        else:
            out = torch.cat([self(part) for part in grid.split(chunk)])
        return out.reshape(*shape, self.out_features)

    def macs_per_sample(self) -> float:
        """MACs per sample in the convention of the paper that introduced the model's table."""
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class CoordinateModule(INR):
    """Any ``nn.Module`` with a ``forward(coords)`` seen as an :class:`INR`.

    ``render(shape)`` is the module's forward on ``make_grid(shape)``, reshaped to
    ``(*shape, out_features)`` (``(*shape, -1)`` when the width is not known beforehand).
    ``out_features`` is the given one, else the module's own attribute when it has one.
    ``macs_per_sample`` is the module's own when it has one (a plugin's paper convention
    reaches its records); otherwise it raises NotImplementedError, so profiles report the
    measured MACs only.
    """

    def __init__(self, module: nn.Module, out_features: int | None = None):
        super().__init__()
        self.module = module
        width = out_features if out_features is not None else getattr(module, "out_features",
                                                                      None)
        if width is not None:
            self.out_features = int(width)
        in_features = getattr(module, "in_features", None)
        if in_features is not None:
            self.in_features = int(in_features)

    def forward(self, coords: torch.Tensor) -> torch.Tensor:
        return self.module(coords)

    def render(self, shape: Sequence[int], chunk: int | None = None) -> torch.Tensor:
        ref = next(self.parameters(), None)
        device = ref.device if ref is not None else None
        dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
        grid = make_grid(shape, device=device, dtype=dtype).reshape(-1, len(shape))
        if chunk is None or grid.shape[0] <= chunk:
            out = self(grid)
        else:
            out = torch.cat([self(part) for part in grid.split(chunk)])
        return out.reshape(*shape, getattr(self, "out_features", -1))

    def macs_per_sample(self, *args, **kwargs) -> float:
        own = getattr(self.module, "macs_per_sample", None)
        if not callable(own):
            raise NotImplementedError("no paper convention for a wrapped module: measured only")
        return own(*args, **kwargs)
