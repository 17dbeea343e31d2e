"""Parameters, MACs (paper convention and measured), FLOPs by op class and render latency."""

from inrbench.profiling.counts import macs_counts
from inrbench.profiling.flops import COST_RULE, flops_per_sample
from inrbench.profiling.latency import latency_budget, render_latency_ms, sync_device
from inrbench.profiling.macs import count_params, measured_macs, profile

__all__ = ["COST_RULE", "count_params", "flops_per_sample", "latency_budget", "macs_counts",
           "measured_macs", "profile", "render_latency_ms", "sync_device"]
