"""Name -> builder registries, in the style of timm's ``register_model``/``create_model``."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from inrbench.errors import ConfigError


class Registry:
    """A mapping from short names to builders, with glob listing and helpful errors."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Callable[..., Any]] = {}
        #: where each entry that is not built in comes from (a package, or ``module:Class``)
        self.origins: dict[str, str] = {}

    def register(self, fn: Callable[..., Any] | None = None, *, name: str | None = None):
        def deco(f):
            key = name or f.__name__
            if key in self._entries and self._entries[key] is not f:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._entries[key] = f
            return f

        return deco(fn) if fn is not None else deco

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._entries and isinstance(name, str) and ":" in name:
            self._resolve(name)
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}, or "
                f"a class of your own as module.path:ClassName"
            )
        return self._entries[name]

    def _resolve(self, reference: str) -> None:
        """``package.module:Name`` -> that object, registered under the reference itself."""
        module_name, _, attr = reference.partition(":")
        if not module_name or not attr:
            raise ConfigError(f"{self.kind} {reference!r} must read module.path:ClassName")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ConfigError(f"cannot import {module_name!r} for {self.kind} {reference!r} "
                              f"({e}); put its folder on PYTHONPATH or pip install its "
                              f"package") from None
        obj = module
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise ConfigError(f"module {module_name!r} has no {attr!r} for {self.kind} "
                                  f"{reference!r}; check the name after the colon")
            obj = getattr(obj, part)
        if not callable(obj):
            raise ConfigError(f"{reference!r} is not a class or function")
        self._entries[reference] = obj
        self.origins[reference] = module_name

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        if name not in self._entries and isinstance(name, str) and ":" in name:
            try:
                self._resolve(name)
            except ConfigError:
                return False
        return name in self._entries


def keyword_parameters(builder: Callable[..., Any]):
    """``(parameters, open)``: the keyword parameters a builder takes, each with the function
    that declares it (for its type hints), following ``**kwargs`` up a class's MRO and through
    registered variants; ``open`` is True when a ``**kwargs`` reaches past the chain (it then
    takes any keyword)."""
    target = getattr(builder, "__wrapped_class__", builder)
    chain = target.__mro__ if inspect.isclass(target) else [target]
    found: dict[str, tuple[inspect.Parameter, Callable]] = {}
    for obj in chain:
        if inspect.isclass(obj) and "__init__" not in vars(obj):
            continue
        fn = obj.__init__ if inspect.isclass(obj) else obj
        params = inspect.signature(fn).parameters.values()
        for p in params:
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                found.setdefault(p.name, (p, fn))
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return found, False
    return found, True


def accepted_kwargs(builder: Callable[..., Any]) -> list[str] | None:
    """Keyword names a builder accepts (:func:`keyword_parameters`); ``None`` when it accepts
    anything."""
    found, open_ = keyword_parameters(builder)
    return None if open_ else list(found)


def check_kwargs(builder: Callable[..., Any], kwargs: dict[str, Any], where: str) -> None:
    """Raise a ConfigError naming any keyword the builder does not accept."""
    valid = accepted_kwargs(builder)
    if valid is None:
        return
    unknown = [k for k in kwargs if k not in valid]
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(where + '.' + k for k in unknown)}; "
            f"valid keys: {', '.join(valid)}"
        )


#: tasks: a builder ``build(model, spec, ..., **keys)`` whose keyword arguments are the keys of
#: ``conf/task/<name>.yaml``; :func:`inrbench.build.build_task` fills in the run's objects
#: (``model``, ``spec``, ``datamodule``, ``seed``, ``data_name``, ``model_config``) that it names.
TASKS = Registry("task")


def register_task(name: str) -> Callable[..., Any]:
    """Decorator: register a task builder (or LightningModule class) under ``name``."""
    return TASKS.register(name=name)


def list_tasks(pattern: str = "*") -> list[str]:
    return TASKS.names(pattern)
