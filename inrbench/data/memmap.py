"""Signals bigger than memory: ``--data memmap data.path=big.npy`` (an array ``(*shape, C)``
or ``(*shape)``), or a raw file with ``data.shape=[H, W, C] data.dtype=uint8``.

With ``sampling: blocks``, ``random`` or ``tile`` the signal is never loaded: each batch reads
only the samples it draws from the file (:class:`inrbench.data.mapped.MappedSignal`), so a
block-sampled run's memory does not grow with the signal. ``sampling: full`` and the
full-signal evaluations load it whole (see ``docs/big-signals.md`` for streamed ones).
"""

from __future__ import annotations

from pathlib import Path

import torch

from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.mapped import AXES, MappedSignal, open_samples
from inrbench.data.registry import register_datamodule
from inrbench.errors import ConfigError


@register_datamodule(name="memmap")
class MemmapDataModule(SignalDataModule):
    """A signal in a ``.npy`` or raw file on disk, read per batch (see the module)."""

    def __init__(self, path: str | None = None, shape: list[int] | None = None,
                 dtype: str | None = None, modality: str = "image", **kwargs):
        super().__init__(**kwargs)
        if path is None:
            raise ConfigError("data 'memmap' needs a file: add data.path=/path/to/signal.npy "
                              "(or a raw file with data.shape and data.dtype)")
        if modality not in AXES:
            raise ConfigError(f"data.modality must be one of {', '.join(AXES)}, got "
                              f"{modality!r}")
        self.path, self.modality = Path(path).expanduser(), modality
        self.samples = open_samples(self.path, shape, dtype, modality)

    def describe(self) -> str:
        return f"memmap {self.path.name}"

    def spec(self) -> SignalSpec:
        *shape, channels = self.samples.shape
        return SignalSpec(tuple(shape), channels, self.modality, 1.0)

    def load_signal(self) -> torch.Tensor:
        return self.samples.load()

    def setup(self, stage: str | None = None) -> None:
        if self.signal is not None:
            return
        if self.sampling == "full":
            super().setup(stage)
        else:  # batches read the file; only the evaluations load it (val_dataloader)
            self.signal = self.samples

    def val_dataloader(self):
        self.setup()
        if isinstance(self.signal, MappedSignal):  # a full-signal evaluation needs it all
            return self._loader(FullSignalOf(self.signal))
        return super().val_dataloader()


class FullSignalOf(torch.utils.data.Dataset):
    """One item: the whole mapped signal, loaded when the evaluation asks for it."""

    def __init__(self, signal: MappedSignal):
        self.signal = signal

    def __len__(self):
        return 1

    def __getitem__(self, i):
        return {"values": self.signal.load()}
