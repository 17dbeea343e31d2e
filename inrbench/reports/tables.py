"""The paper's tables with our figures: runs matched to experiment rows, beside the printed
figures, with the difference.

A run belongs to a row when it fitted the same thing the row describes: the same ``model``
section, the same ``data`` (every key except the sampling ones, which only choose how samples
are drawn) and the same learning-rate schedule (lr, lr_min, scheduler); a row trained over
its data set's signals (``inrbench run --experiment E --vary data.KEY=...``, listed in the
results' ``experiment.json``) also counts the members that differ only in that key and the
keys derived for their signal's shape, so its figures are the paper's mean ± std row.
Only the matching runs that saw the paper's data set and trained the row's length fill the
paper's column and get a Δ (``inrbench/reports/comparable.py``); stand-in data and shorter
runs are listed apart, with the reason and without Δ. Of the comparable runs, the ones with
the most steps are used and their seeds (and signals) averaged (mean ± sample std). A row
with no comparable run shows "—".

Figures and where ours come from:

* ``params``: ``metrics.json`` ``params``;
* ``macs``: in the row's counting convention (``macs_count``): ``metrics.json`` ``macs`` for
  the model's own count; for another count ``metrics.json`` ``macs_counts``, else the count
  profiled from the row's config (a matched run has its row's model and data, so the same
  model; profiling is the ``profile`` given to :func:`build_table`, run only when a record
  lacks the count). Nothing here builds a model;
* ``psnr``: ``best_psnr`` (the best full-signal PSNR seen, as the official code reports it);
* ``ssim``, ``iou``: the final value in ``metrics.json`` (IoU printed in %);
* ``*_std``: the paper's spread across its images/clips/objects, printed beside its figure;
* ``latency_*``: the paper's hardware; ours (``latency_ms``) is measured on whatever ran the
  run and is shown in its own column, never differenced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from omegaconf import OmegaConf

from inrbench.config import row_config
from inrbench.config.experiment import Experiment
from inrbench.reports.comparable import split_runs
from inrbench.reports.runs import SAMPLING_KEYS, Run, _normalise, mean_std, seeds_text
from inrbench.reports.sections import Cell

REPORT_TABLES = ("table2", "table3", "table4", "table5", "table6", "table10", "table11",
                 "table12")
FIGURE_ORDER = ("params", "macs", "psnr", "ssim", "iou")
SUMMARY_KEY = {"params": "params", "macs": "macs", "psnr": "best_psnr", "ssim": "ssim",
               "iou": "iou"}
SCALE = {"": 1, "K": 1e3, "M": 1e6, "%": 0.01, "dB": 1, "ms": 1}


@dataclass
class RowResult:
    id: str
    label: str
    row: dict
    runs: list[Run] = field(default_factory=list)  # the runs the figures come from
    all_runs: list[Run] = field(default_factory=list)  # every matching run
    ours: dict = field(default_factory=dict)  # figure -> (mean, std, n) in the table's unit
    macs_by_run: dict = field(default_factory=dict)
    apart: list = field(default_factory=list)  # (run, reason): not comparable with the paper
    units: dict = field(default_factory=dict)  # the row's units (table's, row overrides)
    errors: list[str] = field(default_factory=list)  # matching/MACs failures, run named


@dataclass
class TableResult:
    name: str
    title: str
    source: str
    notes: str | None
    units: dict
    figures: list[str]
    paper_only: list[str]
    rows: list[RowResult]

    @property
    def n_with_runs(self) -> int:
        return sum(bool(r.runs) for r in self.rows)


# -- matching ------------------------------------------------------------------------------

def _identity(cfg: dict, signal_key: str | None = None) -> tuple:
    """What a row fixes: the model, the signal and the optimiser's schedule (not its length).
    ``signal_key``: the data key that picks one signal of the row's data set, left out."""
    data = {k: v for k, v in (cfg.get("data") or {}).items()
            if k not in SAMPLING_KEYS and k != signal_key}
    task = cfg.get("task") or {}
    return _normalise({"model": cfg.get("model") or {}, "data": data,
                       **{k: task.get(k) for k in ("lr", "lr_min", "scheduler")}})


def _row_cfg(exp, row, errors: list[str] | None = None) -> dict | None:
    try:
        return OmegaConf.to_container(row_config(exp, row), resolve=True)
    except Exception as e:  # marked in the report, never silently empty
        if errors is not None:
            errors.append(f"row {row.get('id')} does not compose, so no run can match it: "
                          f"{type(e).__name__}: {e}")
        return None


def row_identity(exp, row, errors: list[str] | None = None) -> tuple | None:
    """What the row fixes; None (with the reason added to ``errors``) when the row does not
    compose, so it cannot have runs."""
    cfg = _row_cfg(exp, row, errors)
    return None if cfg is None else _identity(cfg)


