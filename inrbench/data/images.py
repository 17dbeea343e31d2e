"""Data sets of images for meta-learning (COIN++ setting; ASMR paper sec. 4.4).

:class:`ImageSet` holds a train and a test split of same-size images ``(N, H, W, C)`` float in
[0, 1] and where they came from. :class:`ImageSetDataModule` serves it to the meta-learning task:
training batches of ``batch_size`` images walking a fresh permutation of the train split every
epoch (step-indexed, so a resumed run draws the batches an uninterrupted one would), and the
first ``eval_images`` test images in batches for validation.

A data module that can serve a set defines ``image_set() -> ImageSet``: ``cifar10`` (the
CIFAR-10 train/test batches, or a stand-in set of 32x32 crops of shipped photos offline) and
``images`` here, any folder of images brought to one size::

    inrbench run --task meta --model asmr --data images data.path=DIR [data.size=[32,32]]
                 [data.resize=resize|crop] [data.test_fraction=0.1]

As a one-signal module (``--task fit``), ``images`` serves image ``data.index`` of its train
split.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from inrbench.data.base import SignalDataModule, SignalSpec, identity_collate, step_loader
from inrbench.data.image import check_max_pixels, open_image
from inrbench.data.registry import register_datamodule
from inrbench.errors import ConfigError, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


@dataclass
class ImageSet:
    """Train and test images ``(N, H, W, C)`` float32 in [0, 1] and their provenance."""

    train: torch.Tensor
    test: torch.Tensor
    name: str
    source: str = "paper"  # "paper" (the data set itself), "stand-in" or "folder"
    note: str = ""  # one line: what the images are when they are not the paper's data set
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for split, x in (("train", self.train), ("test", self.test)):
            if x.dim() != 4 or len(x) == 0:
                raise DataError(f"{self.name}: the {split} split holds no images "
                                f"(shape {tuple(x.shape)})")
        if self.train.shape[1:] != self.test.shape[1:]:
            raise DataError(f"{self.name}: train images {tuple(self.train.shape[1:])} and test "
                            f"images {tuple(self.test.shape[1:])} differ in size")

    @property
    def spec(self) -> SignalSpec:
        return SignalSpec(tuple(self.train.shape[1:3]), int(self.train.shape[3]))

    def record(self) -> dict:
        """What ``metrics.json`` says about the data."""
        return {"data_set": self.name, "data_source": self.source, "data_note": self.note,
                "train_images": len(self.train), "test_images": len(self.test),
                "image_shape": list(self.train.shape[1:]), **self.extra}


class _Batches(Dataset):
    """Item ``i`` (a global step) = the i-th batch of a fresh permutation per epoch."""

    def __init__(self, n: int, batch_size: int, length: int, seed: int):
        self.n, self.batch_size, self.length, self.seed = n, batch_size, length, seed
        self._perm: tuple[int, torch.Tensor] | None = None

    def __len__(self):
        return self.length

    def indices(self, i: int) -> torch.Tensor:
        epoch, k = divmod(i, self.length)
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.n, generator=g))
        return self._perm[1][k * self.batch_size:(k + 1) * self.batch_size]


class _TrainBatches(_Batches):
    def __init__(self, images: torch.Tensor, batch_size: int, seed: int):
        n = len(images)
        super().__init__(n, min(batch_size, n), max(1, n // min(batch_size, n)), seed)
        self.images = images

    def __getitem__(self, i):
        idx = self.indices(i)
        return {"images": self.images[idx], "index": idx}


class _TestBatches(Dataset):
    def __init__(self, images: torch.Tensor, batch_size: int):
        self.images, self.batch_size = images, batch_size

    def __len__(self):
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, i):
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return {"images": self.images[sl], "index": torch.arange(len(self.images))[sl]}


class ImageSetDataModule(L.LightningDataModule):
    """Batches of whole images of an :class:`ImageSet` (see the module docstring). An epoch
    is ``len(train) // batch_size`` steps (COIN++: 781 steps of 64 for CIFAR-10)."""

    def __init__(self, image_set: ImageSet, batch_size: int = 64, seed: int = 0,
                 eval_images: int | None = None):
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"data.batch_size (images per meta-learning step) must be >= 1, "
                              f"got {batch_size}")
        self.set, self.batch_size, self.seed = image_set, int(batch_size), int(seed)
        n_test = len(image_set.test)
        self.eval_images = n_test if eval_images is None else min(int(eval_images), n_test)
        if self.eval_images < 1:
            raise ConfigError(f"task.eval_images must be >= 1 (test images scored), got "
                              f"{eval_images}")

    def spec(self) -> SignalSpec:
        return self.set.spec

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.set.train) // min(self.batch_size, len(self.set.train)))

    def test_images(self) -> torch.Tensor:
        return self.set.test[: self.eval_images]

    def train_dataloader(self) -> DataLoader:
        """Batches from the one a resumed run stopped at (the restored optimizer steps times
        the micro-batches per step), so a resumed run draws the batches an uninterrupted one
        would; 0 on a fresh run."""
        return step_loader(_TrainBatches(self.set.train, self.batch_size, self.seed),
                           getattr(self, "trainer", None))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_TestBatches(self.test_images(), self.batch_size), batch_size=None,
                          shuffle=False, num_workers=0, collate_fn=identity_collate)


