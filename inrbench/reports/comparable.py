"""Which runs may stand beside the paper's figures, and the table of those that may not.

A run matched to a paper row (``tables.match_runs``: same model, data and schedule) fills
the row's *ours* column, and gets a Δ against the paper, only when it is comparable:

* it saw the paper's data set (``data_source: paper`` in its ``metrics.json``, see
  ``inrbench.data.provenance``). A stand-in (a shipped sample used because the data set was
  missing) or the user's own file is not the paper's signal. A record without the field
  counts as the paper's data only for a data module that has no stand-in (Cameraman);
* it trained at least the row's length (the ``task.steps`` that ``inrbench run --experiment``
  gives the row): a short run measures training length, not the model.

Every other matching run is listed *apart*, under the table, with the reason, its steps and
its figures, and never a Δ.
"""

from __future__ import annotations

from pathlib import Path

from inrbench.config import row_config
from inrbench.data.provenance import run_source
from inrbench.data.registry import DATAMODULES
from inrbench.reports.runs import Run, fmt_mean_std, mean_std, seeds_text
from inrbench.reports.sections import Cell


def paper_steps(exp, row) -> int | None:
    """The row's training length as the experiment file gives it (None if it has none)."""
    try:
        steps = row_config(exp, row).task.get("steps")
    except Exception:  # a row that does not compose has no runs to compare anyway
        return None
    return None if steps is None else int(steps)


def data_source(run: Run) -> str | None:
    """``paper``, ``stand-in``, ``user`` or None (not recorded and not inferable)."""
    source = run_source(run.summary, run.config)
    if source is not None:
        return source
    try:
        cls = DATAMODULES.get(run.data)
    except Exception:
        return None
    return getattr(cls, "data_source", None)  # a module without stand-in: always the paper's


def apart_reason(run: Run, steps: int | None) -> str | None:
    """Why ``run`` is not comparable with the paper's figure (None when it is)."""
    source = data_source(run)
    if source == "stand-in":
        # file names, not paths: the folders are those of the machine that ran it
        names = [Path(f["path"]).name for f in run.summary.get("data_files") or []
                 if f.get("path")]
        what = (", ".join(names) or run.summary.get("data_description")
                or "a shipped sample")
        if run.summary.get("data_stands_in_for"):
            what += f" for {run.summary['data_stands_in_for']}"
        return f"stand-in data ({what}), not the paper's data set"
    if source == "user":
        return "the user's own file, not the paper's data set"
    if source != "paper":
        return "data source not recorded (its metrics.json does not name its data)"
    if steps is not None and (run.steps or 0) < steps:
        return f"{run.steps or 0:,} of the paper's {steps:,} steps"
    return None


def split_runs(exp, row, matching: list[Run]) -> tuple[list[Run], list[tuple[Run, str]]]:
    """``(comparable, apart)``: runs that may fill the paper's column, and the others with
    the reason each is shown apart."""
    steps = paper_steps(exp, row)
    comparable, apart = [], []
    for run in matching:
        why = apart_reason(run, steps)
        if why is None:
            comparable.append(run)
        else:
            apart.append((run, why))
    return comparable, apart


def apart_rows(table) -> list[tuple]:
    """``(row result, reason, runs)`` per group of apart runs (seeds of one reason and
    length together), in the table's row order."""
    out = []
    for res in table.rows:
        groups: dict[tuple, list[Run]] = {}
        for run, why in getattr(res, "apart", []):
            groups.setdefault((why, run.steps), []).append(run)
        for (why, _), runs in groups.items():
            out.append((res, why, sorted(runs, key=lambda r: (r.seed is None, r.seed))))
    return out


def apart_cells(table):
    """Header and cells of the runs shown apart, or None when there are
    none: row, why, steps, seeds, best PSNR, params, MACs; no paper column, no Δ."""
    rows = apart_rows(table)
    if not rows:
        return None
    header = ["row", "shown apart because", "steps", "seeds", "best PSNR (dB)", "params",
              "MACs/sample", "run"]
    body = []
    for res, why, runs in rows:
        link = str(runs[0].path)
        psnr, std, _ = mean_std([r.value("best_psnr") for r in runs])
        params = runs[0].value("params")
        macs = runs[0].value("macs")
        body.append([
            Cell(res.label), Cell(why),
            Cell(", ".join(sorted({f"{r.steps:,}" for r in runs if r.steps is not None}))
                 or "—", link),
            Cell(seeds_text(runs)),
            Cell(fmt_mean_std(psnr, std), link if psnr is not None else None),
            Cell(f"{int(params):,}" if params is not None else "—"),
            Cell(f"{macs:,.1f}" if macs is not None else "—"),
            Cell(runs[0].path.name, link)])
    return header, body
