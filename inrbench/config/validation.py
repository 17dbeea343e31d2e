"""One check of every config key's type and range, before anything is written.

Every user error reads the same way, one line naming the key, the value and what is allowed::

    task.lr must be a number > 0, got -1
    model.hidden_dim must be an integer >= 1, got 'abc'

Where the rules come from:

* ``task.*``: the keys of the task's ``conf/task/<name>.yaml``, each checked by its rule in
  :data:`TASK_RULES` or else by the type of its default value (an int default takes
  integers, a float default numbers, a bool default true/false, a string default text).
* ``trainer.*`` (and any other section that is not ``model``/``data``): the :data:`SCHEMA`
  below, or the type of the key's default in ``conf/defaults.yaml``.
* ``model.*`` and ``data.*``: the type annotations of the registered class's constructor
  (``hidden_dim: int = 256`` takes integers, ``tile: list[int] | None`` a list of integers or
  null); the constructor then checks ranges with :mod:`inrbench.models.checks` before any
  tensor is built. So a new model or data module needs annotated constructor arguments and
  nothing else.

Adding keys: a new task's keys are its builder's arguments, with their defaults in
``conf/task/<name>.yaml`` (a range goes in :data:`TASK_RULES`); a key every task or the trainer
takes may be declared with its rule::

    from inrbench.config.validation import Int, declare
    declare("trainer", probe=Int(min=1))

A declared key is valid even where no file holds it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from inrbench.config.machine import check_machine
from inrbench.errors import ConfigError
from inrbench.registry import TASKS, check_kwargs, keyword_parameters

# -- key specifications --------------------------------------------------------------------


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_integral(v) -> bool:
    """An int, or a float that is a whole number (``task.steps=1e4`` from a command line)."""
    return _is_int(v) or (isinstance(v, float) and math.isfinite(v) and v == int(v))


def _is_number(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


@dataclass(frozen=True)
class Spec:
    """What one key accepts. ``check`` returns the value (ints given as 1e4 become ints) or
    raises a ConfigError naming the key, the value and what is allowed."""

    nullable: bool = False

    def allowed(self) -> str:
        raise NotImplementedError

    def ok(self, value) -> bool:
        raise NotImplementedError

    def convert(self, value):
        return value

    def check(self, key: str, value):
        if value is None and self.nullable:
            return None
        if not self.ok(value):
            text = self.allowed() + (" (or null)" if self.nullable else "")
            raise ConfigError(f"{key} must be {text}, got {value!r}")
        return self.convert(value)


def _bounds(lo, hi, gt) -> str:
    parts = []
    if lo is not None:
        parts.append(f"> {lo}" if gt else f">= {lo}")
    if hi is not None:
        parts.append(f"<= {hi}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Int(Spec):
    min: int | None = None
    max: int | None = None

    def allowed(self) -> str:
        b = _bounds(self.min, self.max, False)
        return "an integer" + (f" {b}" if b else "")

    def ok(self, v) -> bool:
        return _is_integral(v) and (self.min is None or v >= self.min) and \
            (self.max is None or v <= self.max)

    def convert(self, v):
        return int(v)


@dataclass(frozen=True)
class Num(Spec):
    """A finite number; ``min`` inclusive unless ``gt`` (then strictly greater)."""

    min: float | None = None
    max: float | None = None
    gt: bool = False

    def allowed(self) -> str:
        b = _bounds(self.min, self.max, self.gt)
        return "a number" + (f" {b}" if b else "")

    def ok(self, v) -> bool:
        if not _is_number(v):
            return False
        if self.min is not None and (v <= self.min if self.gt else v < self.min):
            return False
        return self.max is None or v <= self.max

    def convert(self, v):
        return float(v) if isinstance(v, float) else v


@dataclass(frozen=True)
class Bool(Spec):
    def allowed(self) -> str:
        return "true or false"

    def ok(self, v) -> bool:
        return isinstance(v, bool)


@dataclass(frozen=True)
class Str(Spec):
    def allowed(self) -> str:
        return "a string"

    def ok(self, v) -> bool:
        return isinstance(v, str) and v != ""


@dataclass(frozen=True, init=False)
class Choice(Spec):
    values: tuple = ()

    def __init__(self, *values, nullable: bool = False):
        object.__setattr__(self, "values", tuple(values))
        object.__setattr__(self, "nullable", nullable)

    def allowed(self) -> str:
        return "one of " + ", ".join(map(str, self.values))

    def ok(self, v) -> bool:
        return not isinstance(v, (list, dict)) and v in self.values and \
            (not isinstance(v, bool) or any(isinstance(c, bool) for c in self.values))


@dataclass(frozen=True)
class ListOf(Spec):
    item: Spec = Int(min=1)

    def allowed(self) -> str:
        return f"a list of {self.item.allowed().replace('an integer', 'integers')}"

    def ok(self, v) -> bool:
        return isinstance(v, (list, tuple)) and all(self.item.ok(x) for x in v)

    def convert(self, v):
        return [self.item.convert(x) for x in v]


@dataclass(frozen=True)
class AnyOf(Spec):
    """Any one of ``options`` (e.g. a number or a list of numbers)."""

    options: tuple = ()

    def allowed(self) -> str:
        return " or ".join(o.allowed() for o in self.options)

    def ok(self, v) -> bool:
        return any(o.ok(v) for o in self.options)

    def convert(self, v):
        return next(o for o in self.options if o.ok(v)).convert(v)


@dataclass(frozen=True)
class Anything(Spec):
    def allowed(self) -> str:
        return "anything"

    def ok(self, v) -> bool:
        return True


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value) -> float | None:
    """Seconds in ``value``: a number of seconds, or text such as ``90s``, ``10m``, ``1.5h``,
    ``1h30m`` or ``00:10:00`` (h:m:s); None when it is none of these or not > 0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) and value > 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().lower().replace(" ", "")
    if ":" in text:
        parts = text.split(":")
        if len(parts) > 3 or not all(p.replace(".", "", 1).isdigit() for p in parts):
            return None
        total = sum(float(p) * 60 ** i for i, p in enumerate(reversed(parts)))
        return total if total > 0 else None
    total, number = 0.0, ""
    for ch in text:
        if ch.isdigit() or ch == ".":
            number += ch
        elif ch in _UNITS and number and number.count(".") <= 1:
            total, number = total + float(number) * _UNITS[ch], ""
        else:
            return None
    if number:  # a bare number: seconds
        if number.count(".") > 1:
            return None
        total += float(number)
    return total if total > 0 else None


