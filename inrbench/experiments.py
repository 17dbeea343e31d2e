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

import inspect
import math
import re
import sys
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from inrbench.config import compose, conf_dir, list_experiments, load_yaml
from inrbench.errors import ConfigError, DataError, InrbenchError

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
    if not path.is_file():
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
            if _units(exp, row).get(key) is None:
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


def _units(exp: Experiment, row: dict) -> dict:
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


def row_config(exp: Experiment, row: dict, overrides: list[str] = (),
               extra: dict | None = None) -> DictConfig:
    """The run config of one row: defaults <- data <- model <- row <- ``extra`` <- overrides."""
    return compose(overrides=list(overrides), extra=extra, row=row_sections(exp, row))


def row_signal(exp: Experiment, row: dict, cfg: DictConfig):
    """The row's signal spec. The experiment's ``signal`` (the paper's shape) is used when
    given; when the data module is registered too, the two must agree."""
    from inrbench.data.base import SignalSpec
    from inrbench.data.registry import DATAMODULES
    from inrbench.runner import build_datamodule

    declared = declared_signal(exp, row)
    spec = None
    if cfg.data.name in DATAMODULES:
        try:
            dm = build_datamodule(cfg)
            # a paper data set's own shape, never the stand-in sample used when it is missing
            spec = dm.paper_spec() if hasattr(dm, "paper_spec") else dm.spec()
        except DataError:  # e.g. a user file's header: the declared signal still profiles
            if declared is None:
                raise
    if declared is None:
        if spec is None:
            raise ConfigError(f"experiment {exp.name} row {row['id']}: data module "
                              f"{cfg.data.name!r} is not registered; give signal: "
                              f"{{shape: [...], channels: N}} to profile without it")
        return spec
    shape, channels = tuple(declared["shape"]), int(declared["channels"])
    if spec is not None and (tuple(spec.shape), spec.channels) != (shape, channels):
        raise ConfigError(f"experiment {exp.name} row {row['id']}: data {cfg.data.name!r} gives "
                          f"a {tuple(spec.shape)}x{spec.channels} signal but the experiment "
                          f"declares {shape}x{channels}; configure the data to match")
    return spec if spec is not None else SignalSpec(shape, channels)


# -- profiling and comparison with the paper -----------------------------------------------

def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def macs_counts(model) -> dict[str, float | None]:
    """Our MACs per sample under each count; None where the model cannot give that count."""

    counts: dict[str, float | None] = {"model": float(model.macs_per_sample())}
    fn = model.macs_per_sample
    for name, bias in (("weights", False), ("weights+biases", True)):
        counts[name] = float(fn(include_bias=bias)) if _accepts(fn, "include_bias") else None
    return counts


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


def _macs_doc(model, count: str) -> str:
    if count != "model":
        return COUNT_LABELS[count]
    doc = (inspect.getdoc(model.macs_per_sample) or "").replace("``", "")
    first = re.split(r"[.:;]\s|\n\n", doc, maxsplit=1)[0].replace("\n", " ").strip()
    return f"{type(model).__name__}.macs_per_sample(): {first}" if first else COUNT_LABELS[count]


