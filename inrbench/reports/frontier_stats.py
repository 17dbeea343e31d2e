"""The frontier's statistics tables: Bjøntegaard deltas between families over their ladders, on
each cost axis, and paired statistics of every pair of families over signals at each budget.

Input is the bench's runs as the frontier reads them (``{signal: {family: [Run]}}``, or a plain
list of runs: family = the run's model, signal = its recorded data description). A family's
*point* is one budget of its ladder (one model size): its quality is the mean over signals of
each signal's mean over seeds, its cost the mean of the runs' recorded cost. The formulas,
interpolation, interval and test are those of :mod:`inrbench.reports.stats`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import combinations

from inrbench.reports.runs import Run, mean_std
from inrbench.reports.stats import MIN_POINTS, bd_delta, fmt_p, fmt_pct, paired, signal_means

#: cost axes in the runs' records, and what each one counts
COST_AXES = {
    "macs": "MACs per sample, the paper's convention",
    "macs_measured": "matmul MACs per sample, measured on a full render",
    "flops": "FLOPs per sample, every op class counted",
    "params": "parameters",
    "latency_ms": "render latency (ms)",
}
#: constructor arguments the data fills in: not part of a model's size
_FROM_DATA = ("in_features", "out_features", "signal_shape", "bases")


def ladder_budget(run: Run) -> str | None:
    """The ladder budget a run was sized for (``metrics.json``'s ``ladder``: ``{"axis",
    "budget"}``), as ``axis=budget``; ``None`` for a run benched at its own size."""
    lad = run.summary.get("ladder")
    if isinstance(lad, Mapping) and lad.get("axis") and lad.get("budget") is not None:
        return f"{lad['axis']}={float(lad['budget']):g}"
    return None


def _size(run: Run) -> tuple:
    model = run.config.get("model") or {}
    return tuple(sorted((str(k), str(v)) for k, v in model.items() if k not in _FROM_DATA))


def _by_signal(runs) -> dict[str, dict[str, list[Run]]]:
    if isinstance(runs, Mapping):
        return {str(s): {str(f): list(rs) for f, rs in fams.items()} for s, fams in runs.items()}
    out: dict[str, dict[str, list[Run]]] = {}
    for r in runs:
        signal = str(r.summary.get("data_description") or r.data)
        out.setdefault(signal, {}).setdefault(r.model, []).append(r)
    return out


def _points(signals: dict, budget_of: Callable) -> dict[str, dict[tuple, dict]]:
    """family -> (budget, size) -> {"budget", "rows": [(signal, seed, quality)], "runs"}."""
    out: dict[str, dict[tuple, dict]] = {}
    for signal, fams in signals.items():
        for fam, runs in fams.items():
            for r in runs:
                budget = budget_of(r)
                pt = out.setdefault(fam, {}).setdefault(
                    (budget, _size(r)), {"budget": budget, "rows": [], "runs": []})
                metric = r.summary.get("metric", "psnr")
                pt["rows"].append((signal, r.seed if r.seed is not None else str(r.path),
                                   r.value(metric)))
                pt["runs"].append(r)
    return out


def _curve(points: dict[tuple, dict], axis: str) -> list[tuple[float, float]]:
    curve = []
    for pt in points.values():
        means = [v["mean"] for v in signal_means(pt["rows"]).values()]
        cost = mean_std([r.value(axis) for r in pt["runs"]])[0]
        if means and cost is not None:
            curve.append((cost, sum(means) / len(means)))
    return curve


def bd_tables(signals: dict, budget_of: Callable = ladder_budget,
              interpolation: str = "pchip") -> list[str]:
    """Markdown: per cost axis, every family (rows, test) against every other (columns,
    anchor): BD-rate and BD-ΔPSNR; a note instead where fewer than two families have a
    ladder of ``MIN_POINTS`` points."""
    points = _points(signals, budget_of)
    lines = ["## Bjøntegaard deltas between families", "",
             f"Row family against column family over the cost range both ladders cover: "
             f"*cost %* is the row's mean cost relative to the column's at equal quality "
             f"(BD-rate; negative = cheaper), *dB* its mean quality gain at equal cost "
             f"(BD-PSNR). Each family's curve is its ladder: per budget, the mean over signals "
             f"of each signal's mean over seeds, on its upper envelope; {interpolation} "
             f"interpolation on log10 cost (`bjontegaard` package, VCEG-M33); a curve needs "
             f"{MIN_POINTS} points.", ""]
    sizes = {f: len(p) for f, p in points.items()}
    laddered = [f for f, n in sizes.items() if n >= MIN_POINTS]
    if len(laddered) < 2:
        have = ", ".join(f"{f} {n}" for f, n in sizes.items())
        return lines + [f"Not computed: a Bjøntegaard delta needs a ladder of at least "
                        f"{MIN_POINTS} budgets in each of two families (`inrbench bench "
                        f"--ladder params=...`); points per family here: {have}.", ""]
    for axis, what in COST_AXES.items():
        curves = {f: _curve(points[f], axis) for f in laddered}
        if not any(curves.values()):
            continue
        lines += [f"### cost: `{axis}` ({what})", "",
                  "| row vs column | " + " | ".join(laddered) + " |",
                  "|" + "---|" * (len(laddered) + 1)]
        for test in laddered:
            cells = [test]
            for anchor in laddered:
                cells.append("—" if test == anchor else
                             _bd_cell(bd_delta(curves[anchor], curves[test], interpolation)))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _bd_cell(d: dict) -> str:
    if d["bd_rate"] is None and d["bd_quality"] is None:
        return f"n/a ({d['reason_rate']})"
    dq = "n/a" if d["bd_quality"] is None else f"{d['bd_quality']:+.2f} dB"
    return f"{fmt_pct(d['bd_rate'])} cost, {dq}"


def paired_tables(signals: dict, budget_of: Callable = ladder_budget) -> list[str]:
    """Markdown: every pair of families at each budget over the signals both ran on."""
    points = _points(signals, budget_of)
    n_signals = len(signals)
    lines = ["## Paired statistics over signals", ""]
    if n_signals < 2:
        return lines + ["Not computed: paired statistics need several signals (`inrbench "
                        "bench --vary ...`); this bench has one.", ""]
    lines += ["Per signal the seeds are averaged first; *wins* counts the signals where the "
              "first family's quality is higher (ties apart); the mean difference (first − "
              "second) has a two-sided 95% Student-t interval over signals; *p* is the "
              "two-sided Wilcoxon signed-rank test (`scipy.stats.wilcoxon`, zero differences "
              "dropped; exact below 51 signals without ties). With n signals the smallest "
              "p it can give is 2 / 2**n: six signals are needed for p < 0.05.", "",
              "| budget | first vs second | signals | seeds per signal | wins | mean diff "
              "(95% CI) | Wilcoxon p |", "|---|---|---|---|---|---|---|"]
    budgets = list(dict.fromkeys(pt["budget"] for pts in points.values() for pt in pts.values()))
    notes = []
    for budget in budgets:
        at = {}
        for fam, pts in points.items():
            here = [pt for pt in pts.values() if pt["budget"] == budget]
            if len(here) > 1:
                notes.append(f"{fam} has {len(here)} sizes at {budget or 'one budget'}: "
                             f"left out of the pairs there")
            elif here:
                at[fam] = signal_means(here[0]["rows"])
        for a, b in combinations(at, 2):
            p = paired(at[a], at[b])
            ci = ("" if p["ci"] is None else f" ({p['ci'][0]:+.2f}, {p['ci'][1]:+.2f})")
            mean = "—" if p["mean_diff"] is None else f"{p['mean_diff']:+.2f}{ci}"
            seeds = f"{_span(p['seeds_a'])}; {_span(p['seeds_b'])}"
            wins = f"{p['wins']} of {p['n']}" + (f" ({p['ties']} tied)" if p["ties"] else "")
            pval = fmt_p(p["p_value"]) if p["p_value"] is not None else f"— ({p['reason']})"
            lines.append(f"| {budget or 'the bench budget'} | {a} vs {b} | {p['n']} | {seeds} "
                         f"| {wins} | {mean} | {pval} |")
    return lines + [""] + [f"- {n}" for n in notes] + ([""] if notes else [])


def _span(counts: list[int]) -> str:
    if not counts:
        return "—"
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"


def family_tables(runs, budget_of: Callable = ladder_budget,
                  interpolation: str = "pchip") -> str:
    """Both tables as markdown, for ``frontier.md``: ``runs`` is ``{signal: {family:
    [Run]}}`` (as the frontier groups them) or a list of runs."""
    signals = _by_signal(runs)
    return "\n".join(bd_tables(signals, budget_of, interpolation)
                     + paired_tables(signals, budget_of))


__all__ = ["COST_AXES", "bd_tables", "family_tables", "ladder_budget", "paired_tables"]
