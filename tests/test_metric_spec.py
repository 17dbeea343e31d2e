"""The pinned metric definitions (inrbench.metrics.METRIC_SPEC) against independent
references on fixed arrays: scikit-image's PSNR and SSIM, numpy set arithmetic for IoU."""

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from inrbench.data.base import SignalSpec
from inrbench.metrics import (
    METRIC_SPEC,
    SSIM_PAD,
    SSIM_SIGMA,
    SSIM_WINDOW,
    evaluate,
    iou,
    psnr,
    psnr_8bit,
    ssim_2d,
)


def _pair(shape=(40, 48, 3), seed=0):
    """A target on the 8-bit grid (as PNGs are) and a noisy float prediction that overshoots
    the range in places (so the clamp matters)."""
    rng = np.random.default_rng(seed)
    target = np.round(rng.random(shape) * 255) / 255
    pred = target + 0.08 * rng.standard_normal(shape)
    return pred, target


def _t(a):
    return torch.from_numpy(a).float()


@pytest.mark.parametrize("data_range", [1.0, 2.0])
def test_psnr_float_and_8bit_match_scikit_image(data_range):
    pred, target = _pair()
    pred, target = pred * data_range, target * data_range
    want = peak_signal_noise_ratio(target, np.clip(pred, 0, data_range), data_range=data_range)
    assert psnr(_t(pred), _t(target), data_range) == pytest.approx(want, abs=1e-4)
    rounded = np.round(np.clip(pred, 0, data_range) / data_range * 255) / 255 * data_range
    want8 = peak_signal_noise_ratio(target, rounded, data_range=data_range)
    assert psnr_8bit(_t(pred), _t(target), data_range) == pytest.approx(want8, abs=1e-4)
    assert want8 != pytest.approx(want, abs=1e-3)  # the two are different numbers


def test_ssim_matches_scikit_image_with_the_stated_window_and_border():
    """scikit-image filters with scipy's ``reflect`` (edge sample repeated) and averages the
    interior only; inrbench's SSIM pads like torch's ``reflect`` (edge sample not repeated,
    numpy's ``reflect``) and averages the whole map. So: pad by SSIM_PAD with numpy's reflect,
    let scikit-image compute the map with the stated window, keep the original pixels."""
    pred, target = _pair()
    pred = np.clip(pred, 0, 1)
    pad = [(SSIM_PAD, SSIM_PAD), (SSIM_PAD, SSIM_PAD), (0, 0)]
    _, full = structural_similarity(np.pad(target, pad, mode="reflect"),
                                    np.pad(pred, pad, mode="reflect"), data_range=1.0,
                                    channel_axis=-1, gaussian_weights=True, sigma=SSIM_SIGMA,
                                    use_sample_covariance=False, full=True)
    want = full[SSIM_PAD:-SSIM_PAD, SSIM_PAD:-SSIM_PAD].mean()
    assert ssim_2d(_t(pred), _t(target), 1.0) == pytest.approx(want, abs=1e-5)
    # the interior alone is scikit-image's own figure
    interior = structural_similarity(target, pred, data_range=1.0, channel_axis=-1,
                                     gaussian_weights=True, sigma=SSIM_SIGMA,
                                     use_sample_covariance=False)
    assert interior == pytest.approx(full[2 * SSIM_PAD:-2 * SSIM_PAD,
                                          2 * SSIM_PAD:-2 * SSIM_PAD].mean(), abs=1e-9)
    assert SSIM_WINDOW == 2 * SSIM_PAD + 1 == int(3.5 * SSIM_SIGMA + 0.5) * 2 + 1


def test_iou_threshold_as_stated():
    logits = np.array([[-2.0, 0.5, 3.0], [0.0, -0.1, 1.0]])
    target = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    inside, occupied = logits > 0, target > 0.5  # logit > 0, i.e. probability > 0.5
    want = (inside & occupied).sum() / (inside | occupied).sum()
    assert want == pytest.approx(2 / 4)
    assert iou(torch.from_numpy(inside), torch.from_numpy(occupied)) == pytest.approx(want)
    spec = SignalSpec((2, 3), 1, modality="occupancy")
    got = evaluate(_t(logits)[..., None], _t(target)[..., None], spec)
    assert got["iou"] == pytest.approx(want)
    assert "logit > 0" in METRIC_SPEC["iou"]["occupancy"]


def test_every_image_record_names_both_psnrs_and_lpips_says_why_it_is_absent():
    pred, target = _pair((16, 16, 1))
    got = evaluate(_t(pred), _t(target), SignalSpec((16, 16), 1))
    assert list(got) == ["psnr", "psnr_8bit", "ssim"]
    assert METRIC_SPEC["ssim"]["window"] == SSIM_WINDOW
    assert METRIC_SPEC["lpips"]["value"] is None and "offline" in METRIC_SPEC["lpips"]["reason"]
