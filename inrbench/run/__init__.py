"""Running: the Trainer, the results folder, its lock and its records."""

from inrbench.run.records import default_out
from inrbench.run.runner import run

__all__ = ["default_out", "run"]