@dataclass(frozen=True)
class Duration(Spec):
    """Wall-clock seconds, written as a number or as ``90s`` / ``10m`` / ``1h30m`` / h:m:s;
    converted to seconds (a float)."""

    def allowed(self) -> str:
        return "a duration > 0 (seconds, or e.g. 90s, 10m, 1h30m, 00:10:00)"

    def ok(self, v) -> bool:
        return parse_duration(v) is not None

    def convert(self, v):
        return parse_duration(v)


# -- the schema of the task and trainer sections -------------------------------------------

#: the rules of task keys by name, applied to the keys a task's ``conf/task/<name>.yaml`` holds
#: (which keys a task takes is its file's business; what a key of that name accepts is here)
TASK_RULES: dict[str, Spec] = {
    "lr": Num(min=0, gt=True),
    "lr_min": Num(min=0),
    "scheduler": Choice("cosine", "none"),
    "optimizer": Choice("adam", "adan"),
    "lr_step": Int(min=0), "lr_gamma": Num(min=0, gt=True),
    "steps": Int(min=1),
    "eval_every": Int(min=1),
    "accumulate": Int(min=1),
    "hyper_dim": Int(min=1), "patch_size": Int(min=1), "patch_padding": Int(min=0),
    "enc_depth": Int(min=1), "dec_depth": Int(min=1), "n_heads": Int(min=1),
    "head_dim": Int(min=1), "ff_dim": Int(min=1), "betas": ListOf(item=Num(min=0, max=1)),
    "ema_decay": Num(min=0, max=1, nullable=True), "ema_every": Int(min=1),
    "grad_clip": Num(min=0, gt=True, nullable=True), "coord_noise": Bool(),
    "sr_scale": Int(min=1),
    "targets": ListOf(item=Num()),
    # data-set tasks (inrbench/tasks/evalset.py): test images scored, the encoding curve's
    # length, images per forward pass
    "eval_images": AnyOf(nullable=True, options=(Choice("auto", "all"), Int(min=1))),
    "curve_steps": AnyOf(options=(Choice("auto"), Int(min=1))),
    "image_chunk": Int(min=1, nullable=True),
    "ofa_eval": Choice("auto", "all"),
}

