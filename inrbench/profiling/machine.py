"""The machine a timing was measured on: run records (``metrics.json``'s ``machine``) and the
benchmarks' printed header both name it, since a wall time means something only next to the
card or CPU that produced it."""

from __future__ import annotations

import os
import platform

import torch


def cpu_name() -> str:
    """The CPU model (Linux's ``/proc/cpuinfo``; ``platform.processor()`` is often empty
    there), else the architecture."""
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), name)
    except OSError:
        return name


def machine(device: torch.device) -> dict:
    """``{"accelerator", "device_name" (card, or the CPU model), "cpu", "cpu_count",
    "torch_threads"}``; reports group timings by ``device_name``."""
    cpu = cpu_name()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    return {"accelerator": device.type, "device_name": name, "cpu": cpu,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
