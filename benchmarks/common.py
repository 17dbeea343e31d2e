"""Helpers shared by the benchmarks: median timing of a callable, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time

import torch


def median_ms(fn, repeats: int = 10, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def machine() -> str:
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor()
    return (f"{dev or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
