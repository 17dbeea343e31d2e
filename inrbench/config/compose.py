"""Config composition with OmegaConf: defaults <- data <- model <- experiment row <- CLI.

Each file in ``conf/`` is a partial root config (``model:``, ``data:``, ``task:`` ...), so a
model file may also carry the paper's training settings for that model. Keys under ``model:``
and ``data:`` are exactly the constructor arguments of the registered class.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from inrbench.config import validation
from inrbench.config.experiment import Experiment, row_sections
from inrbench.config.files import conf_dir, load_yaml, parse_overrides
from inrbench.config.rowdefaults import row_defaults
from inrbench.errors import ConfigError


def check_keys(cfg: DictConfig, base: DictConfig, sections=None) -> None:
    """Keys outside ``model``/``data`` must exist in defaults.yaml or be declared in
    ``inrbench.validation.SCHEMA`` (model/data keys are checked against their constructors).
    """
    top = set(base.keys()) | set(validation.SCHEMA)
    for key in cfg.keys():
        if key not in top:
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
                raise ConfigError(f"unknown key {section}.{key}; valid keys: "
                                  f"{', '.join(valid)}")


def compose(model: str | None = None, data: str | None = None,
            overrides: list[str] = (), extra: dict[str, Any] | None = None,
            row: dict[str, Any] | None = None) -> DictConfig:
    """Build the run config. ``extra`` holds CLI flags as dotted keys (``task.steps``)."""
    root = conf_dir()
    base = load_yaml(root / "defaults.yaml")
    cli = parse_overrides(list(overrides))
    row_cfg = OmegaConf.create(row or {})
    paper_defaults = row is None and model is not None and data is not None
    model = model or OmegaConf.select(row_cfg, "model.name") or base.model.name
    data = data or OmegaConf.select(row_cfg, "data.name") or base.data.name
    layers = [base]
    for kind, name in (("data", data), ("model", model)):
        path = root / kind / f"{name}.yaml"
        layer = load_yaml(path) if path.is_file() else OmegaConf.create({kind: {}})
        if OmegaConf.select(layer, f"{kind}.name") not in (None, name):
            layer = OmegaConf.create({kind: {}})  # a family file does not name a variant
        # a different model/data replaces the section rather than mixing its keys in
        layer[kind]["name"] = name
        layers.append(layer)
    cfg = OmegaConf.merge(base, layers[1])
    cfg.model = layers[2].model
    cfg = OmegaConf.merge(cfg, OmegaConf.masked_copy(layers[2], [k for k in layers[2]
                                                                  if k != "model"]))
    if paper_defaults:  # the paper's row for this model and data, if any (inrbench/rowdefaults.py)
        cli_data = cli.get("data")
        row_cfg = OmegaConf.create(row_defaults(
            model, data, OmegaConf.to_container(cfg.data, resolve=True),
            OmegaConf.to_container(cli_data, resolve=True) if cli_data else None) or {})
    cfg = OmegaConf.merge(cfg, row_cfg)
    for key, value in (extra or {}).items():
        if value is not None:
            OmegaConf.update(cfg, key, value, force_add=True)
    check_keys(cli, base)
    try:
        cfg = OmegaConf.merge(cfg, cli)
    except (OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"bad override in {list(overrides)}: {e}".splitlines()[0]) from None
    check_keys(cfg, base)
    return validate(cfg, base)


def validate(cfg: DictConfig, base: DictConfig | None = None) -> DictConfig:
    """Every key's type and range (``inrbench.validation``), before anything is written."""
    if base is None:
        base = load_yaml(conf_dir() / "defaults.yaml")
    check_keys(cfg, base)
    return validation.validate(cfg, base)


def row_config(exp: Experiment, row: dict, overrides: list[str] = (),
               extra: dict | None = None) -> DictConfig:
    """The run config of one row: defaults <- data <- model <- row <- ``extra`` <- overrides."""
    return compose(overrides=list(overrides), extra=extra, row=row_sections(exp, row))
