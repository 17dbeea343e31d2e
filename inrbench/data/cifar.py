"""CIFAR-10 (``cifar10``), the meta-learning data set of the ASMR paper (sec. 4.4, appendix I),
in the COIN++ setting (Dupont et al. 2022): 32x32 RGB images in [0, 1].

Read from the original python pickle batches of ``cifar-10-python.tar.gz`` (each batch a
dict with ``b"data"``: ``(10000, 3072)`` uint8, channel-major, and ``b"labels"``), checked
against the MD5s the CIFAR page publishes (as torchvision does). The data module gives one
image by ``index``; :func:`cifar10_batch` returns a batch of images for meta-learning.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data as skimage_data

from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.download import data_root
from inrbench.data.fetch import PaperDataModule, check_archive, extract, fetch_url, sample_file
from inrbench.data.images import ImageSet
from inrbench.data.registry import register_datamodule
from inrbench.errors import ConfigError, DataError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_BYTES = 170_498_071
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_FOLDER = "cifar-10-batches-py"
# published MD5 of each pickle batch (CIFAR page; torchvision checks the same)
CIFAR10_BATCHES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
SPLITS = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def read_batch(path: Path, md5: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One pickle batch -> (``(N, 32, 32, 3)`` uint8 images, ``(N,)`` labels)."""
    path = Path(path)
    if md5 is not None:
        actual = hashlib.md5(path.read_bytes()).hexdigest()
        if actual != md5:
            raise DataError(f"{path} has MD5 {actual}, expected the published {md5} (corrupt "
                            f"or truncated); delete it and download the archive again")
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8)
        labels = np.asarray(entry[b"labels"], dtype=np.int64)
        images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as e:
        raise DataError(f"{path} is not a CIFAR-10 pickle batch ({type(e).__name__}: {e}); "
                        f"corrupt or truncated file") from None
    if len(labels) != len(images):
        raise DataError(f"{path} has {len(images)} images but {len(labels)} labels (corrupt)")
    return np.ascontiguousarray(images), labels


class CIFAR10Files:
    """The extracted batches in ``<root>/cifar-10-batches-py`` (root default
    ``$INRBENCH_DATA/cifar10``); ``download`` fetches and checks the archive."""

    def __init__(self, root: str | Path | None = None, verify: bool = True):
        self.folder = Path(root).expanduser() if root else data_root() / "cifar10"
        self.batches = self.folder / CIFAR10_FOLDER
        self.verify = verify
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def files(self, split: str) -> list[Path]:
        if split not in SPLITS:
            raise ConfigError(f"data.split must be 'train' or 'test', got {split!r}")
        return [self.batches / name for name in SPLITS[split]]

    def missing(self, split: str) -> list[Path]:
        return [f for f in self.files(split) if not f.exists()]

    def missing_error(self, split: str) -> DataError:
        names = ", ".join(f"{CIFAR10_FOLDER}/{f.name}" for f in self.missing(split))
        return DataError(f"CIFAR-10 files missing in {self.folder}: {names}; download "
                         f"{CIFAR10_URL} and unpack it there (or run with network access)")

    def download(self) -> None:
        archive = self.folder / "cifar-10-python.tar.gz"
        if not archive.exists():
            fetch_url(CIFAR10_URL, archive, CIFAR10_BYTES, CIFAR10_MD5)
        else:
            check_archive(archive, CIFAR10_BYTES, md5=CIFAR10_MD5)
        extract(archive, self.folder)

    def split(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        if split not in self._cache:
            if self.missing(split):
                raise self.missing_error(split)
            parts = [read_batch(f, CIFAR10_BATCHES.get(f.name) if self.verify else None)
                     for f in self.files(split)]
            self._cache[split] = (np.concatenate([p[0] for p in parts]),
                                  np.concatenate([p[1] for p in parts]))
        return self._cache[split]


def cifar10_batch(indices=None, split: str = "train", root: str | Path | None = None,
                  batch_size: int = 64, seed: int | None = None, verify: bool = True,
                  with_labels: bool = False):
    """A batch of CIFAR-10 images ``(B, 32, 32, 3)`` float in [0, 1] for meta-learning
    (COIN++ uses batches of 64): the given ``indices``, else ``batch_size`` drawn without
    replacement with ``seed`` (else the first ``batch_size``)."""
    images, labels = CIFAR10Files(root, verify).split(split)
    if indices is None:
        if seed is None:
            indices = np.arange(min(batch_size, len(images)))
        else:
            rng = np.random.default_rng(seed)
            indices = rng.choice(len(images), size=min(batch_size, len(images)), replace=False)
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= len(images)):
        raise ConfigError(f"CIFAR-10 {split} has {len(images)} images; indices out of range")
    batch = torch.from_numpy(images[indices].astype(np.float32) / 255.0)
    if with_labels:
        return batch, torch.from_numpy(labels[indices])
    return batch


