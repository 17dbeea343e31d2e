"""Task registry: ``register_task``, ``create_task``, ``list_tasks``.

A task is a LightningModule that receives its ``nn.Module``. ``cfg.task.name`` picks it
(default ``fit``; ``inrbench run --task NAME``). A builder has the signature

    build(cfg, model, datamodule, spec) -> LightningModule

A task may define ``summary(datamodule, out: Path) -> dict``: after training the runner calls
it and merges its dict into ``metrics.json`` instead of the fitting task's full-signal
evaluation (which renders ``spec.shape`` once and scores it against ``datamodule.signal``).
The dict must hold the key named by its ``"metric"`` entry (default ``psnr``).
A task may also set ``train_data``, a LightningDataModule the Trainer iterates instead of the
run's data module (the meta-learning task serves batches of images of the data set).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inrbench.registry import Registry

TASKS = Registry("task")


def register_task(name: str) -> Callable:
    """Decorator: register ``build(cfg, model, datamodule, spec) -> LightningModule``."""
    return TASKS.register(name=name)


def create_task(cfg: Any, model, datamodule, spec):
    """Build the task ``cfg.task.name`` (``fit`` when the config has no name)."""
    name = cfg.task.get("name", None) or "fit"
    return TASKS.get(name)(cfg, model, datamodule, spec)


def list_tasks(pattern: str = "*") -> list[str]:
    return TASKS.names(pattern)
