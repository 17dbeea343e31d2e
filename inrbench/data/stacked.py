"""The batches of several data modules side by side, for a stack of runs trained as one
(:mod:`inrbench.run.stacked`): item ``i`` is every member's item ``i``, tensors stacked on a new
first axis (member ``j`` at ``[j]``), so each member draws exactly the batches it would draw
alone (its data module, its seed, the same step index)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import Dataset

from inrbench.data.base import FullSignal, step_loader


class StackedBatches(Dataset):
    """Item ``i`` of every dataset in ``datasets``, stacked; values other than tensors (a
    block-sampled batch's level) are the members' common value."""

    def __init__(self, datasets: list[Dataset]):
        self.datasets = list(datasets)
        self.length = min(len(d) for d in self.datasets)
        # the whole signal every step: stacked once, not copied each step
        self._full = None
        if all(isinstance(d, FullSignal) for d in self.datasets):
            self._full = {"values": torch.stack([d.signal for d in self.datasets])}

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        if self._full is not None:
            return self._full
        items = [d[i] for d in self.datasets]
        out = {}
        for k, v in items[0].items():
            if torch.is_tensor(v):
                out[k] = torch.stack([item[k] for item in items])
            elif all(item[k] == v for item in items):
                out[k] = v
            else:
                raise ValueError(f"the members' batches differ in {k!r}: {[it[k] for it in items]}")
        return out


class StackedData(L.LightningDataModule):
    """The training and validation batches of ``modules`` (one per member), stacked. Each
    member's loader starts where a resumed run of it would (``trainer``'s step)."""

    def __init__(self, modules: list):
        super().__init__()
        self.modules = list(modules)

    def _stacked(self, which: str):
        sets = []
        for dm in self.modules:
            dm.trainer = self.trainer
            sets.append(getattr(dm, which)().dataset)
        return step_loader(StackedBatches(sets), self.trainer if which == "train_dataloader"
                           else None)

    def train_dataloader(self):
        return self._stacked("train_dataloader")

    def val_dataloader(self):
        return self._stacked("val_dataloader")
