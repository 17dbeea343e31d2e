"""The configuration files: where ``conf/`` is, reading a YAML file, command-line overrides."""

from __future__ import annotations

import os
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from inrbench.errors import ConfigError


def conf_dir() -> Path:
    """``$INRBENCH_CONF``, else the repository's ``conf/`` next to the package."""
    env = os.environ.get("INRBENCH_CONF")
    candidates = [Path(env)] if env else []
    candidates.append(package_conf())
    for c in candidates:
        if (c / "defaults.yaml").is_file():
            return c
    raise ConfigError("cannot find the conf/ folder; install inrbench from its repository with "
                      "'pip install -e .' or set INRBENCH_CONF=/path/to/conf")


def package_conf() -> Path:
    """The suite's own ``conf/`` (the repository's, next to the package)."""
    return Path(__file__).resolve().parents[2] / "conf"


def conf_roots() -> list[Path]:
    """Where config files are looked up, first match wins: ``$INRBENCH_CONF`` (or the suite's
    ``conf/``), the ``conf/`` folders of installed plugins, then the suite's ``conf/``."""
    # imported on call: the plugin module imports the model registry, whose package loads
    # every model family, and reading configs (reports) needs none of them
    from inrbench.plugins import conf_roots as plugin_conf_roots

    roots = [conf_dir(), *plugin_conf_roots(), package_conf()]
    return [r for i, r in enumerate(roots) if r not in roots[:i]]


def find_conf(relative: str) -> Path | None:
    """``conf/<relative>`` (e.g. ``model/siren.yaml``) from the first root that has it."""
    return next((r / relative for r in conf_roots() if (r / relative).is_file()), None)


def conf_names(kind: str) -> list[str]:
    """The names of the ``conf/<kind>/*.yaml`` files over every root."""
    return sorted({p.stem for r in conf_roots() for p in (r / kind).glob("*.yaml")})


def load_yaml(path: Path) -> DictConfig:
    try:
        return OmegaConf.load(path)
    except (OmegaConfBaseException, OSError, ValueError) as e:
        raise ConfigError(f"cannot parse {path}: {e}") from None


def list_experiments() -> list[str]:
    return sorted(p.stem for p in (conf_dir() / "experiment").glob("*.yaml"))


def parse_overrides(overrides: list[str]) -> DictConfig:
    for o in overrides:
        if "=" not in o or o.startswith("="):
            raise ConfigError(f"bad override {o!r}; write key=value, e.g. model.hidden_dim=128")
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except (OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"bad override in {overrides}: {e}") from None
