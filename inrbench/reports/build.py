"""``inrbench report RESULTS_DIR``: the paper's tables and curves regenerated from run results.

Reads only results folders (``metrics.json``, ``metrics.csv``, ``config.yaml``,
``reconstruction.png``) found recursively under RESULTS_DIR, plus the experiment files in
``conf/experiment/`` (which rows exist and what the paper printed). Writes, atomically:

* ``report.md``: tables and figure links (every figure of ours links to its run folder);
* ``report.html``: one self-contained file, figures embedded as base64 PNG;
* ``*.png``: the figures; ``runs.csv``: one line per run found.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from inrbench.config import list_experiments
from inrbench.config.experiment import Experiment, load_experiment
from inrbench.errors import InrbenchError
from inrbench.io import atomic_write_bytes, atomic_write_text
from inrbench.reports import figures as F
from inrbench.reports.amortized import amortized_sections
from inrbench.reports.comparable import apart_cells, apart_rows, data_source
from inrbench.reports.figure5 import figure5_sections
from inrbench.reports.ratedistortion import ratedistortion_sections
from inrbench.reports.runs import Run, find_runs, fmt_mean_std, mean_std
from inrbench.reports.sections import Cell, Figure, Section
from inrbench.reports.tables import REPORT_TABLES, TableResult, build_table, table_cells
from inrbench.sysinfo import git_sha

FORMATS = ("md", "html", "png")
#: what profiles an experiment's rows from their configs: ``inrbench.experiments
#: .profile_experiment``, given by the caller, since profiling builds models and a report
#: only reads results
Profile = Callable[[Experiment], list[dict]]


def _paper_steps(exp) -> str:
    """What the paper's training was, in the experiment's own terms."""
    steps = {str((exp.common.get("task") or {}).get("steps"))} - {"None"}
    for row in exp.rows:
        if "epochs" in row:
            steps.add(f"{row['epochs']} epochs")
        elif (row.get("task") or {}).get("steps"):
            steps.add(str(row["task"]["steps"]))
    return ", ".join(f"{int(s):,} steps" if s.isdigit() else s for s in sorted(steps)) or "?"


def _tag(table: str, res, run: Run) -> str:
    """``table2/asmr4``; marked when the row's figures come from runs with more steps."""
    tag = f"{table}/{res.id}"
    why = next((w for r, w in getattr(res, "apart", []) if r is run), None)
    if why is not None:
        return f"{tag} (shown apart: {why})"
    return tag if any(run is r for r in res.runs) else f"{tag} (not used: fewer steps)"


def _has_runs(table) -> bool:
    """A table is shown when a row has comparable runs or runs shown apart."""
    return bool(table.n_with_runs or any(res.apart for res in table.rows))


Tables = dict[str, tuple[Experiment, TableResult]]


def build_sections(runs: list[Run], tables: list[str], profile: Profile | None = None
                   ) -> tuple[list[Section], dict]:
    """The report's sections and ``{run folder: [table/row tags]}``: the paper's tables,
    their failures, the figures, then the sections of the other tasks."""
    results: Tables = {}
    for name in tables:
        exp = load_experiment(name)
        results[name] = (exp, build_table(exp, runs, profile))
    matched: dict[str, list[str]] = {}
    for name in tables:
        for res in results[name][1].rows:
            for r in res.all_runs:
                matched.setdefault(str(r.path), []).append(_tag(name, res, r))
    sections = []
    for name in tables:
        if _has_runs(results[name][1]):
            sections += _table_sections(name, *results[name])
    sections += _failure_sections(tables, results)
    sections.append(_figures_section(runs, results, matched, profile))
    sections += figure5_sections(runs)  # meta-learning runs (--task meta)
    sections += amortized_sections(runs)  # hypernet / meta / fit on the same test images
    sections += ratedistortion_sections(runs)  # compressed runs, codecs, OFA sub-networks
    return sections, matched


def _add_tags(matched: dict[str, list[str]], name: str, table: TableResult) -> None:
    """Tag every run the table's rows matched with ``table/row``, unless it has that tag."""
    for res in table.rows:
        for r in res.all_runs:
            tags = matched.setdefault(str(r.path), [])
            if _tag(name, res, r) not in tags:
                tags.append(_tag(name, res, r))


