"""Config composition with OmegaConf: defaults <- task <- data <- model <- experiment row <- CLI.

Each file in ``conf/`` is a partial root config (``model:``, ``data:``, ``task:`` ...), so a
model file may also carry the paper's training settings for that model. Keys under ``model:``,
``data:`` and ``task:`` are exactly the arguments of the registered class or builder; a task's
keys and their defaults are ``conf/task/<name>.yaml``.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from inrbench.config import validation
from inrbench.config.experiment import Experiment, row_sections
from inrbench.config.files import conf_dir, conf_names, find_conf, load_yaml, parse_overrides
from inrbench.config.rowdefaults import experiment_row, row_defaults
from inrbench.errors import ConfigError


def base_config(task: str = "fit") -> DictConfig:
    """``conf/defaults.yaml`` with ``conf/task/<task>.yaml`` merged in: every valid section, and
    the task section holding exactly the task's keys."""
    base = load_yaml(conf_dir() / "defaults.yaml")
    path = find_conf(f"task/{task}.yaml") if isinstance(task, str) else None
    if path is None:
        valid = conf_names("task")
        raise ConfigError(f"unknown task {task!r}; valid choices: {', '.join(valid)} "
                          f"(one conf/task/<name>.yaml each)")
    layer = load_yaml(path)
    base.task = OmegaConf.merge(layer.get("task") or {}, {"name": task})
    return base


def check_keys(cfg: DictConfig, base: DictConfig, sections=None) -> None:
    """Keys outside ``model``/``data`` must exist in ``base`` (defaults.yaml and the task's file)
    or be declared in :data:`inrbench.config.validation.SCHEMA`; model/data keys are checked
    against their constructors."""
    top = set(base.keys()) | set(validation.SCHEMA)
    for key in cfg.keys():
        if key not in top and key not in RECORDS:
            raise ConfigError(f"unknown config section {key!r}; valid sections: "
                              f"{', '.join(sorted(top))}")
    for section in sections or [s for s in top if s not in ("model", "data")]:
        valid = validation.declared(section, base)
        node = cfg.get(section)
        if node is not None and not isinstance(node, DictConfig):
            raise ConfigError(f"{section} is a section of keys (e.g. {section}.KEY=VALUE), "
                              f"got {section}={node!r}")
        for key in (node or {}).keys():
            if key not in valid:
                raise ConfigError(f"unknown key {section}.{key}{_owner(section, key)}; valid "
                                  f"keys{_of_task(section, base)}: {', '.join(valid)}")


def _of_task(section: str, base: DictConfig) -> str:
    return f" of task {base.task.name}" if section == "task" else ""


def _owner(section: str, key: str) -> str:
    """For a task key of another task: which tasks take it."""
    if section != "task":
        return ""
    owners = [name for name in conf_names("task")
              if key in (load_yaml(find_conf(f"task/{name}.yaml")).get("task") or {})]
    return f" (a key of --task {' or '.join(owners)})" if owners else ""


#: sections the runner adds to a run's config.yaml: records, not configuration
RECORDS = ("data_record", "paper_row", "ladder")


def _task_of(cli: DictConfig, extra: dict | None, row_cfg: DictConfig) -> str:
    """The task a config is for: the command line's ``task.name=``, then ``--task``, then the
    experiment row's, else ``fit``."""
    for source in (OmegaConf.select(cli, "task.name"), (extra or {}).get("task.name"),
                   OmegaConf.select(row_cfg, "task.name")):
        if source is not None:
            return source
    return "fit"


def _file_layer(kind: str, name: str, base: DictConfig) -> DictConfig:
    """``conf/<kind>/<name>.yaml`` (model or data); its ``task:`` keys that the chosen task does
    not take are left out: a model file holds the paper's fitting rate for that model."""
    path = find_conf(f"{kind}/{name}.yaml")
    layer = load_yaml(path) if path is not None else OmegaConf.create({kind: {}})
    if OmegaConf.select(layer, f"{kind}.name") not in (None, name):
        layer = OmegaConf.create({kind: {}})  # a family file does not name a variant
    layer[kind]["name"] = name
    if "task" in layer:
        layer.task = OmegaConf.masked_copy(layer.task, [k for k in layer.task
                                                        if k in base.task and k != "name"])
    return layer


