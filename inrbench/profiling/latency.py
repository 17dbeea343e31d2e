"""Full-signal render latency: warm-up, then the median of N renders in inference mode."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch

from inrbench.models.base import EVAL_CHUNK


def sync_device(device) -> None:
    """Wait for the device's queued work, so a wall-clock reading after it is the work's."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


#: a run's latency renders may take this share of the time it spent fitting ...
LATENCY_SHARE = 0.25
#: ... but at least this many seconds (and at least one timed render is always made)
LATENCY_FLOOR_S = 2.0


def latency_budget(budget_s: float, fit_s: float | None) -> float:
    """Seconds the latency renders of a run that fitted for ``fit_s`` seconds may take:
    ``min(budget_s, max(LATENCY_FLOOR_S, LATENCY_SHARE x fit_s))``, so a 3-step try does not
    spend longer timing renders than training (every run of a minute or more keeps
    ``budget_s`` up to its quarter; ``fit_s`` None: ``budget_s``)."""
    if fit_s is None:
        return float(budget_s)
    return min(float(budget_s), max(LATENCY_FLOOR_S, LATENCY_SHARE * float(fit_s)))


def render_latency_ms(model, shape: Sequence[int], repeats: int = 10, warmup: int = 3,
                      budget_s: float = 60.0) -> dict:
    """``{"latency_ms": median, "latency_ms_all": [...]}`` of ``model.render(shape)``.

    Renders stop once ``budget_s`` seconds are spent, after at least one timed render: a
    20-megapixel SIREN render takes minutes on a CPU, and 13 of them would outlast the run.
    ``latency_repeats`` records how many renders the median is of, ``latency_budget_s`` the
    budget."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    times: list[float] = []
    start = time.perf_counter()
    with torch.inference_mode():
        warm = 0
        while warm < warmup and time.perf_counter() - start < budget_s / 2:
            model.render(shape, chunk=EVAL_CHUNK)
            warm += 1
        sync_device(device)
        while len(times) < max(1, repeats):
            t0 = time.perf_counter()
            model.render(shape, chunk=EVAL_CHUNK)
            sync_device(device)
            times.append((time.perf_counter() - t0) * 1e3)
            if time.perf_counter() - start >= budget_s:
                break
    model.train(was_training)
    return {"latency_ms": statistics.median(times), "latency_ms_all": times,
            "latency_repeats": len(times), "latency_warmup": warm,
            "latency_budget_s": float(budget_s),
            "latency_device": str(device)}
