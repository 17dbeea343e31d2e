"""Lightning callbacks that put params/MACs and render latency into the logs and results."""

from inrbench.callbacks.profile import LatencyCallback, ProfileCallback

__all__ = ["LatencyCallback", "ProfileCallback"]