def compose(model: str | None = None, data: str | None = None,
            overrides: list[str] = (), extra: dict[str, Any] | None = None,
            row: dict[str, Any] | None = None,
            train_row: tuple[Experiment, dict] | None = None) -> DictConfig:
    """Build the run config: defaults <- task <- data <- model <- paper row <- ``extra`` (CLI
    flags as dotted keys, ``task.steps``) <- ``overrides``. Without ``row``, ``--model M --data D``
    follows the paper row that trains M on D (:mod:`inrbench.config.rowdefaults`), recorded in
    the config's ``paper_row`` section. ``train_row=(experiment, row)``: that row, fitted to
    the data served as ``--model M --data D`` fits it (a stand-in's shape-bound keys derived,
    recorded in ``paper_row`` too)."""
    cli = parse_overrides(list(overrides))
    if train_row is not None:
        row = row_sections(*train_row)
    row_cfg = OmegaConf.create(row or {})
    base = base_config(_task_of(cli, extra, row_cfg))
    paper_defaults = row is None and model is not None and data is not None
    model = model or OmegaConf.select(row_cfg, "model.name") or base.model.name
    data = data or OmegaConf.select(row_cfg, "data.name") or base.data.name
    data_layer, model_layer = _file_layer("data", data, base), _file_layer("model", model, base)
    cfg = OmegaConf.merge(base, data_layer)
    cfg.model = model_layer.model  # another model replaces the section, never mixes keys in
    cfg = OmegaConf.merge(cfg, OmegaConf.masked_copy(model_layer, [k for k in model_layer
                                                                    if k != "model"]))
    followed = None
    if paper_defaults:
        cli_data = cli.get("data")
        found = row_defaults(model, data, OmegaConf.to_container(cfg.data, resolve=True),
                             OmegaConf.to_container(cli_data, resolve=True) if cli_data else None)
        # a row trains with its own task; another task does not follow it
        if found is not None and found[0].get("task", {}).get("name", "fit") == base.task.name:
            sections, followed = found
            row_cfg = OmegaConf.create(sections)
    elif train_row is not None:
        cli_data = cli.get("data")
        sections, followed = experiment_row(
            *train_row, OmegaConf.to_container(cfg.data, resolve=True),
            OmegaConf.to_container(cli_data, resolve=True) if cli_data else None)
        row_cfg = OmegaConf.create(sections)
    cfg = OmegaConf.merge(cfg, row_cfg)
    for key, value in (extra or {}).items():
        if value is not None:
            OmegaConf.update(cfg, key, value, force_add=True)
    check_keys(cli, base)
    try:
        cfg = OmegaConf.merge(cfg, cli)
    except (OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"bad override in {list(overrides)}: {e}".splitlines()[0]) from None
    cfg = validate(cfg, base)
    if followed is not None:
        cfg.paper_row = followed
    return cfg


def validate(cfg: DictConfig, base: DictConfig | None = None) -> DictConfig:
    """Every key's type and range (:mod:`inrbench.config.validation`), before anything is
    written; ``base`` defaults to the defaults of the config's own task."""
    if base is None:
        base = base_config(OmegaConf.select(cfg, "task.name") or "fit")
    check_keys(cfg, base)
    return validation.validate(cfg, base)


def row_config(exp: Experiment, row: dict, overrides: list[str] = (),
               extra: dict | None = None, served: bool = False) -> DictConfig:
    """The run config of one row: defaults <- task <- data <- model <- row <- ``extra`` <-
    overrides. ``served=True`` (training the row): fitted to the data that will be served,
    a stand-in included (:func:`inrbench.config.rowdefaults.experiment_row`); profiling keeps
    the paper's keys, for the paper's shape."""
    if served:
        return compose(overrides=list(overrides), extra=extra, train_row=(exp, row))
    return compose(overrides=list(overrides), extra=extra, row=row_sections(exp, row))