def _as_paper_row(config: dict) -> dict:
    """A run's config with the row's shape-bound model keys that were derived for its
    signal's shape (``paper_row.paper_keys``: ASMR's bases on a portrait Kodak image) put
    back to the paper's values."""
    keys = (config.get("paper_row") or {}).get("paper_keys") or {}
    model = dict(config.get("model") or {})
    for key, value in keys.items():
        if key.startswith("model."):
            model[key[6:]] = value
    return {**config, "model": model}


def match_runs(exp, row, runs: list[Run], identity: tuple | None = None,
               errors: list[str] | None = None) -> list[Run]:
    """The runs that fitted what the row describes: the same identity, or a member of the
    row trained over its data set's signals (listed in an experiment.json, see
    :func:`inrbench.reports.runs.experiment_members`) whose identity is the row's but for
    the data key that picks the signal and the keys derived for that signal's shape."""
    identity = row_identity(exp, row, errors) if identity is None else identity
    if identity is None:
        return []
    found, loose = [], {}
    for r in runs:
        try:
            if _identity(r.config) == identity:
                found.append(r)
                continue
            for key in (k for e, rid, k in r.member_of if (e, rid) == (exp.name, row["id"])):
                if key not in loose:
                    cfg = _row_cfg(exp, row)
                    loose[key] = None if cfg is None else _identity(cfg, key)
                if _identity(_as_paper_row(r.config), key) == loose[key]:
                    found.append(r)
                    break
        except Exception as e:  # a run whose config.yaml is malformed: named, not skipped
            if errors is not None:
                errors.append(f"run {r.path} could not be matched: {type(e).__name__}: {e}")
    return found


def pick_runs(matching: list[Run]) -> list[Run]:
    """The runs a row's figures come from: those with the most steps (seeds of one
    configuration), in seed order."""
    if not matching:
        return []
    most = max(r.steps or 0 for r in matching)
    chosen = [r for r in matching if (r.steps or 0) == most]
    return sorted(chosen, key=lambda r: (r.seed is None, r.seed, str(r.path)))


# -- our figures -----------------------------------------------------------------------------

def run_macs(run: Run, count: str, errors: list[str] | None = None,
             row_profile: Callable[[], dict] | None = None) -> float | None:
    """The run's MACs per sample in the row's counting convention: ``metrics.json``'s
    ``macs`` for the model's own count; for another, its ``macs_counts[count]``, else
    ``row_profile()['macs_counts'][count]`` (the row's profile result: a matched run has its
    row's model config). ``row_profile`` is called only when the record lacks the count;
    None, with the reason added to ``errors``, when neither gives it."""
    if count == "model":
        return run.value("macs")
    recorded = run.summary.get("macs_counts")
    if isinstance(recorded, dict) and count in recorded:
        return None if recorded[count] is None else float(recorded[count])
    if row_profile is None:
        reason = "profiling was not run"
    else:
        profiled = row_profile()
        counts = profiled.get("macs_counts")
        if counts is not None:
            return None if counts.get(count) is None else float(counts[count])
        reason = (f"its row's profile has none: {profiled.get('note') or 'no note'} "
                  f"(status {profiled.get('status')})")
    if errors is not None:
        errors.append(f"run {run.path}: MACs ({count!r} count) not computed: its metrics.json "
                      f"records no macs_counts and {reason}")
    return None


def row_profiles(exp: Experiment, profile: Callable[[Experiment], list[dict]] | None
                 ) -> Callable[[str], dict] | None:
    """``row id -> that row's profile result``, profiling the experiment on the first call
    only (it builds every row's model); a failure or a missing row gives a result without
    ``macs_counts`` whose ``note`` says why. None when ``profile`` is None."""
    if profile is None:
        return None
    cache: dict[str, dict] = {}
    failed: list[str] = []

    def row(row_id: str) -> dict:
        if not cache and not failed:
            try:
                cache.update({r["id"]: r for r in profile(exp)})
            except Exception as e:  # marked in the report, never a silent "—"
                failed.append(f"profiling {exp.name} failed: {type(e).__name__}: {e}")
            if not cache and not failed:
                failed.append(f"profiling {exp.name} gave no rows")
        if row_id in cache:
            return cache[row_id]
        return {"macs_counts": None, "status": "error",
                "note": failed[0] if failed else f"profiling {exp.name} gave no row {row_id}"}

    return row


def _our_value(run: Run, figure: str, count: str, errors: list[str] | None = None,
               row_profile: Callable[[], dict] | None = None) -> float | None:
    if figure == "macs":
        return run_macs(run, count, errors, row_profile)
    return run.value(SUMMARY_KEY[figure])


def decimals_of(template: str | None, default: int = 2) -> int:
    if template is None:
        return default
    try:
        exp = Decimal(template).as_tuple().exponent
    except ArithmeticError:
        return default
    return max(0, -int(exp))


