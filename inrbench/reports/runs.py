"""Finding and reading results folders: the only input of ``inrbench report`` and ``compare``.

A results folder is any directory holding ``metrics.json`` (the run's summary) and
``config.yaml`` (its resolved config); ``metrics.csv`` (per-step history) is read when a curve
is drawn. Folders are found recursively, so a report may be pointed at one run, an
experiment's folder (``<out>/<row id>/``), a seeds folder (``<out>/seed<N>/``) or all of
``runs/``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from inrbench.bases import default_bases
from inrbench.errors import InrbenchError

# config keys that say how a run was executed, not what was fitted: runs that differ only
# here are repeats of one configuration (seeds), or the same configuration run elsewhere
EXECUTION_KEYS = ("trainer",)
# data keys that choose how samples are drawn, not which signal is fitted
SAMPLING_KEYS = ("sampling", "batch_size", "steps_per_epoch", "tile", "seed")


@dataclass
class Run:
    path: Path
    config: dict
    summary: dict
    _curve: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def seed(self) -> int | None:
        seed = self.summary.get("seed", self.config.get("trainer", {}).get("seed"))
        return None if seed is None else int(seed)

    @property
    def steps(self) -> int | None:
        steps = self.summary.get("steps")
        return None if steps is None else int(steps)

    @property
    def model(self) -> str:
        return str(self.summary.get("model") or self.config.get("model", {}).get("name"))

    @property
    def data(self) -> str:
        return str(self.summary.get("data") or self.config.get("data", {}).get("name"))

    @property
    def machine(self) -> str:
        """The card or CPU that trained the run (``metrics.json``'s ``machine``); a record
        without it says only whether its torch was a CUDA build."""
        name = (self.summary.get("machine") or {}).get("device_name")
        if name:
            return str(name)
        torch_version = str((self.summary.get("versions") or {}).get("torch", ""))
        return "a GPU (card not recorded)" if "+cu" in torch_version else "a CPU (not recorded)"

    def curve(self) -> pd.DataFrame:
        """``metrics.csv`` (one row per step, evaluations merged in); empty if absent."""
        if self._curve is None:
            path = self.path / "metrics.csv"
            try:
                self._curve = pd.read_csv(path) if path.stat().st_size else pd.DataFrame()
            except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError):
                self._curve = pd.DataFrame()
        return self._curve

    def value(self, key: str) -> float | None:
        v = self.summary.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def load_run(path: Path) -> Run:
    path = Path(path)
    try:
        summary = json.loads((path / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InrbenchError(f"{path}/metrics.json cannot be read ({e}); is {path} a finished "
                            f"run folder?") from None
    try:
        config = yaml.safe_load((path / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        config = {}
    return Run(path=path, config=_resolved_bases(config, summary), summary=summary)


def _resolved_bases(config: dict, summary: dict) -> dict:
    """An ASMR ``config.yaml`` saying ``bases: null`` ran with
    ``default_bases(signal_shape, n_layers)`` (a pure function of the recorded shape and
    depth), so fill that in: the run fitted that model and must match the row that names
    it."""
    model = config.get("model") if isinstance(config, dict) else None
    if not isinstance(model, dict) or "bases" not in model or model["bases"] is not None:
        return config
    shape, layers = summary.get("signal_shape"), model.get("n_layers")
    if not shape or not isinstance(layers, int):
        return config
    try:
        bases = default_bases([int(n) for n in shape], layers)
    except Exception:  # a shape the factorisation rejects: leave the record as it is
        return config
    return {**config, "model": {**model, "bases": bases}}


def find_runs(*roots: Path) -> list[Run]:
    """Every finished run (a folder with ``metrics.json``) under ``roots``, recursively, in
    path order; a root that is itself a run folder counts."""
    found: dict[Path, Run] = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise InrbenchError(f"{root} does not exist; give a results folder (e.g. runs/)")
        paths = [root / "metrics.json"] if (root / "metrics.json").is_file() else []
        paths += sorted(root.rglob("metrics.json"))
        for p in paths:
            run_dir = p.parent.resolve()
            if run_dir not in found and not any(part.startswith(".") for part in p.parts[-3:-1]):
                found[run_dir] = load_run(p.parent)
    return [found[k] for k in sorted(found)]


# -- grouping repeats of one configuration -----------------------------------------------

def _normalise(value: Any) -> Any:
    """Comparable form of a config value: numbers as floats, lists as tuples."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return tuple(_normalise(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _normalise(v)) for k, v in value.items()))
    return str(value)


def config_key(config: dict) -> tuple:
    """What a run fitted and how it trained, without the seed, folder and logger: runs with
    equal keys are repeats (seeds) of one configuration."""
    return _normalise({k: v for k, v in config.items() if k not in EXECUTION_KEYS})


def group_runs(runs: list[Run]) -> list[list[Run]]:
    """Runs grouped by :func:`config_key`, in order of first appearance; seeds sorted."""
    groups: dict[tuple, list[Run]] = {}
    for run in runs:
        groups.setdefault(config_key(run.config), []).append(run)
    return [sorted(g, key=lambda r: (r.seed is None, r.seed, str(r.path)))
            for g in groups.values()]


def mean_std(values: list[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample standard deviation (ddof 1) of the values that exist; std is None
    for fewer than two."""
    xs = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not xs:
        return None, None, 0
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None, len(xs)
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var), len(xs)


def fmt_mean_std(mean: float | None, std: float | None, decimals: int = 2) -> str:
    if mean is None:
        return "—"
    text = f"{mean:,.{decimals}f}"
    return text if not std else f"{text} ± {std:,.{decimals}f}"
