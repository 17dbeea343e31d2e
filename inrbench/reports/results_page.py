"""The results page of the documentation (``docs/results.md``), generated from the committed
records, never typed: for every experiment file, each row with the runs that match it
(``tables.match_runs``), how long they trained against the paper's length, on which data
(the paper's or a stand-in, ``comparable.data_source``) and machine, our figure beside the
paper's, and links to the records.

Regenerate with ``python -m inrbench.reports.results_page`` (or ``nox -s results``);
``tests/test_docs.py`` checks the committed page equals a fresh generation. It reads results
folders and experiment files only, like the rest of :mod:`inrbench.reports`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from omegaconf import OmegaConf

from inrbench.config import list_experiments, row_config
from inrbench.config.experiment import load_experiment
from inrbench.io import atomic_write_text
from inrbench.reports.comparable import apart_reason, data_source
from inrbench.reports.runs import Run, find_runs, fmt_mean_std, mean_std
from inrbench.reports.tables import FIGURE_ORDER, SUMMARY_KEY, _identity, pick_runs

HEADER = """# Results: what has been run

This page is generated from the records committed under `reports/` (their `metrics.json`
and `config.yaml`) and the experiment files in `conf/experiment/`; do not edit it by hand.
Regenerate it with `python -m inrbench.reports.results_page` (or `nox -s results`).

For every row of every paper table: the runs whose configuration matches the row (same
model, data and learning-rate schedule), their length against the paper's, the data they saw
(`paper`, or a `stand-in` when the paper's data set could not be had), the machine, our figure
beside the paper's, and the record. A run **counts** beside the paper's figure only when it saw
the paper's data and trained at least the paper's length; every other run is listed as
*apart*, with the reason. Rows without a run are counted, not listed.
"""


def _figure(exp_rows: list[dict]) -> str | None:
    """The quality figure the table prints (PSNR, SSIM or IoU), the first in report order."""
    printed = {k for row in exp_rows for k, v in (row.get("paper") or {}).items()
               if v is not None}
    return next((f for f in FIGURE_ORDER if f in printed and f not in ("params", "macs")),
                None)


def _value(runs: list[Run], figure: str | None) -> str:
    if figure is None:
        return "—"
    mean, std, n = mean_std([r.value(SUMMARY_KEY[figure]) for r in runs])
    return fmt_mean_std(mean, std) if n else "—"


def _links(runs: list[Run], page_dir: Path, root: Path) -> str:
    out = []
    for r in runs:
        rel = Path(os.path.relpath(r.path.resolve(), page_dir.resolve())).as_posix()
        out.append(f"[{r.path.resolve().relative_to(root).as_posix()}]({rel}/)")
    return "<br>".join(out)


def _length(runs: list[Run], steps: int | None) -> str:
    ours = sorted({r.steps for r in runs if r.steps is not None})
    text = ", ".join(f"{s:,}" for s in ours) or "—"
    return f"{text} / {steps:,}" if steps is not None else f"{text} / —"


def _matching(cfg: dict, runs: list[Run]) -> list[Run]:
    """Runs that fitted what the row describes (``tables._identity``: model, data, schedule),
    comparing only the schedule keys the row's task has: a record written when every task
    shared one ``task:`` section holds the fitting task's ``lr`` under a meta-learning run."""
    want, keys = _identity(cfg), set(cfg.get("task") or {})
    found = []
    for run in runs:
        task = {k: v for k, v in (run.config.get("task") or {}).items() if k in keys}
        try:
            if _identity({**run.config, "task": task}) == want:
                found.append(run)
        except Exception:  # a malformed config.yaml fits no row; reports name it
            continue
    return found


def _row_runs(exp, row, runs: list[Run]) -> tuple[int | None, list[tuple[str, list[Run]]]]:
    """The row's length and its runs in groups: ``("yes", runs)`` for those that count beside
    the paper (the longest, as reports pick them), then ``("apart: why", runs)`` per reason
    and length. The row is composed once (composition dominates the page's cost)."""
    cfg = OmegaConf.to_container(row_config(exp, row), resolve=True)
    steps = cfg.get("task", {}).get("steps")
    steps = None if steps is None else int(steps)
    counted, apart = [], {}
    for run in _matching(cfg, runs):
        why = apart_reason(run, steps)
        if why is None:
            counted.append(run)
        else:
            apart.setdefault((why, run.steps), []).append(run)
    groups = [("yes", pick_runs(counted))] if counted else []
    return steps, groups + [(f"apart: {why}", g) for (why, _), g in apart.items()]


def experiment_section(name: str, runs: list[Run], page_dir: Path, root: Path) -> list[str]:
    exp = load_experiment(name)
    figure = _figure(exp.rows) or "psnr"  # a configuration-only table: the runs' PSNR
    fig_name = {"psnr": "best PSNR (dB)", "ssim": "SSIM", "iou": "IoU"}[figure]
    lines = [f"## {exp.title}", "", f"`conf/experiment/{name}.yaml`; source: {exp.source}.", ""]
    body = []
    ran = 0
    for row in exp.rows:
        steps, groups = _row_runs(exp, row, runs)
        ran += bool(groups)
        paper = (row.get("paper") or {}).get(figure)
        for status, group in groups:
            group = sorted(group, key=lambda r: (r.seed is None, r.seed, str(r.path)))
            seeds = ", ".join(str(r.seed) for r in group if r.seed is not None) or "—"
            sources = ", ".join(sorted({data_source(r) or "not recorded" for r in group}))
            machines = ", ".join(sorted({r.machine for r in group}))
            body.append(f"| {row.get('label', row['id'])} | {status} | {_length(group, steps)} "
                        f"| {seeds} | {sources} | {machines} | {_value(group, figure)} | "
                        f"{paper if paper is not None else '—'} | "
                        f"{_links(group, page_dir, root)} |")
    lines.append(f"{ran} of {len(exp.rows)} rows have run.")
    if body:
        lines += ["", f"| row | counts? | steps (ours / paper) | seeds | data | machine | "
                  f"ours, {fig_name} | paper | records |", "|---|---|---|---|---|---|---|---|---|",
                  *body]
    return lines + [""]


def _order(name: str) -> tuple:
    """ASMR's tables by number, then its figures, then the other papers' files."""
    for rank, prefix in enumerate(("table", "figure")):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return rank, int(name[len(prefix):]), name
    return 2, 0, name


def results_page(records: Path, page: Path) -> str:
    """The page's text: every experiment file against every run under ``records``."""
    root = records.resolve().parent
    runs = find_runs(records)
    lines = [HEADER]
    for name in sorted(list_experiments(), key=_order):
        lines += experiment_section(name, runs, page.parent, root)
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m inrbench.reports.results_page",
                                description="write the documentation's results page")
    p.add_argument("--records", default="reports", help="folder of the committed records")
    p.add_argument("--out", default="docs/results.md", help="the page to write")
    args = p.parse_args(argv)
    out = Path(args.out)
    atomic_write_text(out, results_page(Path(args.records), out))
    print(f"results page: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