#: declared sections: ``task`` keys declared here are valid for every task
SCHEMA: dict[str, dict[str, Spec]] = {
    "task": {},
    "trainer": {
        "seed": Int(min=0, max=2**32 - 1),
        "out": Str(nullable=True),
        "logger": Choice("wandb", "csv", "none"),
        "wandb_project": Str(),
        "accelerator": Choice("auto", "cpu", "gpu", "cuda", "mps"),
        "devices": Int(min=1),
        "num_nodes": Int(min=1),
        "strategy": Str(),
        "max_time": Duration(nullable=True),
        "max_epochs": Int(min=1, nullable=True),
        "checkpoint_every": Int(min=1),
        "keep_checkpoints": Int(min=1),
        "latency_repeats": Int(min=1),
        "latency_warmup": Int(min=0),
        "latency_budget_s": Num(min=0.0, gt=True),
        "progress_bar": Bool(),
        "verbose": Bool(),
    },
}

# keys a resumed run may change; anything else must agree with the folder's config.yaml
# (task.steps is handled by the runner: the cosine schedule is re-planned over the new total)
RESUMABLE = {"task.steps", "task.eval_every", "trainer.out", "trainer.logger",
             "trainer.wandb_project", "trainer.accelerator", "trainer.checkpoint_every",
             "trainer.keep_checkpoints", "trainer.latency_repeats", "trainer.latency_warmup",
             "trainer.latency_budget_s", "trainer.progress_bar", "trainer.verbose",
             "trainer.max_time", "trainer.max_epochs", "task.targets"}


def declare(section: str, resumable: Sequence[str] = (), **keys: Spec) -> None:
    """Declare keys of ``section`` (``task``, ``trainer`` or a new section) with their rules;
    ``resumable`` names those a ``--resume`` may change."""
    for key, spec in keys.items():
        if not isinstance(spec, Spec):
            raise TypeError(f"declare({section!r}, {key}=...) needs a Spec, e.g. Int(min=1)")
    SCHEMA.setdefault(section, {}).update(keys)
    RESUMABLE.update(f"{section}.{k}" for k in resumable)


def spec_from_default(value) -> Spec:
    """The rule for an undeclared key: the type of its value in defaults.yaml."""
    if isinstance(value, bool):
        return Bool()
    if _is_int(value):
        return Int()
    if isinstance(value, float):
        return Num()
    if isinstance(value, str):
        return Str()
    return Anything(nullable=True)


def declared(section: str, base: DictConfig | None = None) -> dict[str, Spec]:
    """Every valid key of ``section``: the schema's, then those of ``base`` (defaults.yaml and
    the task's file): task keys by :data:`TASK_RULES`, other keys by the type of their default."""
    specs = dict(SCHEMA.get(section, {}))
    if base is not None and isinstance(base.get(section), DictConfig):
        for key in base[section].keys():
            if key in specs:
                continue
            rule = TASK_RULES.get(key) if section == "task" else None
            specs[key] = rule or spec_from_default(base[section][key])
    return specs


# -- constructor annotations (model.*, data.*) -----------------------------------------------

_SIMPLE = {int: Int(), float: Num(), bool: Bool(), str: Str()}


def _nullable(spec: Spec, nullable: bool) -> Spec:
    if spec.nullable == nullable:
        return spec
    if isinstance(spec, Choice):
        return Choice(*spec.values, nullable=nullable)
    return dataclasses.replace(spec, nullable=nullable)


def spec_from_annotation(annotation) -> Spec | None:
    """``int`` -> Int(), ``float`` -> Num() (ints too), ``list[int] | None`` -> nullable
    ListOf(Int()), ``int | list[int]`` -> AnyOf; ``None`` for annotations with no rule
    (tensors, callables, ``Any``)."""
    if annotation in _SIMPLE:
        return _SIMPLE[annotation]
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        nullable = type(None) in args
        specs = [spec_from_annotation(a) for a in args if a is not type(None)]
        if not specs or any(s is None for s in specs):
            return None
        if len(specs) == 1:
            return _nullable(specs[0], nullable)
        return AnyOf(nullable=nullable, options=tuple(specs))
    if origin in (list, tuple, Sequence, typing.Sequence) or annotation in (list, tuple):
        item = spec_from_annotation(args[0]) if args and args[0] is not Ellipsis else None
        if item is None and args and args[0] is not Ellipsis:
            # a list of lists (ASMR bases) or of anything: only "a list" is checked here
            return ListOf(item=Anything(nullable=True))
        return ListOf(item=item or Anything(nullable=True))
    if origin is typing.Literal:
        return Choice(*args)
    return None


