"""A signal in a file on disk, read per batch: 8- or 16-bit integer samples (scaled to [0, 1]
by 255 or 65535) or floats, converted to float32 only for the samples a batch draws.

Each access maps the file, copies out what it needs and unmaps it before returning, so the
pages read leave the process with the batch: peak memory follows the batch, not the signal
(the operating system's page cache, shared and reclaimable, keeps what it can). Every tensor
returned is such a copy and owns its memory: a view of the mapping would read unmapped
memory once the mapping is closed (for float32 files a conversion to float32 is no copy).

A file is checked when it is opened: no empty axis, and no NaN or infinite sample in a float
file (scanned in chunks of :data:`SCAN_CHUNK` samples, so memory stays small), because a
non-finite target trains to a NaN score that looks like a result.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from inrbench.errors import ConfigError, DataError

#: on-disk sample types and the value that maps to 1.0
SCALES = {"uint8": 255.0, "uint16": 65535.0, "float16": 1.0, "float32": 1.0}
#: spatial axes per modality (a trailing axis beyond them holds the channels)
AXES = {"image": 2, "video": 3, "audio": 1}
#: samples read at a time when a float file is scanned for non-finite values
SCAN_CHUNK = 1 << 22


class MappedSignal:
    """A ``(*shape, C)`` signal in a file, read per access: ``take(flat)`` returns the samples
    at row-major flat indices as a float32 ``(n, C)`` tensor, ``block(slices)`` a block. Each
    call maps the file and unmaps it before returning (so the pages leave the process)."""

    def __init__(self, path: Path, dtype: str, shape, offset: int = 0):
        self.path, self.dtype, self.offset = Path(path), np.dtype(dtype), int(offset)
        self.shape = tuple(int(n) for n in shape)
        self.scale = SCALES[self.dtype.name]

    def _map(self) -> np.memmap:
        return np.memmap(self.path, dtype=self.dtype, mode="r", offset=self.offset,
                         shape=self.shape)

    def _float(self, a: np.ndarray, copied: bool = False) -> torch.Tensor:
        """``a`` as a float32 tensor of its own memory, safe to use after the mapping is
        closed: a view of the mapping is always copied; ``copied``: ``a`` is a copy already
        (a fancy-indexed read), kept as it is when it is float32."""
        arr = (np.ascontiguousarray(a, dtype=np.float32) if copied else
               np.array(a, dtype=np.float32, order="C", copy=True))
        out = torch.from_numpy(arr)
        return out.div_(self.scale) if self.scale != 1.0 else out

    def take(self, flat: torch.Tensor) -> torch.Tensor:
        mm = self._map()
        try:
            rows = mm.reshape(-1, self.shape[-1])
            return self._float(rows[flat.numpy()], copied=True)  # fancy indexing copies
        finally:
            mm._mmap.close()

    def block(self, slices) -> torch.Tensor:
        mm = self._map()
        try:
            return self._float(mm[tuple(slices)])
        finally:
            mm._mmap.close()

    def load(self) -> torch.Tensor:
        """The whole signal as float32 (full-signal training and evaluation)."""
        return self.block([slice(None)] * len(self.shape))

    def to(self, device) -> torch.Tensor:
        """The whole signal as a float32 tensor on ``device`` (a full-signal evaluation)."""
        return self.load().to(device)


def take(signal, flat: torch.Tensor) -> torch.Tensor:
    """Samples at flat indices ``flat`` of a ``(*shape, C)`` tensor or :class:`MappedSignal`."""
    if isinstance(signal, MappedSignal):
        return signal.take(flat)
    return signal.reshape(-1, signal.shape[-1])[flat]


def open_samples(path, shape=None, dtype=None, modality: str = "image") -> MappedSignal:
    """A :class:`MappedSignal` for a ``.npy`` file (shape and type from its header) or a raw
    file (``shape`` and ``dtype`` given); a trailing channel axis is added when missing."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.path={path} does not exist; give a .npy file, or a raw file "
                        f"with data.shape=[...] and data.dtype=uint8|uint16")
    if path.suffix == ".npy":
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise DataError(f"cannot read {path} as a .npy array ({e})") from None
        dtype, shape, offset = arr.dtype.name, arr.shape, arr.offset
        arr._mmap.close()
    else:
        if shape is None or dtype is None:
            raise ConfigError(f"{path} is a raw file: give data.shape=[H,W,C] and "
                              f"data.dtype=uint8 (or uint16, float16, float32)")
        offset = 0
        need = math.prod(shape) * np.dtype(dtype).itemsize
        if path.stat().st_size < need:
            raise DataError(f"{path} holds {path.stat().st_size:,} bytes, fewer than the "
                            f"{need:,} of data.shape={list(shape)} in {dtype}")
    if str(dtype) not in SCALES:
        raise ConfigError(f"data.dtype must be one of {', '.join(SCALES)}, got {dtype!r}")
    shape = tuple(int(n) for n in shape)
    axes = AXES.get(modality, 2)
    if len(shape) == axes:
        shape = (*shape, 1)
    if len(shape) != axes + 1:
        raise ConfigError(f"a {modality} signal has {axes} axes and an optional channel axis; "
                          f"{path} has shape {shape}")
    if 0 in shape:
        raise DataError(f"{path} has shape {shape}, with an empty axis: it holds no samples; "
                        f"give a file with at least one sample along every axis")
    if np.dtype(dtype).kind == "f":
        check_finite(path, np.dtype(dtype), shape, offset)
    return MappedSignal(path, str(dtype), shape, offset)


def check_finite(path: Path, dtype: np.dtype, shape, offset: int) -> None:
    """Raise DataError naming the first NaN or infinite sample of the float file, read
    :data:`SCAN_CHUNK` samples at a time (never the whole signal at once)."""
    total = math.prod(shape)
    with open(path, "rb") as f:
        f.seek(offset)
        done = 0
        while done < total:
            chunk = np.fromfile(f, dtype=dtype, count=min(SCAN_CHUNK, total - done))
            if chunk.size == 0:
                break
            bad = np.flatnonzero(~np.isfinite(chunk))
            if bad.size:
                where = tuple(int(i) for i in np.unravel_index(done + int(bad[0]), shape))
                raise DataError(f"{path} holds {chunk[bad[0]]} at sample {list(where)} (and "
                                f"maybe more): a signal must be finite; replace the NaN and "
                                f"infinite values")
            done += chunk.size


