"""Params and MACs at fit start; full-signal render latency at fit end."""

from __future__ import annotations

import lightning as L

from inrbench.profiling import profile, render_latency_ms


def _log(trainer: L.Trainer, values: dict) -> None:
    scalars = {k: v for k, v in values.items() if isinstance(v, (int, float))}
    for logger in trainer.loggers:
        logger.log_metrics({f"model/{k}": v for k, v in scalars.items()},
                           step=trainer.global_step)


class ProfileCallback(L.Callback):
    """Logs ``params``, ``macs`` (paper convention) and ``macs_measured`` when fitting starts."""

    def __init__(self, shape, results: dict):
        self.shape, self.results = tuple(shape), results

    def on_fit_start(self, trainer, pl_module):
        stats = profile(pl_module.model, self.shape)
        self.results.update(stats)
        _log(trainer, stats)


class LatencyCallback(L.Callback):
    """Median full-signal render time (after warm-up, inference mode) when fitting ends."""

    def __init__(self, shape, results: dict, repeats: int = 10, warmup: int = 3,
                 budget_s: float = 60.0):
        self.shape, self.results = tuple(shape), results
        self.repeats, self.warmup, self.budget_s = repeats, warmup, budget_s

    def on_fit_end(self, trainer, pl_module):
        stats = render_latency_ms(pl_module.model, self.shape, self.repeats, self.warmup,
                                  self.budget_s)
        self.results.update(stats)
        _log(trainer, {"latency_ms": stats["latency_ms"]})
