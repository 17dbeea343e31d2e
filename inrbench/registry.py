"""Name -> builder registries, in the style of timm's ``register_model``/``create_model``."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from inrbench.errors import ConfigError


class Registry:
    """A mapping from short names to builders, with glob listing and helpful errors.

    A name resolves only to what is registered (the suite's own entries, installed plugins,
    modules that registered themselves). A ``module.path:Name`` reference is imported only by
    :meth:`load_reference`, which the command line calls for what its user typed (``--model``,
    ``--data``, ``--task``), and then only for an object that ``accepts`` takes: importing a
    module is the user's choice, but a name read from a file (a run's ``config.yaml``, a
    bitstream's header, a sweep file) is a stranger's and never imports or calls anything."""

    def __init__(self, kind: str, flag: str = "", accepts: Callable[[Any], bool] | None = None,
                 expects: str = "a class"):
        self.kind = kind
        #: the command-line flag that names an entry (``--model``): said in the refusals
        self.flag = flag or f"--{kind.split()[-1]}"
        #: what an object named by a reference must be (besides an already registered builder)
        self.accepts = accepts or inspect.isclass
        self.expects = expects
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
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        if isinstance(name, str) and ":" in name:
            raise ConfigError(
                f"{self.kind} {name!r} is not registered: a module:Name reference read from a "
                f"file (a run's config.yaml, a .inrb header, a sweep or experiment file) is "
                f"never imported; if you trust it, give {self.flag} {name} on the command "
                f"line, or install it as a plugin (docs/plugins.md)")
        raise ConfigError(
            f"unknown {self.kind} {name!r}; valid choices: {', '.join(self.names())}, or "
            f"a class of your own as {self.flag} module.path:ClassName")

    def load_reference(self, reference: str) -> None:
        """Import ``package.module:Name`` and register that object under the reference itself,
        if it is what this registry takes (``accepts``) or a builder the module registered.
        Only for a reference the user typed on the command line."""
        if reference in self._entries:
            return
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
        registered = any(obj is entry for entry in self._entries.values())
        if not registered and not self.accepts(obj):
            what = obj.__name__ if inspect.isclass(obj) else type(obj).__name__
            raise ConfigError(f"{self.flag} {reference}: {what} is not {self.expects} nor a "
                              f"registered {self.kind} builder; name such a class as "
                              f"module.path:ClassName")
        self._entries[reference] = obj
        self.origins[reference] = module_name

    def names(self, pattern: str = "*") -> list[str]:
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: str) -> bool:
        return isinstance(name, str) and name in self._entries


def subclass_of(*bases: type) -> Callable[[Any], bool]:
    """``accepts`` predicate: a class deriving from one of ``bases``."""
    return lambda obj: inspect.isclass(obj) and issubclass(obj, bases)


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
def _is_lightning_module(obj: Any) -> bool:
    import lightning as L  # on call: the utilities layer loads no framework to be imported

    return inspect.isclass(obj) and issubclass(obj, L.LightningModule)


TASKS = Registry("task", accepts=_is_lightning_module, expects="a LightningModule subclass")


def register_task(name: str) -> Callable[..., Any]:
    """Decorator: register a task builder (or LightningModule class) under ``name``."""
    return TASKS.register(name=name)


def list_tasks(pattern: str = "*") -> list[str]:
    return TASKS.names(pattern)
