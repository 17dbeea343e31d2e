"""Per-modality reconstruction metrics, computed with torchmetrics' functional API.

PSNR uses the clamped prediction and the signal's data range (1 for images in [0, 1]).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from inrbench.data.base import SignalSpec


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    lo = -data_range / 2 if target.min() < 0 else 0.0
    pred = pred.clamp(lo, lo + data_range)
    return float(peak_signal_noise_ratio(pred, target, data_range=data_range))


def ssim_2d(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> float:
    """SSIM of ``(H, W, C)`` images (torchmetrics, Gaussian 11x11 window)."""
    to_nchw = lambda x: x.permute(2, 0, 1).unsqueeze(0)  # noqa: E731
    pred = pred.clamp(0.0, data_range)
    return float(structural_similarity_index_measure(to_nchw(pred), to_nchw(target),
                                                     data_range=data_range))


def evaluate(pred: torch.Tensor, target: torch.Tensor, spec: SignalSpec) -> dict[str, float]:
    """The metrics that fit ``spec.modality``; the first key is the modality's headline metric."""
    pred, target = pred.detach().float(), target.detach().float()
    out = {"psnr": psnr(pred, target, spec.data_range)}
    if spec.modality == "image":
        out["ssim"] = ssim_2d(pred, target, spec.data_range)
    return out


def headline_metric(spec: SignalSpec) -> str:
    return {"occupancy": "iou"}.get(spec.modality, "psnr")
