"""Full-signal render latency: warm-up, then the median of N renders in inference mode."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

from inrbench.models.base import EVAL_CHUNK


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def render_latency_ms(model, shape: Sequence[int], repeats: int = 10, warmup: int = 3) -> dict:
    """``{"latency_ms": median, "latency_ms_all": [...]}`` of ``model.render(shape)``."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(device)
            t0 = time.perf_counter()
            model.render(shape, chunk=EVAL_CHUNK)
            _sync(device)
            if i >= warmup:
                times.append((time.perf_counter() - t0) * 1e3)
    model.train(was_training)
    return {"latency_ms": statistics.median(times), "latency_ms_all": times,
            "latency_device": str(device)}
