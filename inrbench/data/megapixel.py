"""Megapixel images: the 8192x8192 RGB Pluto image (``pluto``; ASMR paper Table 5, appendix E).

Trained on random pixels (``sampling: random``, ``batch_size: 262144`` = 2^18 per step, as
appendix E) or random whole tiles (``sampling: tile``, ``tile: [512, 512]``); the base class
computes coordinates per batch only, so the 67M coordinates of the image never exist at once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from inrbench.bases import largest_smooth_below
from inrbench.data.base import SignalDataModule, SignalSpec
from inrbench.data.fetch import PaperDataModule, fetch_url, sample_file
from inrbench.data.image import (
    ImageDataModule,
    _check_crop,
    load_image,
    open_image,
    read_image_header,
)
from inrbench.data.registry import register_datamodule
from inrbench.errors import DataError
from inrbench.io import write_png

# "Pluto in True Color - High-Res" (NASA/JHUAPL/SwRI/Alex Parker, public domain), 8000x8000
# JPEG; the ACORN code (Martel et al. 2021) fetches this file and, like the official ASMR
# config (img_size [8192, 8192]), resizes it to 8192x8192.
PLUTO_URL = ("https://upload.wikimedia.org/wikipedia/commons/e/ef/"
             "Pluto_in_True_Color_-_High-Res.jpg")
PLUTO_SIZE = 8192
#: the pixels the Pluto files may declare (above PIL's default limit should that ever shrink)
PLUTO_PIXELS = PLUTO_SIZE ** 2
STAND_IN = "images/Kleiber_by_Lukas_Baubkus.jpg"


def smooth_crop(shape) -> list[int]:
    """The largest top-left crop whose sides have only prime factors <= 7 (ASMR bases)."""
    return [largest_smooth_below(int(n)) for n in shape]


@register_datamodule(name="pluto")
class PlutoDataModule(PaperDataModule):
    """The Pluto image resized to 8192x8192 RGB, values in [0, 1].

    ``prepare_data`` downloads the NASA JPEG from Wikimedia Commons into
    ``$INRBENCH_DATA/pluto``, resizes it (Pillow bicubic, as the official code's
    ``Image.resize``) and stores ``pluto_8192.png``; both files' size and SHA-256 are recorded
    on first download and verified on every load. ``crop: [H, W]`` keeps the top-left block.
    Offline, the 6028x3391 photo shipped in ``datasets/samples/images`` stands in, cropped to
    ``crop`` or else to 3375x6000 so that ASMR's bases factorise it.
    """

    dataset = "Pluto 8192x8192"
    subdir = "pluto"

    def __init__(self, crop: list[int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.crop = crop
        self.source = self.folder / "Pluto_in_True_Color_-_High-Res.jpg"
        self.file = self.folder / f"pluto_{PLUTO_SIZE}.png"

    def describe(self) -> str:
        return self._sample.describe() if self.uses_sample else f"pluto {self.file}"

    def urls(self) -> list[str]:
        return [PLUTO_URL]

    def paper_files(self) -> list[Path]:
        return [self.file]

    def paper_spec(self) -> SignalSpec:
        return SignalSpec(_check_crop(self.crop, (PLUTO_SIZE, PLUTO_SIZE)), 3)

    def fetch(self) -> None:
        if not self.source.exists():
            fetch_url(PLUTO_URL, self.source)
            self.manifest.record(self.source)
        self.verify(self.source)
        try:
            with open_image(self.source, PLUTO_PIXELS) as im:
                im = im.convert("RGB").resize((PLUTO_SIZE, PLUTO_SIZE), Image.BICUBIC)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"{self.source} is truncated or corrupt ({e}); delete it and "
                            f"download {PLUTO_URL} again") from None
        write_png(self.file, im)
        self.manifest.record(self.file)

    def load_paper(self) -> torch.Tensor:
        self.verify(self.file)
        shape, _ = read_image_header(self.file, PLUTO_PIXELS)
        if shape != (PLUTO_SIZE, PLUTO_SIZE):
            raise DataError(f"{self.file} is {shape[0]}x{shape[1]}, expected "
                            f"{PLUTO_SIZE}x{PLUTO_SIZE}; delete it to rebuild it")
        return load_image(self.file, self.crop, max_pixels=PLUTO_PIXELS)

    def make_sample(self) -> SignalDataModule:
        path = sample_file(STAND_IN)
        shape, _ = read_image_header(path)
        crop = list(self.crop) if self.crop is not None else smooth_crop(shape)
        return ImageDataModule(path=str(path), crop=crop)