def _table_sections(name: str, exp: Experiment, table: TableResult) -> list[Section]:
    """One paper table beside our runs, its curves and reconstructions, and the runs shown
    apart from it."""
    sec = Section(exp.title)
    n_apart = sum(bool(res.apart) for res in table.rows)
    text = (f"Source: {exp.source}. {table.n_with_runs} of {len(table.rows)} rows have "
            f"runs on the paper's data set at the paper's length ({_paper_steps(exp)}); "
            f"only those fill the *ours* columns and get a Δ.")
    if n_apart:
        text += (f" {n_apart} row(s) have runs that are not comparable (stand-in data or "
                 f"fewer steps): they are listed apart under the table, without Δ.")
    sec.paragraphs.append(text)
    if exp.notes:
        sec.paragraphs.append(f"Experiment notes: {exp.notes.strip()}")
    sec.table = table_cells(table)
    groups = [(res.label, res.runs) for res in table.rows if res.runs]
    groups += [(f"{res.label} (apart: {runs[0].steps or 0:,} steps"
                f"{', stand-in' if 'stand-in' in why else ''})", runs)
               for res, why, runs in apart_rows(table)]
    png = F.training_curves(groups, f"{exp.name}: PSNR vs step (our runs)")
    if png:
        sec.figures.append(Figure(f"{name}_curves.png", f"{exp.name}: PSNR during "
                                  f"training, one line per row (seeds averaged)", png))
    items = [(res.label, res.runs[0]) for res in table.rows if res.runs]
    png = F.reconstruction_grid(items, f"{exp.name}: reconstructions (centre crop enlarged)")
    if png:
        sec.figures.append(Figure(f"{name}_reconstructions.png", f"{exp.name}: the saved "
                                  f"reconstruction of each row (its first seed), centre "
                                  f"quarter enlarged below", png))
    sections = [sec]
    apart = apart_cells(table)
    if apart:
        sections.append(Section(
            f"{exp.name}: runs shown apart (not comparable with the paper's figures)",
            ["These runs match a row's model, data and schedule but saw a stand-in for "
             "the paper's data set or trained fewer steps than the paper; their figures "
             "measure that, not the model, so they get no paper column and no Δ."],
            apart, level=3))
    return sections


def _failure_sections(tables: list[str], results: Tables) -> list[Section]:
    """Rows whose matching (or MACs) failed, in any table, shown, never a silent "—"; then
    the tables no run matched."""
    sections = []
    failed = [f"⚠ {name} {res.label}: {err}" for name in tables
              for res in results[name][1].rows for err in res.errors]
    if failed:
        sections.append(Section("Matching failures", failed))
    empty = [n for n in tables if not _has_runs(results[n][1])]
    if empty:
        sections.append(Section("Tables without runs", [
            "No run under the results folder matches a row of "
            + ", ".join(results[n][0].title.split(":")[0] for n in empty)
            + " (train them with `inrbench run --experiment tableN`)."]))
    return sections


def _figures_section(runs: list[Run], results: Tables, matched: dict[str, list[str]],
                     profile: Profile | None) -> Section:
    """Figure 2 (profiled from Table 7's configs, never trained) and Figure 3 (our runs of
    Table 2 and Table 9 rows, tagged in ``matched`` too)."""
    sec = Section("Figures")
    if profile is None:
        sec.paragraphs.append("Figure 2 is profiled from Table 7's configurations and "
                              "profiling was not run for this report, so it is omitted.")
    else:
        try:
            profiles = profile(load_experiment("table7"))
        except InrbenchError:
            profiles = []
        png = F.figure2(profiles)
        if png:
            sec.figures.append(Figure(
                "figure2.png", "Figure 2: MACs per sample vs #params as depth grows (Table "
                "7's configurations), profiled from the configs, not trained; hollow squares "
                "are the paper's printed Table 7 figures", png))
    rows3 = []
    for name in ("table2", "table9"):
        if name in results:
            table = results[name][1]
        else:
            table = build_table(load_experiment(name), runs, profile)
        rows3 += table.rows
        _add_tags(matched, name, table)
    png = F.figure3(F.figure3_points(rows3), F.figure3_paper_points(rows3))
    if png:
        sec.figures.append(Figure(
            "figure3.png", "Figure 3: best PSNR vs MACs per sample of Table 2 and Table 9 rows: "
            "ours filled (runs on the paper's data at the paper's length only; marker area ∝ "
            "#params), the paper's printed figures as hollow squares of the same colour", png))
    else:
        sec.paragraphs.append("Figure 3 needs runs of Table 2 or Table 9 rows; none found.")
    return sec


def _data_label(run: Run) -> str:
    """The data module, marked when the run did not see the paper's data set."""
    source = data_source(run)
    if source in (None, "paper"):
        return run.data if source else f"{run.data} (source not recorded)"
    return f"{run.data} ({source})"


