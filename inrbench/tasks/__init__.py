"""LightningModules: fitting one signal (and, later, meta-learning and compression)."""

from inrbench.tasks.fit import FitTask

__all__ = ["FitTask"]
