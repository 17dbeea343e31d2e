"""Classic image codecs on the INR points' axes: JPEG, JPEG 2000, WebP, AVIF (``imagecodecs``).

Each codec is swept over its quality setting; a point is the encoded file's size and the
PSNR of the decoded 8-bit image against the original 8-bit image, with ``bpp`` = bits / (H W)
and ``bpp_ani`` = bits / (H W C) as for the INR files (``inrbench.compress``).
JPEG is libjpeg(-turbo) at quality 1..100; JPEG 2000 is OpenJPEG, irreversible 9/7, at
fixed-quality targets 18..60 dB; WebP lossy at quality 0..100; AVIF
(libavif) at quality 0..98 (100 is lossless); up to ~5 bpp, the INR points' range.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from inrbench.build import build_datamodule
from inrbench.config import load_yaml
from inrbench.errors import ConfigError, DataError
from inrbench.io import atomic_write_json, atomic_write_text
from inrbench.metrics import psnr_from_mse

QUALITIES = {
    "jpeg": [1, 3, 5, 8, 10, 15, 20, 30, 40, 50, 60, 75, 85, 95, 98, 100],
    "jpeg2000": [18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 45, 50, 55, 60],
    "webp": [0, 2, 5, 10, 20, 30, 40, 50, 60, 75, 85, 95, 98, 100],
    "avif": [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98],
}
CODECS = tuple(QUALITIES)


def _codec(name: str):
    import imagecodecs

    if name == "jpeg":
        return (lambda im, q: imagecodecs.jpeg8_encode(im, level=q),
                imagecodecs.jpeg8_decode, "quality", imagecodecs.JPEG8.available)
    if name == "jpeg2000":
        # level: OpenJPEG's fixed-quality target (dB) with the irreversible 9/7 transform
        return (lambda im, q: imagecodecs.jpeg2k_encode(im, level=q, codecformat="j2k",
                                                        reversible=False),
                imagecodecs.jpeg2k_decode, "target dB", imagecodecs.JPEG2K.available)
    if name == "webp":
        return (lambda im, q: imagecodecs.webp_encode(im, level=q, lossless=False),
                imagecodecs.webp_decode, "quality", imagecodecs.WEBP.available)
    if name == "avif":
        return (lambda im, q: imagecodecs.avif_encode(im, level=q),
                imagecodecs.avif_decode, "quality", imagecodecs.AVIF.available)
    raise ConfigError(f"unknown codec {name!r}; choose from {', '.join(CODECS)}")


def psnr_uint8(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR of two 8-bit images (R = 255, float64; inf when they are equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return psnr_from_mse(mse, 255.0)


def sweep(image: np.ndarray, codecs=CODECS, qualities: dict | None = None) -> list[dict]:
    """Rate-distortion points of ``image`` (H, W[, C]) uint8 for each codec."""
    if image.dtype != np.uint8:
        raise DataError("codec sweeps need an 8-bit image")
    h, w = image.shape[:2]
    c = 1 if image.ndim == 2 else image.shape[2]
    rows = []
    for name in codecs:
        enc, dec, knob, available = _codec(name)
        if not available:
            raise ConfigError(f"codec {name} is not available in this imagecodecs build")
        for q in (qualities or QUALITIES)[name]:
            data = enc(np.ascontiguousarray(image), q)
            out = dec(data)
            bits = 8 * len(data)
            rows.append({"codec": name, knob.replace(" ", "_"): q, "setting": q, "bytes": len(data),
                         "bpp": bits / (h * w), "bpp_ani": bits / (h * w * c),
                         "psnr": psnr_uint8(out.reshape(image.shape), image)})
    return rows


def image_of(path: Path) -> tuple[np.ndarray, str]:
    """An 8-bit image from a file, or the signal of a run folder's data (its config)."""
    path = Path(path)
    if path.is_dir():
        cfg_path = path / "config.yaml"
        if not cfg_path.is_file():
            raise DataError(f"{path} is neither an image nor a run folder (no config.yaml)")
        dm = build_datamodule(load_yaml(cfg_path))
        dm.setup()
        arr = (dm.signal.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
        return (arr[..., 0] if arr.shape[-1] == 1 else arr), dm.describe()
    if not path.is_file():
        raise DataError(f"{path} does not exist; give an image file or a run folder")
    from PIL import UnidentifiedImageError

    from inrbench.data.image import open_image

    try:  # a header declaring more pixels than PIL's bomb limit is refused before decoding
        with open_image(path, raise_with=None) as im:
            return np.asarray(im.convert("RGB" if im.mode not in ("L",) else "L")), path.name
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot read {path} as an image ({e}); is it a PNG/JPEG?") from None


def sweep_image(path: Path, out: Path, codecs=CODECS) -> list[dict]:
    image, source = image_of(path)
    rows = sweep(image, codecs)
    for r in rows:
        r["source"] = source
    out = Path(out)
    atomic_write_json(out / "codecs.json", {"source": source, "shape": list(image.shape),
                                            "points": rows})
    keys = ["codec", "setting", "bytes", "bpp", "bpp_ani", "psnr"]
    buf = io.StringIO()
    buf.write(",".join(keys) + "\n")
    for r in rows:
        buf.write(",".join(str(r[k]) for k in keys) + "\n")
    atomic_write_text(out / "codecs.csv", buf.getvalue())
    return rows
