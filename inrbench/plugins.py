"""Plugins: models, data modules, tasks and config files from the user's own packages.

Three ways in, one registry each (timm's ``register_model``, nerfstudio's entry points):

* an installed package declares entry points in the groups ``inrbench.models``,
  ``inrbench.datamodules`` and ``inrbench.tasks`` (``name = "pkg.module:Object"``: the object is
  registered under ``name``; an entry point naming a module just imports it, for modules that
  call ``register_model`` themselves), and ``inrbench.conf`` (``name = "pkg"``: the folder
  ``pkg/conf/`` holds ``model/<name>.yaml``, ``data/``, ``task/`` files like the suite's own);
* ``--model pkg.module:Class`` (or ``--data``, ``--task``) names a class directly, no packaging
  needed (:func:`load_references`): only on the command line, and only a class of the kind the
  flag asks for (an ``nn.Module``, a ``LightningDataModule``, a ``LightningModule``) or a
  builder its module registers. A name read from a file never imports anything;
* a user's script imports inrbench, calls ``register_model`` and then ``inrbench.cli.main()``.

``$INRBENCH_PLUGINS`` (comma-separated module names) imports modules before the run, for the
third way without a script. A plugin that fails to import, or claims a name that is taken,
gets one line on stderr naming its package and the fix; everything else keeps working.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from inrbench.data.registry import DATAMODULES
from inrbench.models.registry import MODELS
from inrbench.registry import TASKS

GROUPS = {"inrbench.models": MODELS, "inrbench.datamodules": DATAMODULES,
          "inrbench.tasks": TASKS}
#: the registry each command-line flag names an entry of
FLAGS = {"model": MODELS, "data": DATAMODULES, "task": TASKS}
CONF_GROUP = "inrbench.conf"
ENV = "INRBENCH_PLUGINS"

_state = {"loaded": False}
#: the lines of the plugins that could not be loaded, in the order they were found
PROBLEMS: list[str] = []


def _dist(ep) -> str:
    dist = getattr(ep, "dist", None)
    return getattr(dist, "name", None) or "an unknown package"


def _problem(line: str) -> None:
    PROBLEMS.append(line)
    print(f"inrbench: {line}", file=sys.stderr)


def _register(ep, registry) -> None:
    dist = _dist(ep)
    try:
        obj = ep.load()
    except Exception as e:  # the plugin's own bug: named, and the rest still loads
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        _problem(f"plugin {ep.name!r} of {dist} ({ep.group}) failed to import: "
                 f"{type(e).__name__}: {reason}; fix it or 'pip uninstall {dist}'")
        return
    if inspect.ismodule(obj):
        return  # importing it registered what it holds
    taken = registry._entries.get(ep.name)
    if taken is not None and taken is not obj:
        where = registry.origins.get(ep.name, "inrbench")
        _problem(f"plugin {ep.name!r} of {dist} claims the {registry.kind} name that {where} "
                 f"already registers; it is not loaded: rename the entry point in {dist}'s "
                 f"pyproject.toml")
        return
    registry.register(obj, name=ep.name)
    registry.origins[ep.name] = dist


def load_plugins(reload: bool = False) -> list[str]:
    """Register every installed plugin (once per process, unless ``reload``); the lines of
    those that could not be loaded."""
    if _state.get("loaded") and not reload:
        return PROBLEMS
    _state["loaded"] = True
    _state.pop("conf_roots", None)
    for group, registry in GROUPS.items():
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            _register(ep, registry)
    for name in filter(None, (m.strip() for m in os.environ.get(ENV, "").split(","))):
        try:
            importlib.import_module(name)
        except Exception as e:
            _problem(f"${ENV} names {name!r}, which failed to import: {type(e).__name__}: "
                     f"{e}; fix it or remove it from ${ENV}")
    return PROBLEMS


def load_references(given: dict[str, list]) -> None:
    """Import and register the ``module:Name`` references the user typed on the command line
    (``{"model": [...], "data": [...], "task": [...]}``, plain names ignored): the one route by
    which a reference is imported. A run's ``config.yaml``, a bitstream or a sweep file naming
    the same reference then finds it registered; naming one alone, they are refused."""
    for flag, names in given.items():
        for name in names:
            if isinstance(name, str) and ":" in name:
                FLAGS[flag].load_reference(name)


def conf_roots() -> list[Path]:
    """The ``conf/`` folders of installed plugins (group ``inrbench.conf``), without importing
    them; found once per process (again after ``load_plugins(reload=True)``)."""
    if "conf_roots" not in _state:
        _state["conf_roots"] = _find_conf_roots()
    return _state["conf_roots"]


def _find_conf_roots() -> list[Path]:
    roots = []
    for ep in sorted(entry_points(group=CONF_GROUP), key=lambda e: e.name):
        try:
            spec = importlib.util.find_spec(ep.value)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            _problem(f"plugin {ep.name!r} of {_dist(ep)} ({CONF_GROUP}) names {ep.value!r}, "
                     f"which is not an importable package with a conf/ folder")
            continue
        roots += [Path(p) / "conf" for p in spec.submodule_search_locations
                  if (Path(p) / "conf").is_dir()]
    return roots
