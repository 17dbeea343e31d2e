"""Per-modality reconstruction metrics (SSIM and IoU by torchmetrics' functional API).

- image: ``psnr`` (the float output); also ``psnr_8bit`` (the output rounded to the 8-bit image
  a PNG of it holds) and ``ssim``.
- audio: ``psnr`` with data range 2 (waveform in [-1, 1], the ASMR Table 4 convention).
- video: ``psnr`` = mean of per-frame PSNR; also ``psnr_std``, ``psnr_8bit``, ``ssim``
  (per-frame mean) and ``ssim_std``.
- occupancy: ``iou`` of the occupied voxels (the model outputs a logit, occupied where > 0);
  also ``psnr`` of the probabilities and ``accuracy``.
- sdf: ``iou`` of the inside (SDF < 0); also ``psnr`` (data range 2) and ``mae``.

Every PSNR in inrbench (these metrics, the meta-learning and hypernetwork tasks, the codec
baselines) goes through one core, :func:`psnr_from_mse`. ``psnr`` uses the prediction clamped to
the signal's range (``[0, r]``, or ``[-r/2, r/2]`` for signals with negative values) and the
spec's ``data_range``. Every modality reports ``psnr``
(the fitting task tracks the best PSNR seen). Video statistics follow the ASMR paper
(appendix F): each frame scored on its own, then mean and standard deviation over frames.

The pinned definitions (:data:`METRIC_SPEC`, written into every ``metrics.json``; the golden
tests in ``tests/test_metric_spec.py`` check them against scikit-image on fixed arrays):

- ``psnr``: ``10 log10(R^2 / MSE)`` of the float prediction clamped to the signal's range,
  ``R`` = the spec's ``data_range`` (1 for images, 2 for audio waveforms in [-1, 1]).
- ``psnr_8bit``: the same after rounding the prediction to 8 bits,
  ``round(clamp(x) / R * 255) / 255 * R`` (what a viewer of the saved PNG sees); images and
  video only. Reports show ``psnr`` unless they say otherwise.
- ``ssim``: Wang et al. (2004) with a Gaussian window of 11 x 11 samples, sigma 1.5,
  ``K1 = 0.01``, ``K2 = 0.03``, data range ``R``, per channel, averaged over the whole map
  (border pixels included, their window reflect-padded as ``torch.nn.functional.pad(...,
  mode="reflect")`` does); images smaller than the window use a 3 x 3 uniform window.
- ``iou``: occupancy counts a voxel occupied where the model's logit is > 0 (probability
  > 0.5) and the target where it is > 0.5; an SDF counts inside where the value is < 0.
- LPIPS is not computed: it needs a pretrained AlexNet/VGG whose weights cannot be fetched
  offline; records say so (``METRIC_SPEC["lpips"]``).
"""

from __future__ import annotations

import functools
import math

import torch
from torchmetrics.functional.classification import binary_jaccard_index
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from inrbench.data.base import SignalSpec

HEADLINE = {"occupancy": "iou", "sdf": "iou"}

SSIM_WINDOW, SSIM_SIGMA, SSIM_K = 11, 1.5, (0.01, 0.03)  # torchmetrics' defaults, pinned

#: the definitions behind the numbers, recorded beside them in ``metrics.json``
METRIC_SPEC = {
    "psnr": "10 log10(R^2 / MSE), float prediction clamped to the signal range, R = data_range",
    "psnr_8bit": "psnr after rounding the prediction to 8 bits: round(x / R * 255) / 255 * R",
    "ssim": {"window": SSIM_WINDOW, "gaussian_sigma": SSIM_SIGMA, "k1": SSIM_K[0],
             "k2": SSIM_K[1], "data_range": "R", "border": "reflect-padded, averaged in",
             "small_images": "3x3 uniform window below 11 px"},
    "iou": {"occupancy": "logit > 0 (probability > 0.5) vs target > 0.5",
            "sdf": "value < 0 (inside)"},
    "lpips": {"value": None, "reason": "not computed: needs pretrained AlexNet/VGG weights "
              "that cannot be fetched offline"},
}