def profile_row(exp: Experiment, row: dict) -> dict:
    """Our params/MACs of one row beside the paper's printed figures, with a status."""
    from inrbench.profiling import profile
    from inrbench.runner import build_model

    units = _units(exp, row)
    paper = row.get("paper") or {}
    count = row.get("macs_count", "model")
    result = {
        "experiment": exp.name, "id": row["id"], "label": row.get("label", row["id"]),
        "model": row["model"]["name"], "params": None, "macs": None, "macs_measured": None,
        "macs_count": count, "macs_counts": None,
        "paper_params": _number(paper.get("params")), "paper_macs": _number(paper.get("macs")),
        "paper": {k: v for k, v in paper.items() if v is not None},
        "units": {k: units[k] for k in exp.compared if k in units}, "bpp": None,
        "ours_printed": {}, "figures": {}, "match": None, "status": "error",
        "convention": row.get("convention"), "note": "",
    }
    try:
        cfg = row_config(exp, row)
        spec = row_signal(exp, row, cfg)
        model = build_model(cfg, spec)
        stats = profile(model, spec.shape)
        counts = macs_counts(model)
    except InrbenchError as e:
        result["note"] = f"cannot profile: {e}"
        return result
    except Exception as e:  # a model bug, not a config error: keep profiling the other rows
        result["note"] = f"cannot profile: {type(e).__name__}: {e}"
        return result
    result.update(params=int(stats["params"]), macs=counts[count],
                  macs_measured=stats["macs_measured"], macs_counts=counts,
                  signal=[*spec.shape, spec.channels])
    ours = {"params": float(stats["params"]), "macs": counts[count]}
    alternatives = {"params": float(stats["params"]),
                    **{f"macs:{c}": v for c, v in counts.items()}}
    notes = [f"MACs: {_macs_doc(model, count)}"]
    if row.get("convention"):
        notes.append(row["convention"].strip())
    if "bpp" in exp.compared:
        from inrbench.compression.bpp import ani_bpp

        quant = row.get("quant") or {}
        ours["bpp"] = ani_bpp(model, spec.shape, spec.channels, quant.get("bits"),
                              quant.get("layers", "hidden"), bool(quant.get("biases", False)))
        result["bpp"] = ours["bpp"]
        alternatives["bpp"] = ours["bpp"]
        q = (f"{quant['bits']}-bit {quant.get('layers', 'hidden')} weights, the rest 32-bit"
             if quant else "every parameter 32-bit")
        notes.append(f"bpp: ANI's count, bits/(H*W*C), {q}; truncated to the printed "
                     f"digits as ANI prints it")
    bad = documented = False
    for key in exp.compared:
        doc = (row.get("inconsistency") or {}).get(key)
        doc_note = doc.get("note") if isinstance(doc, dict) else doc
        explained_by = doc.get("explained_by") if isinstance(doc, dict) else None
        value = paper.get(key)
        if value is None:
            result["figures"][key] = "not printed"
            notes.append(f"{key}: no printed figure ({doc_note.strip()})")
            documented = True
            continue
        if ours[key] is None:
            result["figures"][key] = "no such count"
            notes.append(f"{key}: {type(model).__name__} cannot give the {count!r} count")
            bad = True
            continue
        result["ours_printed"][key] = printed(ours[key], value, units[key], key)
        ok = matches_printed(ours[key], value, units[key], key)
        if ok and doc is None:
            result["figures"][key] = "match"
        elif ok:
            result["figures"][key] = "documented but matches"
            notes.append(f"{key}: documented as a paper inconsistency but ours matches the "
                         f"printed {value}{units[key]}; remove the inconsistency note")
            bad = True
        elif doc is None:
            result["figures"][key] = "MISMATCH"
            notes.append(f"{key}: ours {result['ours_printed'][key]}{units[key]} != printed "
                         f"{value}{units[key]}")
            bad = True
        else:
            text = (f"{key}: paper inconsistency: printed {value}{units[key]}, ours "
                    f"{result['ours_printed'][key]}{units[key]}: {doc_note.strip()}")
            if explained_by is not None:
                alt = alternatives.get(explained_by)
                if matches_printed(alt, value, units[key], key):
                    shown = printed(alt, value, units[key], key)
                    text += f" (reproduced by our {explained_by}: {shown}{units[key]})"
                else:
                    text += f" (NOT reproduced by our {explained_by})"
                    bad = True
            result["figures"][key] = "documented"
            notes.append(text)
            documented = True
    result["match"] = all(v == "match" for v in result["figures"].values())
    result["status"] = "mismatch" if bad else "documented" if documented else "match"
    result["note"] = "; ".join(notes)
    return result


def _number(value: str | None) -> float | None:
    return None if value is None else float(value)


def profile_experiment(exp: Experiment) -> list[dict]:
    return [profile_row(exp, row) for row in exp.rows]


