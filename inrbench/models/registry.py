"""Model registry (timm style): ``register_model``, ``create_model``, ``list_models``."""

from __future__ import annotations

from typing import Any

from torch import nn

from inrbench.registry import Registry, check_kwargs, subclass_of

MODELS = Registry("model", flag="--model", accepts=subclass_of(nn.Module),
                  expects="a torch nn.Module subclass")


def register_model(fn=None, *, name: str | None = None):
    """Register a builder ``fn(**kwargs) -> INR`` under ``name`` (default: ``fn.__name__``)."""
    return MODELS.register(fn, name=name)


def create_model(name: str, **kwargs: Any):
    """Build a registered model; unknown names or keywords raise a ConfigError naming choices."""
    builder = MODELS.get(name)
    check_kwargs(builder, kwargs, "model")
    return builder(**kwargs)


def list_models(pattern: str = "*") -> list[str]:
    return MODELS.names(pattern)


def register_variant(name: str, cls, **defaults: Any):
    """Register ``name`` as ``cls`` with different default arguments (e.g. ``asmr_big``)."""

    def builder(**kwargs):
        return cls(**{**defaults, **kwargs})

    builder.__name__ = name
    builder.__doc__ = f"{cls.__name__} with defaults {defaults}"
    builder.__wrapped_class__ = cls
    builder.variant_defaults = defaults
    return MODELS.register(builder, name=name)
