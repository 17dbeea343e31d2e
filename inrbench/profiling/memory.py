"""Peak memory of one phase of a run (training, the evaluation render): host RSS and, on a
GPU, ``torch.cuda.max_memory_allocated``.

Host: on Linux the kernel's high-water mark ``VmHWM`` of ``/proc/self/status``, which
writing ``5`` to ``/proc/self/clear_refs`` resets, so each phase gets its own peak. Elsewhere
(or where the reset is refused) ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, the process's
peak since it started, which never resets; ``rss_source`` says which was read.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

import torch

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _reset_hwm() -> bool:
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def _hwm_bytes() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _maxrss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes vs KiB


class PeakMemory:
    """``start()`` before a phase, ``stop()`` after it: ``{"rss_mb", "rss_source", "gpu_mb"}``
    (``gpu_mb`` None without CUDA)."""

    def __init__(self, device: torch.device | str | None = None):
        self.device = torch.device(device) if device is not None else None
        self.resettable = False

    def _cuda(self) -> bool:
        return torch.cuda.is_available() and (self.device is None or self.device.type == "cuda")

    def start(self) -> None:
        self.resettable = _reset_hwm() and _hwm_bytes() is not None
        if self._cuda():
            torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> dict:
        if self.resettable:
            rss, source = _hwm_bytes(), "VmHWM (reset at phase start)"
        else:
            rss, source = _maxrss_bytes(), "ru_maxrss (process peak since start)"
        gpu = torch.cuda.max_memory_allocated(self.device) / 2**20 if self._cuda() else None
        return {"rss_mb": rss / 2**20, "rss_source": source, "gpu_mb": gpu}
