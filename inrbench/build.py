"""Config -> objects: the one place where ``cfg.data``, ``cfg.model`` and ``cfg.task`` become
constructor calls. Keys are the constructors' arguments; what a constructor needs from the rest
of the run (the signal's size, the model, the data module) is filled in here by name."""

from __future__ import annotations

from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from inrbench.data import create_datamodule
from inrbench.data.base import SignalSpec
from inrbench.data.registry import DATAMODULES
from inrbench.errors import ConfigError
from inrbench.models import create_model
from inrbench.models.base import CoordinateModule, name_model
from inrbench.models.registry import MODELS
from inrbench.registry import TASKS, accepted_kwargs, check_kwargs


def _section(cfg: DictConfig, name: str) -> dict:
    return OmegaConf.to_container(cfg[name], resolve=True)


def build_datamodule(cfg: DictConfig):
    """``cfg.data`` as a data module; ``seed`` comes from ``trainer.seed`` when the module takes
    one and the config gives none."""
    kwargs = _section(cfg, "data")
    name = kwargs.pop("name")
    if "seed" not in kwargs and "seed" in (accepted_kwargs(DATAMODULES.get(name)) or []):
        kwargs["seed"] = int(cfg.trainer.seed)
    return create_datamodule(name, **kwargs)


def model_kwargs(cfg: DictConfig, spec: SignalSpec) -> dict:
    """``cfg.model`` with ``name`` and the signal-dependent arguments the model accepts
    (``in_features``, ``out_features``, ``signal_shape``) filled from the data's spec."""
    kwargs = _section(cfg, "model")
    valid = accepted_kwargs(MODELS.get(kwargs["name"])) or []
    derived = {"in_features": len(spec.shape), "out_features": spec.channels,
               "signal_shape": list(spec.shape)}
    for key, value in derived.items():
        if key in valid and kwargs.get(key) is None:
            kwargs[key] = value
    return kwargs


def build_model(cfg: DictConfig, spec: SignalSpec):
    """``cfg.model`` as a module sized for the data's spec. A module that only maps
    coordinates to values (no ``render``, not an :class:`~inrbench.models.base.INR`) is
    wrapped in a :class:`~inrbench.models.base.CoordinateModule`: it renders by its forward on
    the grid and its MACs are measured only."""
    kwargs = model_kwargs(cfg, spec)
    name = kwargs.pop("name")
    if kwargs.get("out_features", spec.channels) != spec.channels:
        raise ConfigError(f"model.out_features={kwargs['out_features']} but the data has "
                          f"{spec.channels} channel(s); drop the override")
    return as_inr(create_model(name, **kwargs), name, spec.channels)


def as_inr(model, name: str, channels: int):
    """The module ``create_model(name, ...)`` built, as every run (and the decoder of a
    ``.inrb`` file) sees it: wrapped in a :class:`~inrbench.models.base.CoordinateModule` when
    it has no ``render``, and carrying ``name`` for the lines that refuse it."""
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model {name!r} built a {type(model).__name__}, not a torch "
                          f"nn.Module mapping coordinates to values")
    if not callable(getattr(model, "render", None)):
        model = CoordinateModule(model, out_features=channels)
    return name_model(model, name)


def task_context(cfg: DictConfig, model, datamodule, spec: SignalSpec) -> dict[str, Any]:
    """What a task builder may ask for by name besides its keys."""
    return {"model": model, "spec": spec, "datamodule": datamodule,
            "seed": int(cfg.trainer.seed), "data_name": str(cfg.data.name),
            "model_config": model_kwargs(cfg, spec)}


def build_task(cfg: DictConfig, model, datamodule, spec: SignalSpec):
    """``cfg.task`` as the LightningModule that trains ``model`` (``task.name`` picks the
    builder registered with :func:`inrbench.registry.register_task`)."""
    keys = _section(cfg, "task")
    builder = TASKS.get(keys.pop("name", None) or "fit")
    context = task_context(cfg, model, datamodule, spec)
    accepted = accepted_kwargs(builder)
    given = {k: v for k, v in context.items() if accepted is None or k in accepted}
    check_kwargs(builder, {**given, **keys}, "task")
    return builder(**given, **keys)


def check_output_shape(model, spec: SignalSpec, name: str) -> None:
    """Raise ConfigError unless ``model`` maps ``(n, dims)`` coordinates to ``(n, channels)``.

    Two corner coordinates of the signal's grid go through ``forward`` once, before training:
    an output of another shape would be broadcast against the targets by the loss (``(n,)``
    against ``(n, 1)`` trains on an ``(n, n)`` error) or fail in a reshape mid-run. The
    forward runs without gradients, in eval mode, on a forked random state, so the run that
    follows is the one it would have been."""
    dims = len(spec.shape)
    corner = torch.tensor([[-1.0] * dims, [1.0] * dims])
    ref = next(model.parameters(), None)
    if ref is not None:
        corner = corner.to(device=ref.device,
                           dtype=ref.dtype if ref.is_floating_point() else torch.float32)
    want = (2, spec.channels)
    training = model.training
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            model.eval()
            got = model(corner)
    finally:
        model.train(training)
    shape = tuple(getattr(got, "shape", ()))
    if not isinstance(got, torch.Tensor) or shape != want:
        what = f"shape {shape}" if isinstance(got, torch.Tensor) else type(got).__name__
        raise ConfigError(f"model {name!r} maps {tuple(corner.shape)} coordinates to {what}, "
                          f"but the signal needs {want} ({spec.channels} channel(s) per "
                          f"sample of its {dims}-d grid); its forward must return "
                          f"(n, {spec.channels})")
