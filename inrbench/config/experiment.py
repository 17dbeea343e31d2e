"""Paper experiments: one YAML per table or figure in ``conf/experiment/``.

An experiment file lists the rows of one table::

    title: "Table 2: ultra-low MAC fitting results on Cameraman"
    source: "ASMR paper sec. 4.1, Table 2; training: appendix B"
    signal: {shape: [512, 512], channels: 1}   # profiling needs only this, never data files
    units: {params: K, macs: K, psnr: dB}       # the units the table prints
    common:                                     # run-config sections merged under every row
      data: {name: cameraman, sampling: full}
      task: {steps: 10000, lr_min: 1.0e-6, scheduler: cosine}
    rows:
      - id: asmr3                               # results go to <out>/<id>/
        label: ASMR (3)                         # as the table prints it
        model: {name: asmr, n_layers: 3, hidden_dim: 256, bases: [[8, 8, 8], [8, 8, 8]]}
        task: {lr: 1.0e-4}
        paper: {params: "67.8", macs: "1.29", psnr: "31.44"}   # as printed, quoted

A row's ``model``/``data``/``task``/``trainer`` sections (over ``common``) are what
:func:`inrbench.config.compose` gets as ``row=``, so every row is a normal run config. A row
may give ``epochs`` instead of ``task.steps`` (with ``data.batch_size``, and
``samples_per_epoch`` when an epoch is not one pass over the signal's samples); the steps
are ``epochs * ceil(samples_per_epoch / batch_size)``.

Paper figures are strings, so the printed precision survives YAML: ``"1.30"`` is compared as
``round(ours / 1000, 2) == 1.30`` (half up) when the unit is ``K``. ``macs_count`` picks the
count the printed MACs follow, since the paper is not self-consistent:

* ``model`` (default): the model's own ``macs_per_sample()`` (ASMR: the official
  ``my_profiler.asmr_profiler``: weights, biases and modulation additions on shared grids);
* ``weights``: weights only, no biases (``macs_per_sample(include_bias=False)``; for ASMR the
  official ``taco_profiler``: no biases and no modulation additions);
* ``weights+biases``: ``macs_per_sample(include_bias=True)``.

A printed figure that no count reproduces is a paper inconsistency; the row documents it
under ``inconsistency: {figure: note}`` (or ``{figure: {note: ..., explained_by: COUNT}}``
where ``COUNT`` is ``params`` or ``macs:<count>``, a figure of ours that does reproduce the
printed one). Row statuses: ``match`` (every printed params/MACs figure is ours),
``documented`` (the only differences are documented inconsistencies), ``mismatch`` (an
undocumented difference, or a documented one that is not one), ``error`` (could not profile).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from inrbench.config.files import conf_dir, list_experiments, load_yaml
from inrbench.errors import ConfigError

UNITS = {"": 1, "K": 10**3, "M": 10**6}
COMPARED = ("params", "macs")  # the figures profiling can reproduce without training
# an experiment may compare other figures (``compared: [params, bpp]``): ``bpp`` is ANI's
# count (inrbench.compression.bpp) of the row's ``quant: {bits, layers}`` network
FIGURES = ("params", "macs", "bpp")
MACS_COUNTS = ("model", "weights", "weights+biases")
COUNT_LABELS = {
    "model": "the model's own count",
    "weights": "weights only, no biases",
    "weights+biases": "weights and biases",
}
TOP_KEYS = ("title", "source", "notes", "signal", "units", "common", "rows", "compared")
SECTIONS = ("model", "data", "task", "trainer")
ROW_KEYS = ("id", "label", *SECTIONS, "epochs", "samples_per_epoch", "signal", "units",
            "paper", "macs_count", "convention", "inconsistency", "notes", "quant")
ROW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Experiment:
    name: str
    path: Path
    title: str
    source: str
    rows: list[dict]
    signal: dict | None = None
    units: dict = field(default_factory=dict)
    common: dict = field(default_factory=dict)
    notes: str | None = None
    compared: tuple = COMPARED

    @property
    def row_ids(self) -> list[str]:
        return [r["id"] for r in self.rows]


# -- loading and validation --------------------------------------------------------------

def load_experiment(name: str) -> Experiment:
    """Load and validate ``conf/experiment/<name>.yaml``; unknown names raise a ConfigError
    naming the valid ones."""
    path = conf_dir() / "experiment" / f"{name}.yaml"
    # a plain name only: a sweep or command line naming ../x must not read files elsewhere
    if not isinstance(name, str) or not ROW_ID.match(name) or not path.is_file():
        raise ConfigError(f"unknown experiment {name!r}; valid choices: "
                          f"{', '.join(list_experiments())}")
    raw = OmegaConf.to_container(load_yaml(path), resolve=True)
    where = f"experiment {name} ({path})"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping with keys {', '.join(TOP_KEYS)}")
    _check_keys(raw, TOP_KEYS, where)
    for key in ("title", "source", "rows"):
        if not raw.get(key):
            raise ConfigError(f"{where} needs {key!r}")
    if not isinstance(raw["rows"], list):
        raise ConfigError(f"{where}: 'rows' must be a list of rows")
    exp = Experiment(name=name, path=path, title=raw["title"], source=raw["source"],
                     rows=raw["rows"], signal=raw.get("signal"), units=raw.get("units") or {},
                     common=raw.get("common") or {}, notes=raw.get("notes"),
                     compared=tuple(raw.get("compared") or COMPARED))
    if not exp.compared or any(k not in FIGURES for k in exp.compared):
        raise ConfigError(f"{where}: compared must list figures among {', '.join(FIGURES)}, "
                          f"got {list(exp.compared)}")
    _check_units(exp.units, where)
    if exp.signal is not None:
        _check_signal(exp.signal, where)
    _check_keys(exp.common, SECTIONS, f"{where}: common")
    seen: set[str] = set()
    for i, row in enumerate(exp.rows):
        _check_row(exp, row, f"{where}: row {i + 1}")
        if row["id"] in seen:
            raise ConfigError(f"{where}: row id {row['id']!r} is used twice")
        seen.add(row["id"])
    return exp


def _check_keys(d: Any, valid, where: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping")
    unknown = [k for k in d if k not in valid]
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
                          f"valid keys: {', '.join(valid)}")


def _check_units(units: Any, where: str) -> None:
    if not isinstance(units, dict):
        raise ConfigError(f"{where}: units must map figure names to units, e.g. {{params: K}}")
    for key in FIGURES:
        if key in units and units[key] not in UNITS:
            raise ConfigError(f"{where}: units.{key} must be one of "
                              f"{', '.join(repr(u) for u in UNITS)}, got {units[key]!r}")


def _check_signal(signal: Any, where: str) -> None:
    _check_keys(signal, ("shape", "channels"), f"{where}: signal")
    shape, channels = signal.get("shape"), signal.get("channels")
    if (not isinstance(shape, list) or not shape
            or not all(isinstance(n, int) and n > 0 for n in shape)):
        raise ConfigError(f"{where}: signal.shape must be a list of positive sizes, got {shape!r}")
    if not isinstance(channels, int) or channels < 1:
        raise ConfigError(f"{where}: signal.channels must be a positive int, got {channels!r}")


def _check_row(exp: Experiment, row: Any, where: str) -> None:
    _check_keys(row, ROW_KEYS, where)
    rid = row.get("id")
    if not isinstance(rid, str) or not ROW_ID.match(rid):
        raise ConfigError(f"{where}: 'id' must be a folder-safe name (letters, digits, _ . -), "
                          f"got {rid!r}")
    where = f"{where} ({rid})"
    for section in SECTIONS:
        if section in row and not isinstance(row[section], dict):
            raise ConfigError(f"{where}: {section} must be a mapping of config keys")
    if not isinstance(row.get("model"), dict) or not row["model"].get("name"):
        raise ConfigError(f"{where}: needs model: {{name: ..., <constructor args>}}")
    if row.get("signal") is not None:
        _check_signal(row["signal"], where)
    if exp.signal is None and row.get("signal") is None and not _data_name(exp, row):
        raise ConfigError(f"{where}: give a signal: {{shape, channels}} or a data: {{name}}")
    _check_units(row.get("units") or {}, f"{where}: units")
    if "epochs" in row:
        epochs = row["epochs"]
        if not isinstance(epochs, int) or epochs < 1:
            raise ConfigError(f"{where}: epochs must be a positive int, got {epochs!r}")
        if "steps" in row.get("task", {}):
            raise ConfigError(f"{where}: give either epochs or task.steps, not both")
        if _merged(exp, row, "data").get("batch_size") is None:
            raise ConfigError(f"{where}: epochs need data.batch_size (samples per step)")
    macs_count = row.get("macs_count", "model")
    if macs_count not in MACS_COUNTS:
        raise ConfigError(f"{where}: macs_count must be one of {', '.join(MACS_COUNTS)}, "
                          f"got {macs_count!r}")
    paper = row.get("paper") or {}
    if not isinstance(paper, dict):
        raise ConfigError(f"{where}: paper must map figure names to printed values")
    for key, value in paper.items():
        if value is None:
            continue
        if not isinstance(value, str):
            raise ConfigError(f"{where}: paper.{key} must be quoted as printed (e.g. "
                              f"'{value}'), so its printed precision is kept")
        if key in exp.compared:
            try:
                Decimal(value)
            except ArithmeticError:
                raise ConfigError(f"{where}: paper.{key} = {value!r} is not a number") from None
            if row_units(exp, row).get(key) is None:
                raise ConfigError(f"{where}: paper.{key} needs its unit in units.{key}")
    inconsistency = row.get("inconsistency") or {}
    _check_keys(inconsistency, exp.compared, f"{where}: inconsistency")
    for key, doc in inconsistency.items():
        if isinstance(doc, dict):
            _check_keys(doc, ("note", "explained_by"), f"{where}: inconsistency.{key}")
            explained_by = doc.get("explained_by")
            if explained_by is not None and explained_by not in _alternatives():
                raise ConfigError(f"{where}: inconsistency.{key}.explained_by must be one of "
                                  f"{', '.join(_alternatives())}, got {explained_by!r}")
            doc = doc.get("note")
        if not isinstance(doc, str) or not doc.strip():
            raise ConfigError(f"{where}: inconsistency.{key} needs a note saying what differs")
    quant = row.get("quant")
    if quant is not None:
        _check_keys(quant, ("bits", "layers", "biases"), f"{where}: quant")
        if not isinstance(quant.get("bits"), int):
            raise ConfigError(f"{where}: quant.bits must be an int (ANI: 8 or 4)")
    for key in exp.compared:
        if paper.get(key) is None and key not in inconsistency:
            raise ConfigError(f"{where}: paper.{key} is missing; give it as printed, or say "
                              f"under inconsistency.{key} why the table has no figure")


def _alternatives() -> list[str]:
    return ["params", *(f"macs:{c}" for c in MACS_COUNTS)]


def _merged(exp: Experiment, row: dict, section: str) -> dict:
    return {**exp.common.get(section, {}), **row.get(section, {})}


def _data_name(exp: Experiment, row: dict) -> str | None:
    return _merged(exp, row, "data").get("name")


def row_units(exp: Experiment, row: dict) -> dict:
    return {**exp.units, **(row.get("units") or {})}


def select_rows(exp: Experiment, ids: list[str] | None = None) -> list[dict]:
    """The rows named in ``ids`` (all when None), in the experiment's order."""
    if not ids:
        return list(exp.rows)
    unknown = [i for i in ids if i not in exp.row_ids]
    if unknown:
        raise ConfigError(f"unknown row(s) {', '.join(unknown)} in experiment {exp.name}; "
                          f"valid rows: {', '.join(exp.row_ids)}")
    return [r for r in exp.rows if r["id"] in ids]


