"""Images: any local PNG/JPEG (``image``), scikit-image's Cameraman (``cameraman``), Kodak.

Every image file is opened through :func:`open_image`, which checks the pixel count its
header declares against a limit (PIL's decompression-bomb limit unless ``data.max_pixels``
raises it) before a pixel is decoded: a file whose header claims 60000x60000 pixels is refused
in one line instead of allocating gigabytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from skimage import data as skimage_data

from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.download import download
from inrbench.data.fetch import PaperDataModule, sample_file
from inrbench.data.registry import register_datamodule
from inrbench.errors import ConfigError, DataError

#: the most pixels an image file may declare unless ``data.max_pixels`` says more: PIL's
#: decompression-bomb limit (about 89 million, e.g. 9459x9459)
MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)


@contextmanager
def open_image(path: Path, max_pixels: int | None = None,
               raise_with: str | None = "data.max_pixels") -> Iterator[Image.Image]:
    """The PIL image of ``path``, opened lazily (header only), once the pixel count its header
    declares is within ``max_pixels`` (default :data:`MAX_PIXELS`); a DataError otherwise,
    before any pixel is decoded, naming ``raise_with``, the key that raises the limit (None:
    the caller has none). PIL's own limit follows ``max_pixels`` while it is open."""
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None  # the header is checked below, in one line of ours
    try:
        im = Image.open(path)
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    with im:
        w, h = im.size
        if w * h > limit:
            fix = (f"if the image is genuine, raise it with {raise_with}={w * h}" if raise_with
                   else "give a smaller image")
            raise DataError(f"{path} declares {w}x{h} = {w * h:,} pixels, more than the "
                            f"limit of {limit:,} (a decompression bomb?); {fix}")
        Image.MAX_IMAGE_PIXELS = max(limit, saved or 0)
        try:
            yield im
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def read_image_header(path: Path, max_pixels: int | None = None
                      ) -> tuple[tuple[int, int], int]:
    """(H, W) and channel count from the file header, without decoding the pixels; a header
    declaring more than ``max_pixels`` pixels is refused (:func:`open_image`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image file {path} does not exist; pass an existing PNG/JPEG as "
                        f"data.path=FILE")
    try:
        with open_image(path, max_pixels) as im:
            w, h = im.size
            channels = 1 if im.mode in ("L", "I", "I;16", "F", "1") else 3
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot read {path} as an image ({e}); is it a PNG/JPEG?") from None
    return (h, w), channels


def load_image(path: Path, crop: list[int] | None = None,
               crop_at: list[int] | None = None, max_pixels: int | None = None
               ) -> torch.Tensor:
    """``(H, W, C)`` float32 in [0, 1]; 1 channel for grayscale, 3 for colour (alpha dropped).
    ``crop`` [H, W] keeps the block whose top-left pixel is ``crop_at`` [row, column] (0, 0).
    ``max_pixels``: the most pixels the file may declare (:func:`open_image`)."""
    path = Path(path)
    read_image_header(path, max_pixels)
    try:
        with open_image(path, max_pixels) as im:
            im.load()
            if crop is not None:  # before the float conversion: a crop of a large photo is cheap
                top, left = (int(a) for a in (crop_at or (0, 0)))
                im = im.crop((left, top, left + int(crop[1]), top + int(crop[0])))
            if im.mode in ("I", "I;16"):
                arr = np.asarray(im, dtype=np.float32) / 65535.0
            elif im.mode in ("L", "1", "F"):
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
            else:
                arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is truncated or corrupt ({e}); replace the file") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    return torch.from_numpy(np.ascontiguousarray(arr))


def _check_crop(crop, shape):
    if crop is None:
        return shape
    if len(crop) != 2 or any(c < 1 or c > n for c, n in zip(crop, shape)):
        raise ConfigError(f"data.crop must be [H, W] within the image size {tuple(shape)}, "
                          f"got {crop}")
    return tuple(int(c) for c in crop)


def _check_crop_at(crop_at, crop, shape):
    """``data.crop_at`` [row, column]: where the ``crop`` block starts; it must fit."""
    if crop_at is None:
        return None
    if crop is None:
        raise ConfigError("data.crop_at needs data.crop, the block's size [H, W]")
    if (len(crop_at) != 2 or any(int(a) < 0 for a in crop_at)
            or any(int(a) + int(c) > n for a, c, n in zip(crop_at, crop, shape))):
        raise ConfigError(f"data.crop_at must be [row, column] >= 0 with data.crop={list(crop)} "
                          f"inside the image {tuple(shape)}, got {crop_at}")
    return [int(a) for a in crop_at]


@register_datamodule(name="image")
class ImageDataModule(SignalDataModule):
    """Any local image file: ``--data image data.path=photo.png [data.crop=[H,W]]``;
    ``data.crop_at=[row, column]`` moves the crop from the top-left corner (another region
    of one photo as another signal of the same size). ``data.max_pixels``: the most pixels
    the file may declare (default PIL's decompression-bomb limit, :data:`MAX_PIXELS`)."""

    def __init__(self, path: str | None = None, crop: list[int] | None = None,
                 crop_at: list[int] | None = None, max_pixels: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if path is None:
            raise ConfigError("data 'image' needs a file: add data.path=/path/to/image.png")
        self.path, self.crop, self.crop_at = Path(path).expanduser(), crop, crop_at
        self.max_pixels = check_max_pixels(max_pixels)

    def describe(self) -> str:
        return f"image {self.path}"

    def spec(self) -> SignalSpec:
        shape, channels = read_image_header(self.path, self.max_pixels)
        crop = _check_crop(self.crop, shape)
        _check_crop_at(self.crop_at, self.crop, shape)
        return SignalSpec(crop, channels)

    def load_signal(self) -> torch.Tensor:
        self.spec()
        return load_image(self.path, self.crop, self.crop_at, self.max_pixels)


def check_max_pixels(max_pixels) -> int | None:
    """``data.max_pixels``: None (the default limit) or an integer >= 1."""
    if max_pixels is not None and (isinstance(max_pixels, bool) or not isinstance(
            max_pixels, int) or max_pixels < 1):
        raise ConfigError(f"data.max_pixels is the most pixels an image file may declare, an "
                          f"integer >= 1 (default {MAX_PIXELS:,}), got {max_pixels!r}")
    return max_pixels


@register_datamodule(name="cameraman")
class CameramanDataModule(SignalDataModule):
    """scikit-image's ``data.camera()``: 512x512 grayscale, the CC0 replacement of the classic
    Cameraman photo and the image the ASMR paper's Table 2 was fitted on."""

    def __init__(self, crop: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.crop = crop

    data_source = "paper"  # the image of the paper's Table 2 (inrbench.data.provenance)
    dataset = "Cameraman (skimage.data.camera)"

    def describe(self) -> str:
        return "cameraman (skimage.data.camera)"

    def files_read(self) -> list[Path]:
        """scikit-image ships the image as ``skimage/data/camera.png``."""
        return [Path(skimage_data.__file__).parent / "camera.png"]

    def spec(self) -> SignalSpec:
        return SignalSpec(_check_crop(self.crop, (512, 512)), 1)

    def load_signal(self) -> torch.Tensor:
        arr = torch.from_numpy(skimage_data.camera().astype(np.float32) / 255.0)[..., None]
        if self.crop is not None:
            arr = arr[: self.crop[0], : self.crop[1]].contiguous()
        return arr


KODAK_URL = "https://r0k.us/graphics/kodak/kodak/kodim{:02d}.png"
KODAK_PORTRAIT = {4, 9, 10, 17, 18, 19}  # 768x512; the other 18 images are 512x768


class CoverImage(SignalDataModule):
    """A photo resized (Pillow bicubic) to cover ``shape`` = (H, W) and centre-cropped to it:
    the offline stand-in for a paper image of that size (Kodak); ``crop: [H, W]`` then keeps
    its top-left block, as the paper image's ``crop`` does."""

    def __init__(self, path: str, shape: list[int], crop: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.path, self.shape = Path(path), tuple(int(n) for n in shape)
        self.crop = None if crop is None else _check_crop(crop, self.shape)

    def describe(self) -> str:
        return (f"{self.path.name} resized and centre-cropped to "
                f"{self.shape[0]}x{self.shape[1]}")

    def files_read(self) -> list[Path]:
        return [self.path]

    def spec(self) -> SignalSpec:
        read_image_header(self.path)
        return SignalSpec(self.crop or self.shape, 3)

    def load_signal(self) -> torch.Tensor:
        h, w = self.shape
        read_image_header(self.path)
        try:
            with open_image(self.path) as im:
                im = im.convert("RGB")
                scale = max(h / im.height, w / im.width)
                size = (max(w, round(im.width * scale)), max(h, round(im.height * scale)))
                im = im.resize(size, Image.BICUBIC)
                left, top = (im.width - w) // 2, (im.height - h) // 2
                arr = np.asarray(im.crop((left, top, left + w, top + h)), dtype=np.float32)
        except (OSError, ValueError) as e:
            raise DataError(f"{self.path} is truncated or corrupt ({e}); replace the file") \
                from None
        if self.crop is not None:
            arr = arr[:self.crop[0], :self.crop[1]]
        return torch.from_numpy(np.ascontiguousarray(arr / 255.0))


KODAK_URL = "https://r0k.us/graphics/kodak/kodak/kodim{:02d}.png"
KODAK_PORTRAIT = {4, 9, 10, 17, 18, 19}  # 768x512; the other 18 images are 512x768
KODAK_STAND_IN = "images/Kleiber_by_Lukas_Baubkus.jpg"


@register_datamodule(name="kodak")
class KodakDataModule(PaperDataModule):
    """One image of the Kodak suite (24 PNGs, 512x768 or 768x512 RGB; ASMR paper sec. 4.2,
    Table 3), like every paper data set (``inrbench.data.fetch.PaperDataModule``).

    Files live in ``<root>/kodimNN.png`` (root: ``$INRBENCH_DATA/kodak``). Nothing is
    downloaded at run time unless asked: with ``download=true`` a missing image is fetched
    from r0k.us and its size and SHA-256 recorded, which later loads verify. Otherwise (or
    offline) the photo shipped in ``datasets/samples/images`` stands in, resized and
    centre-cropped to the chosen image's shape, and the run's record says ``stand-in``;
    ``fallback=false`` makes a missing image an error naming the URL and the folder.
    ``crop: [H, W]`` keeps the top-left block (of the stand-in too).
    """

    dataset = "Kodak"
    subdir = "kodak"

    def __init__(self, image: int = 1, download: bool = False, crop: list[int] | None = None,
                 **kwargs):
        super().__init__(download=download, **kwargs)
        self.crop = crop
        if not 1 <= int(image) <= 24:
            raise ConfigError(f"data.image must be 1..24 (kodim01..kodim24), got {image}")
        self.image = int(image)
        self.file = self.folder / f"kodim{self.image:02d}.png"
        self.url = KODAK_URL.format(self.image)

    def describe(self) -> str:
        if self.uses_sample:
            return self._sample.describe()
        return f"kodak image {self.image:02d}"

    def urls(self) -> list[str]:
        return [self.url]

    def paper_files(self) -> list[Path]:
        return [self.file]

    def paper_spec(self) -> SignalSpec:
        shape = (768, 512) if self.image in KODAK_PORTRAIT else (512, 768)
        return SignalSpec(_check_crop(self.crop, shape), 3)

    def fetch(self) -> None:
        download(self.url, self.file)
        self.manifest.record(self.file)

    def load_paper(self) -> torch.Tensor:
        self.verify(self.file)
        return load_image(self.file, self.crop)

    def make_sample(self) -> SignalDataModule:
        shape = (768, 512) if self.image in KODAK_PORTRAIT else (512, 768)
        return CoverImage(path=str(sample_file(KODAK_STAND_IN)), shape=list(shape),
                          crop=self.crop)