# the stand-in set's photos: (name, loader); the test photos are never seen in training
STANDIN_TRAIN = ("Kleiber_by_Lukas_Baubkus.jpg", "skimage astronaut", "skimage rocket",
                 "sklearn china.jpg")
STANDIN_TEST = ("skimage chelsea", "skimage coffee", "sklearn flower.jpg")
#: short sides the photos are resampled to before 32x32 tiles are cut (coarse scales look most
#: like CIFAR's whole objects; finer ones add texture)
STANDIN_SCALES = (48, 64, 96, 128, 192, 256, 384, 512)


def _photo(name: str) -> Image.Image:
    if name.startswith("skimage "):
        return Image.fromarray(getattr(skimage_data, name.split()[1])())
    if name.startswith("sklearn "):
        from sklearn.datasets import load_sample_image  # optional: not a dependency

        return Image.fromarray(load_sample_image(name.split()[1]))
    with Image.open(sample_file(f"images/{name}")) as im:
        # decode the 6028x3391 JPEG at a reduced scale that still exceeds the largest short side
        im.draft("RGB", (im.size[0] * 2 * STANDIN_SCALES[-1] // min(im.size),
                         im.size[1] * 2 * STANDIN_SCALES[-1] // min(im.size)))
        return im.convert("RGB")


def photo_tiles(im: Image.Image, size: int = 32, scales=STANDIN_SCALES) -> np.ndarray:
    """Non-overlapping ``size`` x ``size`` tiles of ``im`` resampled (bicubic, antialiased) to
    each short side in ``scales`` it can reach: ``(N, size, size, 3)`` uint8."""
    tiles = []
    for short in scales:
        if short > min(im.size):
            continue
        f = short / min(im.size)
        w, h = max(size, round(im.size[0] * f)), max(size, round(im.size[1] * f))
        arr = np.asarray(im.resize((w, h), Image.BICUBIC, reducing_gap=3.0))
        ny, nx = h // size, w // size
        top, left = (h - ny * size) // 2, (w - nx * size) // 2
        grid = arr[top:top + ny * size, left:left + nx * size]
        tiles.append(grid.reshape(ny, size, nx, size, 3).swapaxes(1, 2).reshape(-1, size, size, 3))
    return np.concatenate(tiles)


_STANDIN: dict = {}


def standin_set():
    """CIFAR-10's offline stand-in: real 32x32 RGB images cut from shipped photos, the train
    and test splits from different photos (:data:`STANDIN_TRAIN`, :data:`STANDIN_TEST`)."""
    if "set" not in _STANDIN:
        train = np.concatenate([photo_tiles(_photo(n)) for n in STANDIN_TRAIN])
        test = np.concatenate([photo_tiles(_photo(n)) for n in STANDIN_TEST])
        _STANDIN["set"] = ImageSet(
            torch.from_numpy(train.astype(np.float32) / 255.0),
            torch.from_numpy(test.astype(np.float32) / 255.0), "CIFAR-10 stand-in",
            source="stand-in",
            note=(f"CIFAR-10 not in the cache: {len(train)} train / {len(test)} test 32x32 RGB "
                  f"tiles of shipped photos at short sides {STANDIN_SCALES[0]}-"
                  f"{STANDIN_SCALES[-1]} px (train: {', '.join(STANDIN_TRAIN)}; test: "
                  f"{', '.join(STANDIN_TEST)}); not comparable with CIFAR-10 figures"))
    return _STANDIN["set"]


class _ArrayImage(SignalDataModule):
    """A small in-memory image (the offline stand-in for one CIFAR-10 image)."""

    def __init__(self, image: np.ndarray, name: str, **kwargs):
        super().__init__(**kwargs)
        self.image, self.name = image, name

    def describe(self) -> str:
        return self.name

    def spec(self) -> SignalSpec:
        return SignalSpec(tuple(self.image.shape[:2]), self.image.shape[2])

    def load_signal(self) -> torch.Tensor:
        return torch.from_numpy(self.image.astype(np.float32) / 255.0)


@register_datamodule(name="cifar10")
class CIFAR10DataModule(PaperDataModule):
    """One CIFAR-10 image, 32x32 RGB: ``index`` into ``split`` (``test`` by default).

    ``prepare_data`` downloads cifar-10-python.tar.gz (170,498,071 bytes, published MD5) into
    ``$INRBENCH_DATA/cifar10`` and unpacks the pickle batches, whose published MD5s every load
    checks. Offline, a stand-in set of real 32x32 RGB tiles cut from shipped photos
    (:func:`standin_set`) takes its place. ``image_set()`` gives both splits to the
    meta-learning task.
    """

    dataset = "CIFAR-10"
    subdir = "cifar10"

    def __init__(self, index: int = 0, split: str = "test", **kwargs):
        super().__init__(**kwargs)
        if split not in SPLITS:
            raise ConfigError(f"data.split must be 'train' or 'test', got {split!r}")
        size = 10_000 * len(SPLITS[split])
        if not 0 <= int(index) < size:
            raise ConfigError(f"data.index must be 0..{size - 1} for split {split!r}, got {index}")
        self.index, self.split = int(index), split
        self.files = CIFAR10Files(self.folder)

    def describe(self) -> str:
        if self.uses_sample:
            return self._sample.describe()
        return f"cifar10 {self.split} image {self.index}"

    def urls(self) -> list[str]:
        return [CIFAR10_URL]

    def paper_files(self) -> list[Path]:
        return self.files.files(self.split)

    def paper_spec(self) -> SignalSpec:
        return SignalSpec((32, 32), 3)

    def fetch(self) -> None:
        self.files.download()

    def load_paper(self) -> torch.Tensor:
        images, _ = self.files.split(self.split)
        if self.index >= len(images):
            raise DataError(f"CIFAR-10 {self.split} has {len(images)} images in "
                            f"{self.files.batches}, fewer than expected (truncated batches?)")
        return torch.from_numpy(images[self.index].astype(np.float32) / 255.0)

    def make_sample(self) -> SignalDataModule:
        """Image ``index`` (modulo the set's size) of the stand-in set's ``split``."""
        stand_in = standin_set()
        images = stand_in.train if self.split == "train" else stand_in.test
        image = (images[self.index % len(images)].numpy() * 255).round().astype(np.uint8)
        return _ArrayImage(image, f"stand-in set of {len(stand_in.train)} train / "
                                  f"{len(stand_in.test)} test 32x32 tiles of shipped photos "
                                  f"({self.split} image {self.index % len(images)})")

    def image_set(self):
        """Both splits for meta-learning: CIFAR-10's 50,000 train and 10,000 test images, or
        (offline, ``fallback``) the stand-in set, announced by ``resolve``'s one line."""
        if self.uses_sample:
            return standin_set()
        train, _ = self.files.split("train")
        test, _ = self.files.split("test")
        return ImageSet(torch.from_numpy(train.astype(np.float32) / 255.0),
                        torch.from_numpy(test.astype(np.float32) / 255.0), "CIFAR-10",
                        note=f"CIFAR-10 from {self.files.batches}")