def get_row(exp: Experiment, row_id: str) -> dict:
    return select_rows(exp, [row_id])[0]


# -- composing a row into a run config ----------------------------------------------------

def declared_signal(exp: Experiment, row: dict) -> dict | None:
    return row.get("signal") or exp.signal


def row_sections(exp: Experiment, row: dict) -> dict:
    """The ``row=`` argument of :func:`inrbench.config.compose`: the model/data/task/trainer
    sections (over ``common``), with ``epochs`` turned into ``task.steps``."""
    out = {s: _merged(exp, row, s) for s in SECTIONS if _merged(exp, row, s)}
    if "epochs" in row:
        signal = declared_signal(exp, row)
        samples = row.get("samples_per_epoch") or (math.prod(signal["shape"]) if signal else None)
        if samples is None:
            raise ConfigError(f"experiment {exp.name} row {row['id']}: epochs need "
                              f"samples_per_epoch or a signal shape")
        batch = int(out["data"]["batch_size"])
        out.setdefault("task", {})["steps"] = int(row["epochs"]) * math.ceil(samples / batch)
    return out


#: figures a paper prints truncated rather than rounded: ANI's bpp (every one of its 18
#: printed rates is the exact count truncated, e.g. SIREN 66,819 x 32 / 1,179,648 = 1.81258
#: printed 1.812; rounding would give 1.813 and miss MFN's 0.572 / 0.350 / 0.546)
TRUNCATED = ("bpp",)


def printed(value: float, template: str, unit: str, figure: str = "") -> str:
    """``value`` in ``unit``, rounded half up (truncated for ``TRUNCATED`` figures) to the
    decimals of the printed ``template``."""
    exp = Decimal(template).as_tuple().exponent
    scaled = Decimal(value) / UNITS[unit]
    rounding = ROUND_DOWN if figure in TRUNCATED else ROUND_HALF_UP
    return str(scaled.quantize(Decimal(1).scaleb(exp), rounding=rounding))


def matches_printed(value: float | None, template: str, unit: str, figure: str = "") -> bool:
    return (value is not None
            and Decimal(printed(value, template, unit, figure)) == Decimal(template))