def _fmt_exact(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def format_profile(exp: Experiment, results: list[dict]) -> str:
    """A plain-text table: our figures (exact, and at the paper's precision) beside the
    paper's, then one note per row saying which convention each figure follows."""
    signal = declared_signal(exp, {}) or {}
    head = f"{exp.name}: {exp.title}"
    if signal:
        head += f"  [signal {'x'.join(map(str, signal['shape']))}x{signal['channels']}]"
    lines = [head, f"source: {exp.source}"]
    if exp.notes:
        lines.append(f"table notes: {' '.join(exp.notes.split())}")
    cols = ("id", "params (ours)", "= ours", "paper", "MACs/sample (ours)", "= ours", "paper",
            "measured", "status")
    table = [cols]
    for r in results:
        u = r["units"]
        table.append((
            r["id"], _fmt_exact(r["params"]),
            _with_unit(r["ours_printed"].get("params"), u.get("params")),
            _with_unit(r["paper"].get("params"), u.get("params")),
            _fmt_exact(r["macs"]), _with_unit(r["ours_printed"].get("macs"), u.get("macs")),
            _with_unit(r["paper"].get("macs"), u.get("macs")), _fmt_exact(r["macs_measured"]),
            r["status"].upper() if r["status"] in ("mismatch", "error") else r["status"]))
    if "bpp" in exp.compared:  # ANI's rates beside the paper's, before the status column
        table[0] = (*cols[:-1], "bpp (ours)", "= ours", "paper", cols[-1])
        for i, r in enumerate(results, start=1):
            bpp = "-" if r["bpp"] is None else f"{r['bpp']:.5f}"
            table[i] = (*table[i][:-1], bpp, _with_unit(r["ours_printed"].get("bpp"), ""),
                        _with_unit(r["paper"].get("bpp"), ""), table[i][-1])
        cols = table[0]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(cols))]
    for row in table:
        lines.append("  ".join(str(c).rjust(w) if 0 < i < len(cols) - 1 else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    lines.append("notes:")
    for r in results:
        lines.append(f"  {r['id']} ({r['label']}): {r['note']}")
    n_bad = sum(r["status"] in ("mismatch", "error") for r in results)
    n_doc = sum(r["status"] == "documented" for r in results)
    lines.append(f"{len(results)} rows: {len(results) - n_bad - n_doc} match, {n_doc} differ "
                 f"only by documented paper inconsistencies, {n_bad} flagged")
    return "\n".join(lines)


def _with_unit(value: str | None, unit: str | None) -> str:
    return "-" if value is None else f"{value}{unit or ''}"


# -- running -------------------------------------------------------------------------------

def default_out(exp: Experiment) -> Path:
    return Path("runs") / f"{exp.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _earlier_rows(path: Path, exp: Experiment, rerun: set[str]) -> list[dict]:
    """Rows an earlier invocation recorded in the same folder and this one leaves alone: a
    second ``--rows`` call into one ``--out`` adds to its experiment.json instead of
    replacing it."""
    import json

    if not path.is_file():
        return []
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e}); move it away or pick another "
                          "--out") from None
    if earlier.get("experiment") != exp.name:
        raise ConfigError(f"{path} records experiment {earlier.get('experiment')!r}, not "
                          f"{exp.name!r}; pick another --out")
    return [r for r in earlier.get("rows", []) if r.get("id") not in rerun]


def run_experiment(exp: Experiment, rows: list[dict], out: Path, overrides: list[str] = (),
                   extra: dict | None = None, resume: bool = False,
                   on_done=None) -> list[dict]:
    """Train ``rows`` one after another into ``out/<row id>/``; a failing row is reported and
    the next one runs. ``out/experiment.json`` lists every row's status, summary and the
    paper's printed figures. Returns that list."""
    from inrbench.io import atomic_write_json
    from inrbench.runner import run

    out = Path(out)
    rerun = {row["id"] for row in rows}
    _earlier_rows(out / "experiment.json", exp, rerun)  # a foreign or corrupt file stops us now
    order = {row_id: i for i, row_id in enumerate(exp.row_ids)}
    results: list[dict] = []
    for row in rows:
        entry = {"id": row["id"], "label": row.get("label", row["id"]),
                 "out": str(out / row["id"]), "paper": row.get("paper") or {}}
        try:
            cfg = row_config(exp, row, overrides,
                             {**(extra or {}), "trainer.out": str(out / row["id"])})
            entry.update(status="ok", summary=run(cfg, resume=resume))
        except Exception as e:  # report and go on with the next row
            if not isinstance(e, InrbenchError):
                traceback.print_exc()
            entry.update(status="failed", error=f"{type(e).__name__}: {e}")
            print(f"inrbench: row {row['id']} of {exp.name} failed: {e}", file=sys.stderr)
        results.append(entry)
        # read again at each write: another invocation may have added rows since we started
        kept = _earlier_rows(out / "experiment.json", exp, {e["id"] for e in results})
        listed = sorted(kept + results, key=lambda e: order.get(e["id"], len(order)))
        atomic_write_json(out / "experiment.json",
                          {"experiment": exp.name, "title": exp.title, "source": exp.source,
                           "rows": listed})
        if on_done is not None:
            on_done(entry)
    return results