def psnr_from_mse(mse: torch.Tensor | float, data_range: float = 1.0,
                  eps: float | None = None) -> torch.Tensor | float:
    """Peak signal-to-noise ratio (dB) of mean squared errors, elementwise:

        PSNR = 10 log10(R^2 / MSE),   R = ``data_range``

    An MSE of 0 gives +inf, unless ``eps`` floors the MSE (then a perfect fit scores the finite
    10 log10(R^2 / eps), which keeps means over many signals finite). A tensor is computed in
    its own dtype, R^2 / MSE as one division; a Python float gives a float computed with
    ``math.log10`` (the C library's, which torch's float64 log10 differs from in the last bit
    for some inputs).
    """
    if not isinstance(mse, torch.Tensor):
        mse = float(mse) if eps is None else max(float(mse), eps)
        return math.inf if mse == 0 else 10 * math.log10(data_range ** 2 / mse)
    if eps is not None:
        mse = mse.clamp(min=eps)
    peak = torch.as_tensor(data_range ** 2, dtype=mse.dtype, device=mse.device)
    return 10 * torch.log10(peak / mse)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR of the whole signal, torchmetrics' ``peak_signal_noise_ratio`` (its float32
    rounding, which the suite's records follow; :func:`psnr_from_mse` is the same equation)."""
    lo = -data_range / 2 if target.min() < 0 else 0.0
    pred = pred.clamp(lo, lo + data_range)
    return float(peak_signal_noise_ratio(pred, target, data_range=data_range))


def psnr_tensor(pred: torch.Tensor, target: torch.Tensor, data_range: float) -> torch.Tensor:
    """:func:`psnr` as a tensor on the device, with no host read: the
    signal's lower bound (``-R/2`` for a signed signal, else 0) is chosen on the device, and
    torchmetrics' ``peak_signal_noise_ratio`` is written out op for op (the same float32
    rounding) without its per-call checks, which cost more than a small model's step."""
    lo = torch.where(target.min() < 0, -data_range / 2, 0.0).to(pred.dtype)
    pred = pred.clamp(lo, lo + data_range)
    sse = torch.sum(torch.pow(pred - target, 2))
    n = torch.tensor(target.numel(), device=target.device)
    log_r2, to_db = _psnr_constants(float(data_range))
    return (log_r2 - torch.log(sse / n)) * to_db


@functools.lru_cache(maxsize=8)
def _psnr_constants(data_range: float) -> tuple[torch.Tensor, torch.Tensor]:
    """torchmetrics' ``2 ln R`` and ``10 / ln 10``, as the float32 CPU tensors it makes."""
    return 2 * torch.log(torch.tensor(data_range)), 10 / torch.log(torch.tensor(10.0))