def runs_section(runs: list[Run], matched: dict) -> Section:
    header = ["run folder", "model", "data", "rows", "steps", "seed", "best PSNR", "final",
              "params", "MACs", "latency ms", "wall s", "backend"]
    body = []
    for r in runs:
        link = str(r.path)
        metric = r.summary.get("metric", "psnr")
        final = r.value(metric)
        body.append([
            Cell(r.path.name, link), Cell(r.model), Cell(_data_label(r)),
            Cell(", ".join(matched.get(link, [])) or "—"),
            Cell(f"{r.steps:,}" if r.steps is not None else "—", link),
            Cell(str(r.seed)), Cell(fmt_mean_std(r.value("best_psnr"), None), link),
            Cell(f"{metric} {final:.4g}" if final is not None else "—", link),
            Cell(f"{int(r.value('params')):,}" if r.value("params") is not None else "—", link),
            Cell(f"{r.value('macs'):,.1f}" if r.value("macs") is not None else "—", link),
            Cell(fmt_mean_std(r.value("latency_ms"), None, 1), link),
            Cell(fmt_mean_std(r.value("wall_s"), None, 0), link),
            Cell(str(r.summary.get("backend", "—")))])
    return Section("Runs", ["Every results folder found; *rows* names the table rows it "
                            "matched (same model, data and learning-rate schedule); a row's "
                            "figures come from its runs with the most steps."],
                   (header, body))


# -- rendering -----------------------------------------------------------------------------

def _rel(href: str, out: Path) -> str:
    return quote(os.path.relpath(href, out.resolve()).replace(os.sep, "/"))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_md(title: str, intro: list[str], sections: list[Section], out: Path) -> str:
    lines = [f"# {title}", ""]
    lines += [p + "\n" for p in intro]
    for sec in sections:
        lines += [f"{'#' * sec.level} {sec.title}", ""]
        lines += [p + "\n" for p in sec.paragraphs]
        if sec.table:
            header, body = sec.table
            lines.append("| " + " | ".join(_md_escape(h) for h in header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            for row in body:
                cells = [f"[{_md_escape(c.text)}]({_rel(c.href, out)})" if c.href
                         else _md_escape(c.text) for c in row]
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        for fig in sec.figures:
            lines += [f"![{fig.caption}]({fig.name})", "", f"*{fig.caption}*", ""]
    return "\n".join(lines)


CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid
#ccc;padding:3px 6px;text-align:right}td:first-child,th:first-child{text-align:left}
th{background:#f3f3f3}img{max-width:100%}figure{margin:1.5em 0}figcaption{font-size:13px;
color:#555}a{color:#0645ad;text-decoration:none}"""


def render_html(title: str, intro: list[str], sections: list[Section], out: Path) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>{e(title)}</title><style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    parts += [f"<p>{_inline(p)}</p>" for p in intro]
    for sec in sections:
        h = f"h{sec.level}"
        parts.append(f"<{h}>{e(sec.title)}</{h}>")
        parts += [f"<p>{_inline(p)}</p>" for p in sec.paragraphs]
        if sec.table:
            header, body = sec.table
            parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in header) + "</tr>")
            for row in body:
                cells = [f"<a href='{e(_rel(c.href, out))}'>{e(c.text)}</a>" if c.href
                         else e(c.text) for c in row]
                parts.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            parts.append("</table>")
        for fig in sec.figures:
            data = base64.b64encode(fig.png).decode()
            parts.append(f"<figure><img alt='{e(fig.caption)}' src='data:image/png;base64,"
                         f"{data}'><figcaption>{e(fig.caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _inline(text: str) -> str:
    """Escape, then turn `code` spans into <code> and *emphasis* into <em>."""
    out, code = [], False
    for piece in html.escape(text).split("`"):
        out.append(f"<code>{piece}</code>" if code else re.sub(r"\*([^*]+)\*", r"<em>\1</em>",
                                                                piece))
        code = not code
    return "".join(out)


def runs_csv(runs: list[Run], matched: dict) -> str:
    keys = ("model", "data", "data_source", "steps", "seed", "best_psnr", "psnr", "ssim", "iou",
            "params", "macs", "macs_measured", "latency_ms", "latency_device", "wall_s",
            "backend", "lr")
    df = pd.DataFrame([{"path": str(r.path), "rows": "; ".join(matched.get(str(r.path), [])),
                        **{k: r.summary.get(k) for k in keys}} for r in runs])
    buf = io.StringIO()
    df.to_csv(buf, index=False)
    return buf.getvalue()


def _lengths(runs: list[Run]) -> str:
    """Per model and machine: the steps its runs had, how many runs, and seconds per step
    (never averaged across machines: a GPU's step is not a CPU's)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.model, r.machine), []).append(r)
    several = len({m for _, m in groups}) > 1
    parts = []
    for (model, where), rs in groups.items():
        steps = sorted({r.steps for r in rs if r.steps})
        per_step, _, _ = mean_std([r.value("wall_s") / r.steps for r in rs
                                   if r.steps and r.value("wall_s") is not None])
        text = f"{model} {'/'.join(f'{s:,}' for s in steps) or '?'} steps ({len(rs)} run"
        text += "s" if len(rs) > 1 else ""
        text += f", {per_step:.2f} s/step" if per_step is not None else ""
        text += f" on {where})" if several else ")"
        parts.append(text)
    return "; ".join(parts)


def make_report(results_dir, out, formats=("md", "html", "png"), tables=None,
                title: str | None = None, notes: list[str] | None = None, *,
                profile: Profile | None = None) -> dict:
    """Build the report of every run under ``results_dir`` (a folder, or a list of folders
    whose runs make one report) into ``out``; returns ``{"runs": n, "files": [...],
    "errors": [...]}`` (rows whose matching failed, each naming the run and the error; they
    are marked in the report too).

    ``profile`` profiles an experiment's rows from their configs (the CLI passes
    :func:`inrbench.experiments.profile_experiment`): Figure 2 comes from it, and so do the
    MACs of a row's count when a run's ``metrics.json`` lacks ``macs_counts``. Without it
    Figure 2 is omitted, saying so, and such MACs are marked as failures."""
    roots = [Path(r) for r in results_dir] if isinstance(results_dir, (list, tuple)) else [
        Path(results_dir)]
    results_dir, out = roots[0], Path(out)
    named = " ".join(str(r) for r in roots)
    tables = _checked_tables(formats, tables)
    runs = find_runs(*roots)
    if not runs:
        raise InrbenchError(f"no run results (metrics.json) under {named}; train with "
                            f"'inrbench run ... --out {results_dir}/NAME' first")
    sections, matched = build_sections(runs, tables, profile)
    sections.append(runs_section(runs, matched))
    title = title or f"inrbench report: {results_dir.name or results_dir}"
    intro = _intro(named, runs) + list(notes or [])
    files = _write(out, formats, title, intro, sections, runs, matched)
    errors = [p[2:] for sec in sections for p in sec.paragraphs if p.startswith("⚠ ")]
    return {"runs": len(runs), "files": files, "tables": [s.title for s in sections],
            "errors": errors}


def _checked_tables(formats, tables) -> list[str]:
    """The tables to report (all of :data:`REPORT_TABLES` by default), once ``formats`` and
    ``tables`` are known to be valid."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InrbenchError(f"--format takes a comma-separated subset of {','.join(FORMATS)}, "
                            f"got {','.join(formats) or 'nothing'}")
    tables = list(tables or REPORT_TABLES)
    unknown = [t for t in tables if t not in list_experiments()]
    if unknown:
        raise InrbenchError(f"unknown table(s) {', '.join(unknown)}; choose from "
                            f"{', '.join(REPORT_TABLES)}")
    return tables