def fmt_number(value: float | None, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    q = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return f"{q:,}"


def is_number(text: str | None) -> bool:
    if text is None:
        return False
    try:
        Decimal(text)
        return True
    except ArithmeticError:
        return False


def build_table(exp: Experiment, runs: list[Run],
                profile: Callable[[Experiment], list[dict]] | None = None) -> TableResult:
    """Every row of ``exp`` with the runs that match it and our figures. ``profile`` (see
    :func:`run_macs`) is called at most once, and only when a comparable run's record lacks
    the MACs of its row's count."""
    units = dict(exp.units)
    printed_keys = {k for row in exp.rows for k, v in (row.get("paper") or {}).items()
                    if v is not None}
    figures = [f for f in FIGURE_ORDER if f in printed_keys]
    paper_only = sorted(k for k in printed_keys
                        if k not in figures and not k.endswith("_std"))
    profiles = row_profiles(exp, profile)
    rows = [_row_result(exp, row, runs, units, figures, profiles) for row in exp.rows]
    return TableResult(name=exp.name, title=exp.title, source=exp.source, notes=exp.notes,
                       units=units, figures=figures, paper_only=paper_only, rows=rows)


def _row_result(exp: Experiment, row: dict, runs: list[Run], units: dict, figures: list[str],
                profiles: Callable[[str], dict] | None) -> RowResult:
    """One row: its matching runs, split into comparable and apart, and our figures."""
    res = RowResult(id=row["id"], label=row.get("label", row["id"]), row=row)
    res.all_runs = match_runs(exp, row, runs, errors=res.errors)
    comparable, res.apart = split_runs(exp, row, res.all_runs)
    res.runs = pick_runs(comparable)
    count = row.get("macs_count", "model")
    res.units = {**units, **(row.get("units") or {})}
    row_profile = None if profiles is None else (lambda: profiles(row["id"]))
    for fig in figures:
        values = [_our_value(r, fig, count, res.errors, row_profile) for r in res.runs]
        if fig == "macs":
            res.macs_by_run = {str(r.path): v for r, v in zip(res.runs, values)}
        scale = SCALE.get(res.units.get(fig, ""), 1)
        values = [None if v is None else v / scale for v in values]
        res.ours[fig] = mean_std(values)
    return res


def table_cells(table: TableResult) -> tuple[list[str], list[list[Cell]]]:
    """Header and cells: per figure ours / paper / ours − paper, then steps, seeds, our
    latency and the paper-only figures."""
    header = ["row"]
    for fig in table.figures:
        unit = table.units.get(fig, "")
        u = f" ({unit})" if unit else ""
        header += [f"{fig}{u} ours", f"{fig}{u} paper", f"{fig} Δ"]
    header += ["steps", "seeds", "latency ms (ours)"]
    header += [f"{k} ({table.units[k]}) paper" if table.units.get(k) else f"{k} paper"
               for k in table.paper_only]
    body = []
    for res in table.rows:
        paper = res.row.get("paper") or {}
        link = str(res.runs[0].path) if res.runs else None
        cells = [Cell(f"{res.label} (⚠ see notes)" if res.errors else res.label)]
        for fig in table.figures:
            printed = paper.get(fig)
            dec = decimals_of(printed if is_number(printed) else None,
                              default=3 if fig in ("ssim",) else 2)
            mean, std, n = res.ours.get(fig, (None, None, 0))
            ours = fmt_number(mean, dec)
            if std and Decimal(fmt_number(std, dec).replace(",", "")):
                ours += f" ± {fmt_number(std, dec)}"  # no "± 0" for figures seeds share
            cells.append(Cell(ours, link if mean is not None else None))
            paper_text = printed if printed is not None else "—"
            if printed is not None and paper.get(f"{fig}_std"):
                paper_text += f" ± {paper[f'{fig}_std']}"
            cells.append(Cell(paper_text))
            if mean is not None and is_number(printed):
                ours_q = Decimal(fmt_number(mean, dec).replace(",", ""))
                diff = ours_q - Decimal(printed)
                cells.append(Cell(f"{diff:+,.{dec}f}", link))
            else:
                cells.append(Cell("—"))
        steps = sorted({r.steps for r in res.runs if r.steps is not None})
        cells.append(Cell(", ".join(f"{s:,}" for s in steps) or "—", link))
        cells.append(Cell(seeds_text(res.runs), link))
        lat, lat_std, _ = mean_std([r.value("latency_ms") for r in res.runs])
        lat_text = fmt_number(lat, 1) + (f" ± {fmt_number(lat_std, 1)}" if lat_std else "")
        cells.append(Cell(lat_text, link if lat is not None else None))
        cells += [Cell(paper.get(k) or "—") for k in table.paper_only]
        body.append(cells)
    return header, body