def _hints(fn: Callable) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # an annotation that does not evaluate: skip the type check for it
        return {}


def constructor_specs(builder: Callable) -> dict[str, Spec]:
    """Rules from the annotations of a registered builder's keyword arguments
    (:func:`inrbench.registry.keyword_parameters`)."""
    specs: dict[str, Spec] = {}
    found, _ = keyword_parameters(builder)
    hints = {}
    for name, (p, fn) in found.items():
        if fn not in hints:
            hints[fn] = _hints(fn)
        spec = spec_from_annotation(hints[fn].get(name, p.annotation))
        if spec is not None and p.default is None:
            spec = _nullable(spec, True)
        if spec is not None:
            specs[name] = spec
    return specs


# -- the one entry point -----------------------------------------------------------------------


def to_plain(cfg: DictConfig) -> dict:
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        raise ConfigError(f"cannot resolve the config: {e}".splitlines()[0]) from None


def _builders():
    # imported on call: reading configs (reports) must not load every model family
    import inrbench.data  # noqa: F401  (importing the packages registers the built-in ones)
    import inrbench.models  # noqa: F401
    from inrbench.data.registry import DATAMODULES
    from inrbench.models.registry import MODELS
    from inrbench.plugins import load_plugins

    load_plugins()
    return {"model": MODELS, "data": DATAMODULES}


def validate(cfg: DictConfig, base: DictConfig | None = None) -> DictConfig:
    """Check every key of ``cfg`` (types and ranges) and return it with whole-number floats
    of integer keys made ints. ``base`` is defaults.yaml (its keys are the valid ones)."""
    plain = to_plain(cfg)
    registries = _builders()
    for section, values in plain.items():
        if not isinstance(values, dict):
            continue
        if section in registries:
            name = values.get("name")
            if not isinstance(name, str):
                raise ConfigError(f"{section}.name must be a registered name (see 'inrbench "
                                  f"list'), got {name!r}")
            if name not in registries[section]:
                continue  # unknown names are refused where the builder is looked up (an
                # experiment may profile a data set not registered yet from its signal)
            specs = constructor_specs(registries[section].get(name))
        else:
            specs = declared(section, base)
        for key, value in values.items():
            spec = specs.get(key)
            if spec is None:
                continue  # unknown keys are reported by check_keys / the constructor
            checked = spec.check(f"{section}.{key}", value)
            if type(checked) is not type(value) or checked != value:
                OmegaConf.update(cfg, f"{section}.{key}", checked, merge=False)
    _cross_checks(plain)
    return cfg


def check_buildable(cfg: DictConfig) -> None:
    """Refuse, in one line, what :func:`validate` leaves to the moment a run builds: a model,
    data module or task that is not registered, and a ``model.*``/``data.*`` key its
    constructor does not take, and a strategy or accelerator this machine lacks
    (:func:`inrbench.config.machine.check_machine`). Commands that run many things (bench,
    sweep) call it for every planned config, so a typo stops them before the first run
    trains."""
    plain = to_plain(cfg)
    for section, registry in _builders().items():
        values = dict(plain.get(section) or {})
        name = values.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError(f"{section}.name must be a registered name (see 'inrbench "
                              f"list'), got {name!r}")
        check_kwargs(registry.get(name), values, section)
    task = (plain.get("task") or {}).get("name")
    if TASKS.names() and isinstance(task, str):  # registered once inrbench.tasks is imported
        TASKS.get(task)
    check_machine(cfg)


def _cross_checks(plain: dict) -> None:
    task = plain.get("task") or {}
    lr, lr_min = task.get("lr"), task.get("lr_min")
    if task.get("scheduler") == "cosine" and _is_number(lr) and _is_number(lr_min) \
            and lr_min > lr:
        raise ConfigError(f"task.lr_min={lr_min} is above task.lr={lr}; the cosine schedule "
                          f"anneals down to lr_min: choose task.lr_min <= task.lr")
