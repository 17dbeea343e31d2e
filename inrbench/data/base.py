"""Signals as LightningDataModules.

Every data module describes its signal by a :class:`SignalSpec` known *without* reading files
(profiling needs only the shape), loads it in ``setup`` as a float tensor ``(*shape, C)``, and
serves either the whole signal every step (``sampling: full``, as the official ASMR code trains
images), random batches of samples (``sampling: random``) or random whole tiles (``sampling:
tile``, a block of ``tile`` samples per axis) whose coordinates are computed on the fly, so
large signals never materialise all their coordinates.

Random sampling walks a fresh pseudo-random permutation of the samples each epoch (an epoch
is one pass over every sample, as the paper's epochs are), so every sample is seen once per
epoch; the permutation is evaluated on the fly (:func:`permute`), never stored. Under
multi-process training (``--devices N``) every process iterates the same steps and takes its
own contiguous slice of each step's batch (or tile), so N processes together draw exactly
the samples one process would, and averaged gradients equal the single-process ones.
Full-signal training stays single-process: a full render is one pass over the whole grid
(ASMR's activation sharing needs all of it), which does not split across processes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from inrbench.data.mapped import MappedSignal, take
from inrbench.errors import ConfigError


@dataclass(frozen=True)
class SignalSpec:
    shape: tuple[int, ...]  # the sample grid, e.g. (H, W)
    channels: int
    modality: str = "image"  # selects the metrics (inrbench.metrics)
    data_range: float = 1.0  # max - min of the values, for PSNR
    rate: float | None = None  # samples per second along the first axis (audio), for exports

    @property
    def n_samples(self) -> int:
        return math.prod(self.shape)


def index_to_coords(flat: torch.Tensor, shape) -> torch.Tensor:
    """Flat sample indices -> coordinates in [-1, 1] (the convention of ``make_grid``)."""
    coords = []
    for n in reversed(shape):
        coords.append(flat % n)
        flat = torch.div(flat, n, rounding_mode="floor")
    idx = torch.stack(coords[::-1], dim=-1).float()
    sizes = torch.tensor(shape, dtype=torch.float32)
    return torch.where(sizes > 1, idx / (sizes - 1).clamp(min=1) * 2 - 1, torch.zeros_like(idx))


class FullSignal(Dataset):
    """The whole signal, ``length`` times: one item is one full-signal training step."""

    def __init__(self, signal: torch.Tensor, length: int):
        self.signal, self.length = signal, length

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        return {"values": self.signal}


def permute(k: torch.Tensor, n: int, key: int) -> torch.Tensor:
    """Position ``k`` (int64) of a pseudo-random permutation of ``[0, n)`` chosen by ``key``:
    a 4-round Feistel network on the smallest even bit width covering ``n``, cycle-walked back
    into ``[0, n)`` (a bijection; under 4 walks on average). O(1) memory, any ``n``."""
    bits = max(2, (n - 1).bit_length())
    bits += bits % 2
    half, mask = bits // 2, (1 << (bits // 2)) - 1
    rng = random.Random(key)
    keys = [rng.getrandbits(31) for _ in range(4)]

    def once(x):
        left, right = x >> half, x & mask
        for rk in keys:
            f = ((right * 0x2545F491 + rk) ^ (right >> 3)) * 0x9E3779B1
            left, right = right, (left ^ (f >> 7)) & mask
        return (left << half) | right

    x = once(k)
    outside = x >= n
    while bool(outside.any()):
        x = torch.where(outside, once(x), x)
        outside = x >= n
    return x


class RandomSamples(Dataset):
    """Batches of ``batch_size`` samples walking a new random permutation of all samples
    every epoch (so each is seen once per epoch); coordinates computed only for the batch.
    Process ``rank`` of ``world`` gets its contiguous ``batch_size // world`` share."""

    def __init__(self, signal: torch.Tensor, shape, batch_size: int, length: int, seed: int = 0,
                 rank: int = 0, world: int = 1):
        self.signal = signal
        self.shape, self.batch_size, self.length, self.seed = tuple(shape), batch_size, length, seed
        if batch_size % world:
            raise ConfigError(f"data.batch_size={batch_size} must split evenly over {world} "
                              f"processes; choose a multiple of {world}")
        self.rank, self.world = rank, world

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        # a function of the global step index only (see StepSampler), so a resumed run draws
        # the same batches as an uninterrupted one
        n, share = math.prod(self.shape), self.batch_size // self.world
        pos = i * self.batch_size + self.rank * share + torch.arange(share, dtype=torch.long)
        epoch, k = pos // n, pos % n
        idx = torch.empty_like(k)
        for e in torch.unique(epoch).tolist():  # a batch spans at most a few epochs
            sel = epoch == e
            idx[sel] = permute(k[sel], n, self.seed * 1_000_003 + e)
        return {"coords": index_to_coords(idx, self.shape), "values": take(self.signal, idx)}


