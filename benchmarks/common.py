"""Helpers shared by the benchmarks: median timing of a callable, machine description."""

from __future__ import annotations

import statistics
import time

import torch

from inrbench.profiling.machine import machine as machine_facts


def elapsed_ms(fn) -> float:
    """Milliseconds of one call of ``fn``, GPU work included (synchronised before and after)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) * 1e3


def median_ms(fn, repeats: int = 10, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    return statistics.median(elapsed_ms(fn) for _ in range(repeats))


def machine() -> str:
    facts = machine_facts(device())
    return (f"{facts['device_name']}, {facts['cpu_count']} CPUs, torch {torch.__version__}, "
            f"{facts['torch_threads']} threads")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