def to_8bit(pred: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """The prediction as the 8-bit image a PNG of it stores, back in the signal's units:
    ``round(clamp(x, 0, R) / R * 255) / 255 * R``."""
    return torch.round(pred.clamp(0.0, data_range) / data_range * 255) / 255 * data_range


def psnr_8bit(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR of the 8-bit-rounded prediction (:func:`to_8bit`) against ``target``."""
    return psnr(to_8bit(pred, data_range), target, data_range)


SSIM_PAD = (SSIM_WINDOW - 1) // 2


def small_window(h: int, w: int) -> dict:
    """SSIM's window on a side too short for 11 (reflect padding needs the side > half the
    window): uniform, 3 samples per axis, 1 on a side of one sample (SSIM then reduces to
    its luminance term (2 mu_x mu_y + C1) / (mu_x^2 + mu_y^2 + C1))."""
    return {"kernel_size": tuple(3 if side >= 2 else 1 for side in (h, w)),
            "gaussian_kernel": False}


def ssim_2d(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
            band_rows: int = 256) -> float:
    """SSIM of ``(H, W, C)`` images (torchmetrics, Gaussian 11x11 window, mean of the map).

    A tall image is measured in horizontal bands: each band's SSIM map is computed with
    ``SSIM_PAD`` rows of real context above and below (torchmetrics reflects only at the
    image's own border), so the bands' maps are the whole image's map and their mean is the
    one-pass figure, while memory follows ``band_rows`` (one pass over a 20-megapixel photo
    needs ~14 GiB). An image with a side of at most ``SSIM_PAD`` samples is measured with
    :func:`small_window`.
    """
    to_nchw = lambda x: x.permute(2, 0, 1).unsqueeze(0)  # noqa: E731
    pred = pred.clamp(0.0, data_range)
    h, w = pred.shape[:2]
    window = small_window(h, w) if min(h, w) <= SSIM_PAD else {}
    if h <= band_rows:
        return float(structural_similarity_index_measure(to_nchw(pred), to_nchw(target),
                                                         data_range=data_range, **window))
    total, count = 0.0, 0
    for start in range(0, h, band_rows):
        stop = min(start + band_rows, h)
        lo, hi = max(0, start - SSIM_PAD), min(h, stop + SSIM_PAD)
        _, ssim_map = structural_similarity_index_measure(
            to_nchw(pred[lo:hi]), to_nchw(target[lo:hi]), data_range=data_range,
            return_full_image=True, **window)
        band = ssim_map[..., start - lo:stop - lo, :].double()
        total += float(band.sum())
        count += band.numel()
    return total / count


def per_frame(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0,
              chunk: int = 16) -> dict[str, torch.Tensor]:
    """PSNR and SSIM of every frame of ``(T, H, W, C)`` videos: ``{"psnr": (T,), "ssim": (T,)}``.
    Frames go through SSIM ``chunk`` at a time to bound memory on long videos."""
    pred = pred.clamp(0.0, data_range)
    mse = ((pred - target) ** 2).flatten(1).mean(1)
    psnrs = psnr_from_mse(mse, data_range, eps=1e-20)  # a perfect frame: 200 dB at r = 1
    ssims = []
    for p, t in zip(pred.split(chunk), target.split(chunk)):
        p, t = p.permute(0, 3, 1, 2), t.permute(0, 3, 1, 2)
        small = min(p.shape[-2:]) < 11  # the 11x11 window needs frames at least that big
        ssims.append(structural_similarity_index_measure(
            p, t, data_range=data_range, reduction="none",
            **(small_window(*p.shape[-2:]) if small else {})))
    return {"psnr": psnrs, "ssim": torch.cat(ssims)}


def iou(pred_inside: torch.Tensor, target_inside: torch.Tensor) -> float:
    """Intersection over union of two boolean masks (torchmetrics' binary Jaccard index)."""
    return float(binary_jaccard_index(pred_inside.flatten().long(),
                                      target_inside.flatten().long(), threshold=0.5,
                                      zero_division=1.0))


def prediction_to_signal(pred: torch.Tensor, spec: SignalSpec) -> torch.Tensor:
    """The model output in the signal's units: probabilities for occupancy (logits out)."""
    return torch.sigmoid(pred) if spec.modality == "occupancy" else pred


def evaluate(pred: torch.Tensor, target: torch.Tensor, spec: SignalSpec) -> dict[str, float]:
    """The metrics that fit ``spec.modality``; the first key is the modality's headline metric."""
    pred, target = pred.detach().float(), target.detach().float()
    if spec.modality == "video":
        frames = per_frame(pred, target, spec.data_range)
        std = (lambda x: float(x.std())) if len(frames["psnr"]) > 1 else (lambda x: 0.0)
        eight = psnr_from_mse(((to_8bit(pred, spec.data_range) - target) ** 2).flatten(1)
                              .mean(1), spec.data_range, eps=1e-20)
        return {"psnr": float(frames["psnr"].mean()), "psnr_std": std(frames["psnr"]),
                "psnr_8bit": float(eight.mean()), "ssim": float(frames["ssim"].mean()),
                "ssim_std": std(frames["ssim"])}
    if spec.modality == "occupancy":
        prob, occupied = torch.sigmoid(pred), target > 0.5
        return {"iou": iou(pred > 0, occupied),
                "psnr": psnr(prob, target, spec.data_range),
                "accuracy": float(((pred > 0) == occupied).float().mean())}
    if spec.modality == "sdf":
        return {"iou": iou(pred < 0, target < 0), "psnr": psnr(pred, target, spec.data_range),
                "mae": float((pred.clamp(-1, 1) - target).abs().mean())}
    out = {"psnr": psnr(pred, target, spec.data_range)}
    if spec.modality == "image":
        out["psnr_8bit"] = psnr_8bit(pred, target, spec.data_range)
        out["ssim"] = ssim_2d(pred, target, spec.data_range)
    return out


def headline_metric(spec: SignalSpec) -> str:
    return HEADLINE.get(spec.modality, "psnr")