def fit_image(im: Image.Image, size: tuple[int, int], mode: str) -> np.ndarray:
    """One image to ``size`` (H, W): ``resize`` = centre crop to the aspect ratio, then
    resample (bicubic); ``crop`` = the centre ``size`` pixels (the image must be that large)."""
    h, w = size
    W, H = im.size
    if mode == "crop":
        if H < h or W < w:
            raise DataError(f"an image of {H}x{W} is smaller than data.size=[{h},{w}]; use "
                            f"data.resize=resize")
        left, top = (W - w) // 2, (H - h) // 2
        return np.asarray(im.crop((left, top, left + w, top + h)))
    scale = min(W / w, H / h)
    cw, ch = round(w * scale), round(h * scale)
    left, top = (W - cw) // 2, (H - ch) // 2
    return np.asarray(im.crop((left, top, left + cw, top + ch)).resize((w, h), Image.BICUBIC))


def read_folder(folder: Path, size: tuple[int, int], mode: str, channels: int | None = None,
                max_pixels: int | None = None) -> tuple[np.ndarray, list[Path]]:
    """Every image file in ``folder`` (sorted, not recursive) -> ``(N, H, W, C)`` uint8; a
    file declaring more than ``max_pixels`` pixels is refused before it is decoded."""
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}; data.path must "
                        f"be a folder of image files")
    out = []
    for f in files:
        try:
            with open_image(f, max_pixels) as im:
                im.load()
                gray = im.mode in ("L", "1", "I", "I;16", "F")
                arr = fit_image(im.convert("L" if gray else "RGB"), size, mode)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot read {f} as an image ({e}); remove or replace it") from None
        out.append(arr[..., None] if arr.ndim == 2 else arr)
    c = channels or max(a.shape[-1] for a in out)  # grayscale files join colour sets as RGB
    out = [np.repeat(a, c, axis=-1) if a.shape[-1] != c else a for a in out]
    return np.stack(out), files


def split_indices(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle; the last ``ceil(n * test_fraction)`` (at least 1) go to test."""
    if n < 2:
        raise DataError(f"a folder needs at least 2 images (train and test), found {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(n - 1, max(1, math.ceil(n * test_fraction)))
    return np.sort(order[: n - n_test]), np.sort(order[n - n_test:])


def _to_float(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.astype(np.float32) / 255.0)


@register_datamodule(name="images")
class ImageFolderDataModule(SignalDataModule):
    """A folder of images brought to one ``size`` [H, W] (``resize``: centre crop to the
    aspect ratio and resample; ``crop``: centre crop). ``train/`` and ``test/`` subfolders
    are used as the splits when present; otherwise a seeded ``test_fraction`` of the files
    is held out. One-signal tasks get train image ``index``. ``max_pixels``: the most pixels
    a file may declare (default PIL's decompression-bomb limit)."""

    def __init__(self, path: str | None = None, size: list[int] = (32, 32), resize: str = "resize",
                 test_fraction: float = 0.1, split_seed: int = 0, index: int = 0,
                 max_pixels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_pixels = check_max_pixels(max_pixels)
        if path is None:
            raise ConfigError("data 'images' needs a folder: add data.path=/path/to/folder")
        if resize not in ("resize", "crop"):
            raise ConfigError(f"data.resize must be 'resize' or 'crop', got {resize!r}")
        if len(size) != 2 or any(int(s) < 1 for s in size):
            raise ConfigError(f"data.size must be [H, W] with positive sizes, got {list(size)}")
        if not 0 < float(test_fraction) < 1:
            raise ConfigError(f"data.test_fraction must be in (0, 1), got {test_fraction}")
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise DataError(f"data.path={self.path} is not a folder; give a folder of images")
        self.size, self.mode = (int(size[0]), int(size[1])), resize
        self.test_fraction, self.split_seed, self.index = float(test_fraction), split_seed, index
        self._set: ImageSet | None = None

    def describe(self) -> str:
        return f"images in {self.path}"

    def image_set(self) -> ImageSet:
        if self._set is not None:
            return self._set
        train_dir, test_dir = self.path / "train", self.path / "test"
        if train_dir.is_dir() and test_dir.is_dir():
            train, _ = read_folder(train_dir, self.size, self.mode, max_pixels=self.max_pixels)
            test, _ = read_folder(test_dir, self.size, self.mode, channels=train.shape[-1],
                                  max_pixels=self.max_pixels)
            how = "train/ and test/ subfolders"
        else:
            images, _ = read_folder(self.path, self.size, self.mode, max_pixels=self.max_pixels)
            tr, te = split_indices(len(images), self.test_fraction, self.split_seed)
            train, test = images[tr], images[te]
            how = f"{len(te)} of {len(images)} files held out (seed {self.split_seed})"
        self._set = ImageSet(_to_float(train), _to_float(test), f"images in {self.path}",
                             source="folder",
                             note=f"{self.path}: {self.mode} to {self.size[0]}x{self.size[1]}, "
                                  f"{how}")
        return self._set

    def spec(self) -> SignalSpec:
        """``data.size`` and the channels from the file headers (no pixels decoded)."""
        if self._set is not None:
            return self._set.spec
        folders = [self.path / "train"] if (self.path / "train").is_dir() else [self.path]
        files = sorted(p for p in folders[0].iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folders[0]}; "
                            f"data.path must be a folder of image files")
        channels = 1
        for f in files:
            try:
                with open_image(f, self.max_pixels) as im:
                    if im.mode not in ("L", "1", "I", "I;16", "F"):
                        channels = 3
                        break
            except (UnidentifiedImageError, OSError) as e:
                raise DataError(f"cannot read {f} as an image ({e}); remove or replace it") \
                    from None
        return SignalSpec(self.size, channels)

    def load_signal(self) -> torch.Tensor:
        train = self.image_set().train
        if not 0 <= int(self.index) < len(train):
            raise ConfigError(f"data.index must be 0..{len(train) - 1} (train images in "
                              f"{self.path}), got {self.index}")
        return train[int(self.index)]
