"""The one PSNR core (inrbench.metrics.psnr_from_mse) against independent references, and
each caller's figures, bit for bit, against its convention's formula written out inline."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio as skimage_psnr
from torchmetrics.functional.image import peak_signal_noise_ratio as tm_psnr

from inrbench.codecs import psnr_uint8
from inrbench.metrics import per_frame, psnr, psnr_from_mse
from inrbench.tasks.hypernet import mse_to_psnr as hypernet_mse_to_psnr
from inrbench.tasks.imageset import mse_to_psnr


def fixed_mse(n: int = 4099) -> torch.Tensor:
    """float32 MSEs over 16 decades, with exact zeros and values under both floors (n is odd and
    large so the vectorised kernels and their scalar tails both run)."""
    g = torch.Generator().manual_seed(0)
    mse = torch.rand(n, generator=g) * 10.0 ** torch.randint(-24, 2, (n,), generator=g).float()
    mse[:5] = 0.0
    mse[5:10] = 1e-21
    mse[10:15] = 1e-13
    return mse


@pytest.mark.parametrize("data_range", [1.0, 2.0, 255.0])
def test_core_matches_skimage_and_numpy(data_range):
    rng = np.random.default_rng(1)
    target = rng.random((19, 23, 3)) * data_range
    for sigma in (1e-4, 1e-2, 0.3):
        pred = target + rng.normal(0, sigma * data_range, target.shape)
        mse = float(np.mean((pred - target) ** 2))
        ref = skimage_psnr(target, pred, data_range=data_range)
        assert psnr_from_mse(mse, data_range) == pytest.approx(ref, rel=1e-12)
        t = float(psnr_from_mse(torch.tensor(mse, dtype=torch.float64), data_range))
        assert t == pytest.approx(ref, rel=1e-12)
    mse = fixed_mse().double()
    ref = 10 * np.log10(data_range ** 2 / mse.clamp(min=1e-30).numpy())
    np.testing.assert_allclose(psnr_from_mse(mse, data_range, eps=1e-30).numpy(), ref, rtol=1e-12)


def test_core_edge_cases():
    assert psnr_from_mse(0.0) == math.inf
    assert psnr_from_mse(torch.zeros(3)).isinf().all()
    assert psnr_from_mse(0.0, eps=1e-12) == pytest.approx(120.0)
    assert float(psnr_from_mse(torch.zeros(()), 2.0, eps=1e-20)) == pytest.approx(
        10 * math.log10(4 / 1e-20))
    for dtype in (torch.float32, torch.float64):
        assert psnr_from_mse(torch.tensor([1e-2], dtype=dtype)).dtype == dtype
    assert float(psnr_from_mse(torch.tensor(0.01))) == pytest.approx(20.0)


@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_meta_and_hypernet_psnr_unchanged(data_range):
    mse = fixed_mse()
    before = 10.0 * torch.log10(data_range ** 2 / mse.clamp(min=1e-12))
    assert torch.equal(mse_to_psnr(mse, data_range), before)
    assert torch.equal(hypernet_mse_to_psnr(mse, data_range), before)


@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_per_frame_psnr_unchanged(data_range):
    g = torch.Generator().manual_seed(2)
    target = torch.rand(12, 9, 7, 3, generator=g) * data_range
    noise = 10.0 ** -torch.randint(0, 6, (12, 1, 1, 1), generator=g).float()
    pred = target + torch.randn(target.shape, generator=g) * noise
    pred[3] = target[3]  # a perfect frame: the 1e-20 floor, not inf
    clamped = pred.clamp(0.0, data_range)
    mse = ((clamped - target) ** 2).flatten(1).mean(1)
    before = 10 * torch.log10(data_range ** 2 / mse.clamp(min=1e-20))
    got = per_frame(pred, target, data_range)["psnr"]
    assert torch.equal(got, before) and torch.isfinite(got).all()
    mse = fixed_mse()
    assert torch.equal(psnr_from_mse(mse, data_range, eps=1e-20),
                       10 * torch.log10(data_range ** 2 / mse.clamp(min=1e-20)))


def test_codec_psnr_unchanged():
    rng = np.random.default_rng(3)
    for spread in range(0, 60, 3):
        a = rng.integers(0, 256, (16, 12, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-spread, spread + 1, a.shape), 0, 255)
        b = b.astype(np.uint8)
        mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
        before = math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
        assert psnr_uint8(b, a) == before


def test_psnr_is_torchmetrics_and_agrees_with_the_core():
    """``psnr`` is torchmetrics' own, bit for bit (the suite's records follow it). torchmetrics
    evaluates the equation as 10 / ln 10 (2 ln R - ln MSE), which rounds differently in
    float32 from the core's 10 log10(R^2 / MSE): the two agree to well under 1e-4 dB."""
    g = torch.Generator().manual_seed(4)
    for data_range, shift in ((1.0, 0.0), (2.0, 0.0), (2.0, 1.0)):
        target = torch.rand(32, 32, 3, generator=g) * data_range - shift
        for sigma in (1e-4, 1e-2, 0.3):
            pred = target + torch.randn(target.shape, generator=g) * sigma
            lo = -data_range / 2 if target.min() < 0 else 0.0
            clamped = pred.clamp(lo, lo + data_range)
            got = psnr(pred, target, data_range)
            assert got == float(tm_psnr(clamped, target, data_range=data_range))
            core = float(psnr_from_mse(((clamped - target) ** 2).mean(), data_range))
            assert got == pytest.approx(core, abs=1e-4)
    assert psnr(target, target, 2.0) == math.inf == float(tm_psnr(target, target, data_range=2.0))


def test_write_png_takes_floats_uint8_and_pil_images(tmp_path):
    """io.write_png, the one image writer: floats in [0, 1] are clamped and rounded, uint8 and
    PIL images are written as they are (same bytes as PIL's own PNG of them)."""
    import io

    from PIL import Image

    from inrbench.io import write_png

    def pil_png(image):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    rng = np.random.default_rng(5)
    floats = rng.normal(0.5, 0.6, (9, 7, 3)).astype(np.float32)
    write_png(tmp_path / "f.png", torch.from_numpy(floats))
    as_uint8 = (np.clip(floats, 0, 1) * 255).round().astype(np.uint8)
    assert (tmp_path / "f.png").read_bytes() == pil_png(Image.fromarray(as_uint8))
    write_png(tmp_path / "u.png", as_uint8)
    assert (tmp_path / "u.png").read_bytes() == pil_png(Image.fromarray(as_uint8))
    gray = as_uint8[..., :1]
    write_png(tmp_path / "g.png", gray)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "g.png")), gray[..., 0])
    picture = Image.fromarray(as_uint8).resize((18, 14), Image.BICUBIC)
    write_png(tmp_path / "p.png", picture)
    assert (tmp_path / "p.png").read_bytes() == pil_png(picture)
