"""CelebA (``celeba``), the headline data set of ANR (Zhang et al., ECCV 2024): the aligned and
cropped faces ``img_align_celeba`` (202,599 JPEGs of 178 x 218), brought to ``size`` x ``size``
(centre crop to a square, bicubic resize; the official ``ImageSetDataset`` resizes to 128).

Splits as the official ``datasets/image_set.py`` cuts them: the first 75% of the files train,
the next 20% validate, the last 5% test. The official code cuts ``os.listdir`` order, which
depends on the file system; we cut the sorted names, so the split is the same everywhere.
``max_train`` / ``max_test`` keep the first N of a split (the whole train split at 128 x 128 is
about 30 GB as float32 in memory).

Files: ``img_align_celeba.zip`` (1,443,490,838 bytes, MD5 00d2c5bc6d35e252742224ab0c1e8fcb,
the checksum torchvision checks) from the authors' Google Drive (two file ids of the same
file are tried), unpacked into
``$INRBENCH_DATA/celeba/img_align_celeba/``. Offline, a stand-in set of ``size`` x ``size``
tiles of the shipped photos takes its place (the train and test tiles from different photos,
as CIFAR-10's stand-in), and the run's records say so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import UnidentifiedImageError

from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.cifar import (
    STANDIN_SCALES,
    STANDIN_TEST,
    STANDIN_TRAIN,
    _ArrayImage,
    _photo,
    photo_tiles,
)
from inrbench.data.fetch import PaperDataModule, check_archive, extract, fetch_url
from inrbench.data.image import open_image
from inrbench.data.images import ImageSet, fit_image
from inrbench.data.registry import register_datamodule
from inrbench.errors import ConfigError, DataError

#: the authors' Google Drive file ids of img_align_celeba.zip (the current one, then the one
#: older tools use); the same file, the same MD5
CELEBA_DRIVE_IDS = ("1zmsC4yvw-e089uHXj5EdP0BSZ0AlDQRR", "0B7EVK8r0v71pZjFTYXZWM3FlRnM")
CELEBA_DRIVE_ID = CELEBA_DRIVE_IDS[0]
CELEBA_URLS = [f"https://drive.usercontent.google.com/download?id={i}&export=download&confirm=t"
               for i in CELEBA_DRIVE_IDS]
CELEBA_URL = CELEBA_URLS[0]
CELEBA_ZIP = "img_align_celeba.zip"
CELEBA_BYTES = 1_443_490_838
CELEBA_MD5 = "00d2c5bc6d35e252742224ab0c1e8fcb"
CELEBA_FOLDER = "img_align_celeba"
CELEBA_IMAGES = 202_599
#: the official split fractions (train, val, test) of datasets/image_set.py
SPLIT_FRACTIONS = (0.75, 0.20, 0.05)
SPLITS = ("train", "val", "test")


def split_files(files: list[Path]) -> dict[str, list[Path]]:
    """The sorted files cut 75 / 20 / 5 (train / val / test)."""
    files = sorted(files)
    n_train = int(len(files) * SPLIT_FRACTIONS[0])
    n_val = int(len(files) * SPLIT_FRACTIONS[1])
    return {"train": files[:n_train], "val": files[n_train:n_train + n_val],
            "test": files[n_train + n_val:]}


def read_faces(files: list[Path], size: int) -> np.ndarray:
    """JPEGs -> ``(N, size, size, 3)`` uint8: centre square crop, bicubic resize."""
    out = np.empty((len(files), size, size, 3), np.uint8)
    for i, f in enumerate(files):
        try:
            with open_image(f) as im:
                out[i] = fit_image(im.convert("RGB"), (size, size), "resize")
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot read {f} as an image ({e}); the CelebA folder is corrupt: "
                            f"delete it and unpack {CELEBA_ZIP} again") from None
    return out


_STANDIN: dict = {}


def standin_set(size: int):
    """CelebA's offline stand-in: ``size`` x ``size`` tiles of the shipped photos (train and
    test from different photos), at the short sides >= ``size`` that each photo reaches."""
    if size not in _STANDIN:
        scales = tuple(s for s in (*STANDIN_SCALES, 768, 1024) if s >= size)

        def tiles(names):
            parts = [photo_tiles(_photo(n), size, scales) for n in names]
            parts = [p for p in parts if len(p)]
            if not parts:
                raise DataError(f"the shipped photos are too small for {size}x{size} stand-in "
                                f"tiles; choose a smaller data.size")
            return np.concatenate(parts)

        train, test = tiles(STANDIN_TRAIN), tiles(STANDIN_TEST)
        _STANDIN[size] = ImageSet(
            torch.from_numpy(train.astype(np.float32) / 255.0),
            torch.from_numpy(test.astype(np.float32) / 255.0), "CelebA stand-in",
            source="stand-in",
            note=(f"CelebA not in the cache: {len(train)} train / {len(test)} test {size}x{size} "
                  f"RGB tiles of shipped photos (train: {', '.join(STANDIN_TRAIN)}; test: "
                  f"{', '.join(STANDIN_TEST)}); not faces, not comparable with CelebA figures"))
    return _STANDIN[size]


@register_datamodule(name="celeba")
class CelebADataModule(PaperDataModule):
    """CelebA ``img_align_celeba`` at ``size`` x ``size``; one image (``split``, ``index``)
    for one-signal tasks, both splits (``image_set``) for ``--task hypernet`` / ``meta``."""

    dataset = "CelebA"
    subdir = "celeba"
    manual_note = (f"the authors' Google Drive file {CELEBA_DRIVE_ID}, {CELEBA_ZIP}; unzip it so "
                   f"that the JPEGs are in {CELEBA_FOLDER}/")

    def __init__(self, size: int = 128, index: int = 0, split: str = "test",
                 max_train: int | None = None, max_test: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"data.size must be a positive integer (pixels per side), got "
                              f"{size!r}")
        if split not in SPLITS:
            raise ConfigError(f"data.split must be one of {', '.join(SPLITS)}, got {split!r}")
        for key, value in (("max_train", max_train), ("max_test", max_test)):
            if value is not None and value < 1:
                raise ConfigError(f"data.{key} must be >= 1 (or null: the whole split), "
                                  f"got {value}")
        if index < 0:
            raise ConfigError(f"data.index must be >= 0, got {index}")
        self.size, self.index, self.split = size, index, split
        self.max_train, self.max_test = max_train, max_test
        self.images_dir = self.folder / CELEBA_FOLDER
        self._set = None

    # -- PaperDataModule ----------------------------------------------------------------------
    def urls(self) -> list[str]:
        return list(CELEBA_URLS)

    def paper_files(self) -> list[Path]:
        return [self.images_dir]

    def missing(self) -> list[Path]:
        return [] if self._jpegs() else [self.images_dir]

    def paper_spec(self) -> SignalSpec:
        return SignalSpec((self.size, self.size), 3)

    def fetch(self) -> None:
        archive = self.folder / CELEBA_ZIP
        if not archive.exists():
            for i, url in enumerate(CELEBA_URLS):
                try:
                    fetch_url(url, archive, CELEBA_BYTES, CELEBA_MD5)
                    break
                except DataError:
                    if i == len(CELEBA_URLS) - 1:  # every copy failed: the last error says why
                        raise
        else:
            check_archive(archive, CELEBA_BYTES, md5=CELEBA_MD5)
        extract(archive, self.folder)

    def describe(self) -> str:
        if self.uses_sample:
            return self._sample.describe()
        return f"celeba {self.split} image {self.index} at {self.size}x{self.size}"

    def _jpegs(self) -> list[Path]:
        if not self.images_dir.is_dir():
            return []
        return sorted(p for p in self.images_dir.iterdir() if p.suffix.lower() == ".jpg")

    def _split(self, split: str) -> list[Path]:
        files = split_files(self._jpegs())[split]
        cap = self.max_train if split == "train" else self.max_test
        return files[:cap] if cap else files

    def files_read(self) -> list[Path]:
        if self.uses_sample:
            return []
        return sorted({*self._split("train"), *self._split("test"), *self._one()})

    def _one(self) -> list[Path]:
        files = split_files(self._jpegs())[self.split]
        return files[self.index:self.index + 1]

    def load_paper(self) -> torch.Tensor:
        one = self._one()
        if not one:
            n = len(split_files(self._jpegs())[self.split])
            raise ConfigError(f"data.index must be 0..{n - 1} (CelebA {self.split} images in "
                              f"{self.images_dir}), got {self.index}")
        return torch.from_numpy(read_faces(one, self.size)[0].astype(np.float32) / 255.0)

    def make_sample(self) -> SignalDataModule:
        stand_in = standin_set(self.size)
        images = stand_in.train if self.split == "train" else stand_in.test
        i = self.index % len(images)
        image = (images[i].numpy() * 255).round().astype(np.uint8)
        return _ArrayImage(image, f"stand-in set of {len(stand_in.train)} train / "
                                  f"{len(stand_in.test)} test {self.size}x{self.size} tiles of "
                                  f"shipped photos ({self.split} image {i})")

    def image_set(self):
        """Train and test splits (the official 75% / last 5%), or the stand-in offline."""
        if self.uses_sample:
            return standin_set(self.size)
        if self._set is None:
            train, test = self._split("train"), self._split("test")
            if not train or not test:
                raise DataError(f"{self.images_dir} holds {len(self._jpegs())} JPEGs, too few "
                                f"for a train and a test split (75% / 5%); unpack all of "
                                f"{CELEBA_ZIP} there")
            total = len(self._jpegs())
            note = (f"CelebA {CELEBA_FOLDER} from {self.images_dir}: {total:,} files, sorted, "
                    f"first 75% train / last 5% test")
            if total != CELEBA_IMAGES:
                note += f" (the full set has {CELEBA_IMAGES:,} files)"
            if self.max_train or self.max_test:
                note += f"; kept the first {len(train):,} train / {len(test):,} test"
            self._set = ImageSet(
                torch.from_numpy(read_faces(train, self.size).astype(np.float32) / 255.0),
                torch.from_numpy(read_faces(test, self.size).astype(np.float32) / 255.0),
                "CelebA", note=note, extra={"celeba_size": self.size})
        return self._set


__all__ = ["CelebADataModule", "split_files", "standin_set"]
