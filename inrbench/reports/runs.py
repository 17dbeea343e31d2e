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
    #: ``(experiment, row id, data key)`` of each row over a data set's signals that lists
    #: this run as a member (an ``experiment.json`` under the folders searched)
    member_of: tuple = ()

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
    members = experiment_members(*roots)
    for run_dir, run in found.items():
        run.member_of = tuple(sorted(members.get(run_dir, ())))
    return [found[k] for k in sorted(found)]


def experiment_members(*roots: Path) -> dict[Path, set[tuple[str, str, str]]]:
    """``{run folder: {(experiment, row id, data key)}}`` from every ``experiment.json``
    under ``roots`` whose rows were trained over a data set's signals (``inrbench run
    --experiment E --vary data.KEY=...``): the runs each such row averages. A file that
    cannot be read lists nothing (its runs still match rows by their configs)."""
    members: dict[Path, set[tuple[str, str, str]]] = {}
    for root in map(Path, roots):
        paths = [root / "experiment.json"] if (root / "experiment.json").is_file() else []
        for path in dict.fromkeys([*paths, *sorted(root.rglob("experiment.json"))]):
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            rows = record.get("rows") if isinstance(record, dict) else None
            for row in rows if isinstance(rows, list) else []:
                vary = row.get("vary") if isinstance(row, dict) else None
                key = vary.get("key") if isinstance(vary, dict) else None
                if not isinstance(key, str) or not key.startswith("data."):
                    continue
                for m in row.get("members") or []:
                    if isinstance(m, dict) and isinstance(m.get("folder"), str):
                        folder = (path.parent / m["folder"]).resolve()
                        members.setdefault(folder, set()).add(
                            (str(record.get("experiment")), str(row.get("id")), key[5:]))
    return members


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


def seeds_text(runs: list[Run]) -> str:
    """The seeds a row's figures average; over several signals of a data set (a row trained
    with ``--vary``), each seed once and the number of signals: ``0, 1 × 24 signals``."""
    signals = {_normalise({k: v for k, v in (r.config.get("data") or {}).items()
                           if k not in SAMPLING_KEYS}) for r in runs}
    if len(signals) < 2:
        return ", ".join(str(r.seed) for r in runs) or "—"
    seeds = sorted({r.seed for r in runs}, key=lambda s: (s is None, s))
    return f"{', '.join(str(s) for s in seeds)} × {len(signals)} signals"