def _intro(named: str, runs: list[Run]) -> list[str]:
    """What made the report, how to read its tables and how long the runs trained."""
    return [
        f"Generated by `inrbench report {named}` on "
        f"{datetime.now().strftime('%Y-%m-%d %H:%M')} (inrbench {git_sha(short=True) or '?'}) "
        f"from {len(runs)} run folder(s); every figure of ours links to the run folder it "
        f"comes from.",
        "How to read the tables: *ours* is read from the runs' `metrics.json` (PSNR is the best "
        "PSNR seen during training, as the official code reports it; MACs are counted in the "
        "row's convention, see `inrbench profile --experiment`), *paper* is the figure as "
        "printed (± the paper's spread over its images where printed), Δ is ours − paper at the "
        "printed precision. Only runs on the paper's data set at the paper's training length "
        "fill *ours* and get a Δ; runs on a stand-in data set or with fewer steps are listed "
        "apart under each table. A row without a run shows —. Several seeds of one configuration "
        "show mean ± sample std, and so does a row trained over a data set's signals "
        "(`--vary`), over its members. Latency is ours, on the machine that ran the run.",
        "Training length of the runs found (wall time per step measured on the machine that "
        "ran them): " + _lengths(runs) + ".",
    ]


def _write(out: Path, formats, title: str, intro: list[str], sections: list[Section],
           runs: list[Run], matched: dict) -> list[str]:
    """Write the report's files (atomically) into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    if "png" in formats:
        for sec in sections:
            for fig in sec.figures:
                atomic_write_bytes(out / fig.name, fig.png)
                files.append(str(out / fig.name))
    if "md" in formats:
        atomic_write_text(out / "report.md", render_md(title, intro, sections, out))
        files.append(str(out / "report.md"))
    if "html" in formats:
        atomic_write_text(out / "report.html", render_html(title, intro, sections, out))
        files.append(str(out / "report.html"))
    atomic_write_text(out / "runs.csv", runs_csv(runs, matched))
    files.append(str(out / "runs.csv"))
    return files
