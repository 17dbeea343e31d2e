"""Parameters, MACs (paper convention and measured) and render latency."""

from inrbench.profiling.counts import macs_counts
from inrbench.profiling.latency import latency_budget, render_latency_ms, sync_device
from inrbench.profiling.macs import count_params, measured_macs, profile

__all__ = ["count_params", "latency_budget", "macs_counts", "measured_macs", "profile",
           "render_latency_ms", "sync_device"]
