"""The configuration files: where ``conf/`` is, reading a YAML file, command-line overrides."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
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


def yaml_problem(path, error: Exception) -> str:
    """One line for a YAML parser's error: ``cannot parse FILE, line L, column C: problem``
    (line and column 1-based, as an editor counts them) with what the fix is."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error).strip().splitlines()[0:1]
    if isinstance(problem, list):
        problem = problem[0] if problem else type(error).__name__
    context = getattr(error, "context", None)
    detail = " ".join((f"{problem} ({context})" if context else str(problem)).split())
    return f"cannot parse {path}{where}: {detail}; fix the YAML there"


def load_yaml(path: Path) -> DictConfig:
    try:
        return OmegaConf.load(path)
    except yaml.YAMLError as e:
        raise ConfigError(yaml_problem(path, e)) from None
    except (OmegaConfBaseException, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot parse {path}: {first}") from None


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
