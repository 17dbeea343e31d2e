"""Data module registry: ``register_datamodule``, ``create_datamodule``, ``list_datamodules``."""

from __future__ import annotations

from typing import Any

import lightning as L

from inrbench.registry import Registry, check_kwargs, subclass_of

DATAMODULES = Registry("data module", flag="--data", accepts=subclass_of(L.LightningDataModule),
                       expects="a LightningDataModule subclass (SignalDataModule)")


def register_datamodule(cls=None, *, name: str | None = None):
    return DATAMODULES.register(cls, name=name)


def create_datamodule(name: str, **kwargs: Any):
    builder = DATAMODULES.get(name)
    check_kwargs(builder, kwargs, "data")
    return builder(**kwargs)


def list_datamodules(pattern: str = "*") -> list[str]:
    return DATAMODULES.names(pattern)


def served_spec(name: str, **kwargs: Any):
    """The ``SignalSpec`` the data module ``name`` serves with these arguments (a stand-in's when
    the paper's files are missing), from its ``spec()``, which reads no signal."""
    return create_datamodule(name, **kwargs).spec()