class RandomTiles(Dataset):
    """One random axis-aligned block of ``tile`` samples per step (e.g. 512x512 pixels of a
    megapixel image); only the tile's coordinates are computed."""

    def __init__(self, signal: torch.Tensor, shape, tile, length: int, seed: int = 0,
                 rank: int = 0, world: int = 1):
        self.signal, self.shape = signal, tuple(shape)
        self.tile, self.length, self.seed = tuple(int(t) for t in tile), length, seed
        if math.prod(self.tile) % world:
            raise ConfigError(f"data.tile={list(self.tile)} holds {math.prod(self.tile)} "
                              f"samples, which do not split evenly over {world} processes")
        self.rank, self.world = rank, world

    def __len__(self):
        return self.length

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        starts = [int(torch.randint(n - t + 1, (1,), generator=g)) for n, t in
                  zip(self.shape, self.tile)]
        slices = tuple(slice(s, s + t) for s, t in zip(starts, self.tile))
        block = (self.signal.block(slices) if isinstance(self.signal, MappedSignal)
                 else self.signal[slices])
        axes = [torch.arange(s, s + t) for s, t in zip(starts, self.tile)]
        flat = torch.zeros(1, dtype=torch.long)
        for n, ax in zip(self.shape, axes):  # row-major flat index of every tile sample
            flat = (flat[:, None] * n + ax[None, :]).reshape(-1)
        share = slice(self.rank * flat.numel() // self.world,
                      (self.rank + 1) * flat.numel() // self.world)
        return {"coords": index_to_coords(flat[share], self.shape),
                "values": block.reshape(-1, self.signal.shape[-1])[share]}


class RandomBlocks(Dataset):
    """Whole cells of one ASMR level, ``n_cells`` per step, scattered across the signal.

    A cell is an aligned block of ``cell`` samples per axis (a level-k cell of ASMR's
    decomposition holds exactly the subtree of one level-k coordinate, sec. 3.1). Steps walk a
    fresh random permutation of all cells every epoch, so each sample is seen once per epoch
    as with random sampling. A batch holds ``cells`` (``(n, d)`` per-axis cell indices) and
    ``values`` in cell-major, row-major-within-cell order; when ``level`` is None (a model
    without activation sharing) it also holds the same samples' ``coords``. Process
    ``rank`` of ``world`` takes its contiguous ``n_cells // world`` share of the cells.
    """

    def __init__(self, signal: torch.Tensor, shape, cell, n_cells: int, length: int,
                 seed: int = 0, rank: int = 0, world: int = 1, level: int | None = None):
        self.signal, self.shape = signal, tuple(int(n) for n in shape)
        self.cell = tuple(int(g) for g in cell)
        self.grid = tuple(n // g for n, g in zip(self.shape, self.cell))  # cells per axis
        self.n_total = math.prod(self.grid)
        self.n_cells, self.length, self.seed, self.level = n_cells, length, seed, level
        if n_cells % world:
            raise ConfigError(f"block sampling draws {n_cells} cells per step, which do not "
                              f"split evenly over {world} processes; change data.batch_size")
        self.rank, self.world = rank, world
        # row-major offsets of the samples of one cell, relative to its first sample
        offsets = torch.zeros(1, dtype=torch.long)
        for n, g in zip(self.shape, self.cell):
            offsets = (offsets[:, None] * n + torch.arange(g)[None, :]).reshape(-1)
        self.offsets = offsets

    def __len__(self):
        return self.length

    def cell_indices(self, i: int) -> torch.Tensor:
        """Flat indices (into the cell grid) of the cells of global step ``i``, this process."""
        share = self.n_cells // self.world
        pos = i * self.n_cells + self.rank * share + torch.arange(share, dtype=torch.long)
        epoch, k = pos // self.n_total, pos % self.n_total
        idx = torch.empty_like(k)
        for e in torch.unique(epoch).tolist():
            sel = epoch == e
            idx[sel] = permute(k[sel], self.n_total, self.seed * 1_000_003 + 7919 + e)
        return idx

    def __getitem__(self, i):
        flat_cells = self.cell_indices(i)
        cells = []
        rest = flat_cells
        for c in reversed(self.grid):
            cells.append(rest % c)
            rest = torch.div(rest, c, rounding_mode="floor")
        cells = torch.stack(cells[::-1], dim=-1)  # (n, d)
        flat = self.flat_indices(cells)
        batch = {"cells": cells, "level": self.level,
                 "values": take(self.signal, flat)}
        if self.level is None:  # a model that trains per sample needs the coordinates
            batch["coords"] = index_to_coords(flat, self.shape)
        return batch

    def flat_indices(self, cells: torch.Tensor) -> torch.Tensor:
        """Row-major flat indices of every sample of ``cells`` (``(n, d)``), in batch order."""
        start = torch.zeros(cells.shape[0], dtype=torch.long)
        for n, g, c in zip(self.shape, self.cell, cells.long().unbind(-1)):
            start = start * n + c * g
        return (start[:, None] + self.offsets[None, :]).reshape(-1)

    def coords(self, cells: torch.Tensor) -> torch.Tensor:
        """Coordinates of every sample of ``cells`` (``(n, d)``), in the batch's order."""
        return index_to_coords(self.flat_indices(cells), self.shape)


def choose_cells(cell_shapes: dict[int, list[int]], batch_size: int,
                 min_cells: int = 16) -> tuple[int, list[int], int]:
    """The level whose cells make a step of about ``batch_size`` samples in at least
    ``min_cells`` scattered cells (the coarsest such level: the most sharing), its cell shape
    and the number of cells per step. Returns ``(level, cell, n_cells)``."""
    levels = sorted(cell_shapes)
    fitting = [k for k in levels if math.prod(cell_shapes[k]) * min_cells <= batch_size]
    level = fitting[0] if fitting else levels[-1]
    cell = list(cell_shapes[level])
    return level, cell, max(1, round(batch_size / math.prod(cell)))


class StepSampler(torch.utils.data.Sampler):
    """Global batch indices from ``start`` on, to the end of that epoch of ``length`` batches
    per pass. ``start`` is the batches a resumed run has trained (:func:`batches_done`), and
    the position is the sampler's own, not Lightning's epoch counter (which a resume at an
    epoch's end sets one ahead, and ``set_epoch`` would follow), so a resumed run draws
    exactly the batches an uninterrupted one would."""

    def __init__(self, length: int, start: int = 0):
        self.length, self.next = int(length), int(start)

    def set_epoch(self, epoch: int) -> None:  # Lightning calls it; the position is ours
        pass

    def __len__(self):
        return self.length - self.next % self.length

    def __iter__(self):
        stop = (self.next // self.length + 1) * self.length
        for i in range(self.next, stop):
            self.next = i + 1
            yield i


def identity_collate(x):
    """A loader's ``collate_fn`` for datasets whose items are whole batches already."""
    return x


def step_loader(dataset, trainer=None) -> DataLoader:
    """A loader of ``dataset``'s batches (one item a batch) from the one a resumed run
    stopped at (:func:`batches_done` of ``trainer``; 0 on a fresh run), so a resumed run
    draws the batches an uninterrupted one would (:class:`StepSampler`)."""
    return DataLoader(dataset, batch_size=None,
                      sampler=StepSampler(len(dataset), batches_done(trainer)),
                      num_workers=0, collate_fn=identity_collate)


def batches_done(trainer) -> int:
    """Batches a (resumed) run has trained: restored optimizer steps x micro-batches per step
    (0 without a trainer)."""
    if trainer is None:
        return 0
    return int(trainer.global_step) * int(getattr(trainer, "accumulate_grad_batches", 1))


def files_of(dm) -> list[Path]:
    """The files ``dm`` reads its signal from: its ``files_read()``, else its ``path`` or
    ``file`` attribute when that is an existing file."""
    read = getattr(dm, "files_read", None)
    if callable(read):
        return [Path(p) for p in read()]
    for attr in ("path", "file"):
        p = getattr(dm, attr, None)
        if isinstance(p, (str, Path)) and Path(p).is_file():
            return [Path(p)]
    return []


#: steps of an epoch of full or tile sampling under ``data.steps_per_epoch: auto``
AUTO_EPOCH_STEPS = 100


class SignalDataModule(L.LightningDataModule):
    """Base class. Subclasses implement ``spec`` and ``load_signal`` (and ``prepare_data`` to
    download). ``sampling``: ``full``, ``random`` or ``tile``; ``batch_size``: samples per
    random step; ``tile``: block size per axis for ``sampling: tile``; ``block``: the cell
    size per axis for ``sampling: blocks`` (default: chosen by cost, ``block_cost``: the
    finest cell level costing at most this times the cheapest; ``block_cells``: the cells per
    step below which a finer level is taken for spread, null: never; :mod:`inrbench.blocks`)."""

    def __init__(self, sampling: str = "full", batch_size: int | None = None,
                 steps_per_epoch: int | str = "auto", seed: int = 0,
                 tile: list[int] | None = None,
                 block: list[int] | None = None, block_cost: float = 1.25,
                 block_cells: int | None = 256):
        super().__init__()
        if sampling not in ("full", "random", "tile", "blocks", "auto"):
            raise ConfigError(f"data.sampling must be 'full', 'random', 'tile', 'blocks' or "
                              f"'auto', got {sampling!r}")
        if sampling in ("random", "blocks") and (batch_size is None or batch_size < 1):
            raise ConfigError(f"data.sampling={sampling} needs data.batch_size (samples per "
                              f"step) >= 1")
        if sampling == "tile" and (not tile or any(int(t) < 1 for t in tile)):
            raise ConfigError("data.sampling=tile needs data.tile, the block size per axis, "
                              "e.g. data.tile=[512,512]")
        if block is not None and (not isinstance(block, (list, tuple)) or not block
                                  or any(int(g) < 1 for g in block)):
            raise ConfigError(f"data.block must be the cell size per axis, e.g. "
                              f"data.block=[128,128], got {block!r}")
        self.sampling, self.batch_size, self.tile = sampling, batch_size, tile
        self.block = None if block is None else [int(g) for g in block]
        if not float(block_cost) >= 1.0:
            raise ConfigError(f"data.block_cost is a cost ratio to the cheapest cell level, "
                              f">= 1 (1.25 by default), got {block_cost!r}")
        self.block_cost = float(block_cost)
        if block_cells is not None and (isinstance(block_cells, bool)
                                        or not isinstance(block_cells, int) or block_cells < 1):
            raise ConfigError(f"data.block_cells is the fewest cells per block-sampled step "
                              f"before a finer level is taken (256 by default; null: never), "
                              f"got {block_cells!r}")
        self.block_cells = block_cells
        if steps_per_epoch != "auto" and (isinstance(steps_per_epoch, bool) or not isinstance(
                steps_per_epoch, int) or steps_per_epoch < 1):
            raise ConfigError(f"data.steps_per_epoch must be auto (every sample once per epoch "
                              f"for random and block sampling) or an integer >= 1, got "
                              f"{steps_per_epoch!r}")
        self.steps_per_epoch_setting, self.seed = steps_per_epoch, seed
        self.signal: torch.Tensor | None = None
        # set by configure_blocks (the runner, once the model is known)
        self.block_level: int | None = None
        self.n_cells: int | None = None

    @property
    def epochs_cover_samples(self) -> bool:
        """Whether an epoch of ``auto`` length samples every sample once (random and block
        sampling), so epochs are the papers' (the progress bar and records show them)."""
        return self.sampling in ("random", "blocks")

    @property
    def steps_per_epoch(self) -> int:
        """Steps of one epoch (``data.steps_per_epoch``; ``trainer.max_epochs`` counts them).
        ``auto``: an epoch samples every sample once, as the papers count them (Table 5's 500
        epochs), ``ceil(samples / samples per step)`` for random and block sampling (blocks:
        once the cells are chosen); ``AUTO_EPOCH_STEPS`` for full and tile sampling, whose
        steps have no epoch of their own."""
        if self.steps_per_epoch_setting != "auto":
            return int(self.steps_per_epoch_setting)
        if self.epochs_cover_samples:
            per_step = (self.batch_size if self.sampling == "random" else
                        None if self.n_cells is None else
                        self.n_cells * math.prod(self.block))
            if per_step:
                return max(1, math.ceil(self.spec().n_samples / per_step))
        return AUTO_EPOCH_STEPS

    # -- to implement ---------------------------------------------------------------------
    def spec(self) -> SignalSpec:
        raise NotImplementedError

    def load_signal(self) -> torch.Tensor:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------
    def describe(self) -> str:
        return type(self).__name__

    def setup(self, stage: str | None = None) -> None:
        if self.signal is not None:
            return
        signal = self.load_signal().float().contiguous()
        spec = self.spec()
        expected = (*spec.shape, spec.channels)
        if tuple(signal.shape) != expected:
            raise ConfigError(f"{self.describe()}: loaded signal has shape {tuple(signal.shape)}, "
                              f"expected {expected}")
        self.signal = signal

    def _loader(self, dataset) -> DataLoader:
        return step_loader(dataset, getattr(self, "trainer", None))

    def _shard(self) -> dict:
        """This process's rank and the number of processes (multi-process training)."""
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return {"rank": 0, "world": 1}
        return {"rank": int(trainer.global_rank), "world": int(trainer.world_size)}

    def configure_blocks(self, cell: list[int], n_cells: int, level: int | None) -> None:
        """Block sampling: ``n_cells`` cells of ``cell`` samples per axis each step; ``level``
        is the model's cell level when it shares activations within a cell, else None."""
        shape = self.spec().shape
        if len(cell) != len(shape) or any(n % g for n, g in zip(shape, cell)):
            raise ConfigError(f"data.block={list(cell)} must give one cell size per axis that "
                              f"divides the signal {tuple(shape)}")
        self.block, self.n_cells, self.block_level = list(cell), int(n_cells), level

    def train_dataloader(self) -> DataLoader:
        self.setup()
        if self.sampling == "blocks":
            if self.n_cells is None:
                raise ConfigError("data.sampling=blocks: the cell size is chosen from the model; "
                                  "call configure_blocks (inrbench.run does) first")
            return self._loader(RandomBlocks(self.signal, self.spec().shape, self.block,
                                             self.n_cells, self.steps_per_epoch, self.seed,
                                             level=self.block_level, **self._shard()))
        if self.sampling == "full":
            return self._loader(FullSignal(self.signal, self.steps_per_epoch))
        if self.sampling == "tile":
            shape = self.spec().shape
            if len(self.tile) != len(shape) or any(t > n for t, n in zip(self.tile, shape)):
                raise ConfigError(f"data.tile={list(self.tile)} must give one size per axis, "
                                  f"each within the signal {tuple(shape)}")
            return self._loader(RandomTiles(self.signal, shape, self.tile,
                                            self.steps_per_epoch, self.seed, **self._shard()))
        return self._loader(RandomSamples(self.signal, self.spec().shape, self.batch_size,
                                          self.steps_per_epoch, self.seed, **self._shard()))

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return self._loader(FullSignal(self.signal, 1))
