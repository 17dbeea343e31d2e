"""The quality-cost frontier of a bench folder (``inrbench bench``): quality against MACs per
sample, render latency, parameters, peak memory and training time, one point per model.

Reads only the runs' records, laid out as ``ROOT/<signal>/<model>/seed<N>/`` (or
``ROOT/<signal>/seed<N>/<row id>/`` for a paper table's rows, each row one point). Per signal and
model: the mean ± sample std over seeds. A model is *non-dominated* on a cost when no other
model has at least its quality at no more cost, one of them strictly (the Pareto front of
quality against that cost); ``frontier`` marks the models non-dominated on all costs at once.
With several signals the summary is the mean over signals of each model's per-signal mean
(± the std over signals) and its frontier is taken on those means.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from inrbench.errors import InrbenchError
from inrbench.io import atomic_write_bytes, atomic_write_json, atomic_write_text, safe_name
from inrbench.reports.frontier_figure import COSTS, frontier_png
from inrbench.reports.frontier_stats import family_tables, ladder_budget
from inrbench.reports.runs import Run, find_runs, fmt_mean_std, mean_std

#: what the one-line answers call the cheapest model on each cost
ANSWER = {"macs": "fewest MACs/sample (paper convention)",
          "macs_measured": "fewest measured matmul MACs/sample",
          "flops": "fewest FLOPs/sample (inrbench-flops-1)", "latency_ms": "cheapest to render",
          "params": "fewest parameters", "peak_rss_mb": "least training memory",
          "train_s": "fastest to train"}
#: peak-memory differences within this band (relative, or MiB, whichever is larger) are noise
#: of the process baseline (allocator, imported libraries), not a ranking
MEMORY_BAND = (0.05, 32.0)


def _macs(run: Run) -> float | None:
    """MACs per sample in the paper's convention, else the measured matmul MACs."""
    return run.value("macs") if run.value("macs") is not None else run.value("macs_measured")


def _reached(run: Run, target: float) -> float | None:
    for hit in run.summary.get("time_to_targets") or []:
        if float(hit.get("target")) == float(target):
            return hit.get("train_s")
    return None


def model_record(model: str, runs: list[Run], targets: list[float]) -> dict:
    """One model on one signal: each number as {mean, std, n} over its seeds."""
    metric = runs[0].summary.get("metric", "psnr")
    values = {"quality": [r.value(metric) for r in runs],
              "psnr_8bit": [r.value("psnr_8bit") for r in runs],
              "ssim": [r.value("ssim") for r in runs],
              "macs": [_macs(r) for r in runs],
              "steps": [r.value("steps") for r in runs],
              "gpu_mb": [((r.summary.get("memory") or {}).get("train") or {}).get("gpu_mb")
                         for r in runs],
              **{key: [r.value(key) for r in runs] for key, _, _ in COSTS if key != "macs"}}
    rec = {"model": model, "metric": metric, "seeds": [r.seed for r in runs],
           "paths": [str(r.path) for r in runs],
           "stopped_by": sorted({str(r.summary.get("stopped_by")) for r in runs}),
           "macs_source": "paper" if runs[0].value("macs") is not None else "measured",
           "cost_rule": runs[0].summary.get("cost_rule"),
           "eval_every": (runs[0].config.get("task") or {}).get("eval_every")}
    lad = runs[0].summary.get("ladder") or {}
    rec["own_size"] = bool(lad) and not lad.get("knob")
    rec["knob"] = {lad["knob"]: lad.get("value")} if lad.get("knob") else None
    steps = [r.value("steps") or 0 for r in runs]
    # only the final evaluation: a time to target is the whole run, an upper bound
    rec["time_bound"] = rec["eval_every"] is None or all(rec["eval_every"] >= n for n in steps)
    for key, vals in values.items():
        mean, std, n = mean_std(vals)
        rec[key] = {"mean": mean, "std": std, "n": n}
    rec["time_to"] = {}
    for t in targets:
        times = [_reached(r, t) for r in runs]
        mean, std, n = mean_std(times)
        rec["time_to"][str(t)] = {"mean": mean if n == len(runs) else None, "std": std,
                                  "reached": n, "of": len(runs)}
    return rec


def non_dominated(records: list[dict], costs: list[str]) -> list[str]:
    """Models no other model beats: at least its quality at no more of every cost in
    ``costs``, better in one. Models without a quality or one of the costs are left out."""
    def vec(r):
        q = r["quality"]["mean"]
        cs = [r[c]["mean"] for c in costs]
        return None if q is None or any(c is None for c in cs) else (q, cs)

    points = {r["model"]: vec(r) for r in records if vec(r) is not None}
    front = []
    for name, (q, cs) in points.items():
        beaten = any(q2 >= q and all(a <= b for a, b in zip(c2, cs))
                     and (q2 > q or any(a < b for a, b in zip(c2, cs)))
                     for other, (q2, c2) in points.items() if other != name)
        if not beaten:
            front.append(name)
    return front


def answers(records: list[dict], quality: float, unit: str) -> list[str]:
    """One line per cost: the cheapest model whose quality reached ``quality``; and the model
    that reached it in the fewest training seconds."""
    ok = [r for r in records if (r["quality"]["mean"] or float("-inf")) >= quality]
    if not ok:
        best = max(records, key=lambda r: r["quality"]["mean"] or float("-inf"))
        return [f"no model reached {quality:g} {unit} (best: {best['model']} at "
                f"{fmt_mean_std(best['quality']['mean'], None)} {unit})"]
    families = sorted({r.get("family", r["model"]) for r in ok})
    if len(families) == 1 and len(records) > 1:  # one name in every line says nothing more
        rungs = ", ".join(r["model"] for r in ok)
        return [f"only {families[0]} reaches {quality:g} {unit}" +
                (f" ({rungs})" if rungs != families[0] else "")]
    lines = []
    timed = all(r.get("stopped_by") == ["max_time"] for r in records)
    for key, _, cost_unit in COSTS:
        if key == "train_s" and timed:
            continue  # every run trained for the same time: "first to reach" says more
        have = [r for r in ok if (r.get(key) or {}).get("mean") is not None]
        if have:
            r = min(have, key=lambda r: r[key]["mean"])
            if key == "peak_rss_mb":
                band = max(MEMORY_BAND[0] * r[key]["mean"], MEMORY_BAND[1])
                tied = [o for o in have if o[key]["mean"] - r[key]["mean"] <= band]
                if len(tied) > 1:
                    lines.append(f"training memory at >= {quality:g} {unit}: {len(tied)} "
                                 f"models within {MEMORY_BAND[1]:g} MiB / "
                                 f"{MEMORY_BAND[0]:.0%} of the least (noise band): not ranked")
                    continue
            lines.append(f"{ANSWER[key]} at >= {quality:g} {unit}: {r['model']} "
                         f"({_num(r[key]['mean'])}{' ' + cost_unit if cost_unit else ''})")
    first = [r for r in records if (r["time_to"].get(str(quality)) or {}).get("mean") is not None]
    if first:
        r = min(first, key=lambda r: r["time_to"][str(quality)]["mean"])
        bound = "at most " if r.get("time_bound") else ""
        lines.append(f"first to reach {quality:g} {unit}: {r['model']} after "
                     f"{bound}{_num(r['time_to'][str(quality)]['mean'])} s of training"
                     + (" (only the final evaluation: a bound)" if bound else ""))
    return lines


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.3g}"


def _signals(root: Path) -> dict[str, dict[str, list[Run]]]:
    runs = find_runs(root)
    if not runs:
        raise InrbenchError(f"no finished runs (metrics.json) under {root}")
    out: dict[str, dict[str, list[Run]]] = {}
    for run in runs:
        parts = run.path.resolve().relative_to(root.resolve()).parts
        signal = parts[0] if len(parts) >= 3 else "signal"
        # <signal>/<model>/seed<N> or, for a table's rows, <signal>/seed<N>/<row id>
        label = next((q for q in parts[1:] if not re.fullmatch(r"seed\d+", q)), run.model)
        model = run.model if safe_name(run.model) == label else label
        out.setdefault(signal, {}).setdefault(model, []).append(run)
    try:  # the order the bench planned them in
        planned = [s["label"] for s in json.loads((root / "bench.json").read_text())["signals"]]
    except (OSError, ValueError, KeyError, TypeError):
        planned = []
    order = {name: i for i, name in enumerate(planned)}
    return dict(sorted(out.items(), key=lambda kv: order.get(kv[0], len(order))))


def _mark(records: list[dict]) -> None:
    for r in records:
        r["non_dominated_on"] = []
    for key, _, _ in COSTS:
        front = set(non_dominated(records, [key]))
        for r in records:
            if r["model"] in front:
                r["non_dominated_on"].append(key)
    joint = set(non_dominated(records, [k for k, _, _ in COSTS]))
    for r in records:
        r["frontier"] = r["model"] in joint


def _rung_records(family: str, runs: list[Run], targets: list[float]) -> list[dict]:
    """One record per ladder budget of a family (one for a family benched at one size), in
    budget order: ``model`` is ``family @ axis=budget``, ``family`` and ``budget`` beside it."""
    rungs: dict = {}
    for r in runs:
        rungs.setdefault(ladder_budget(r), []).append(r)
    out = []
    for budget in sorted(rungs, key=lambda b: (b is not None, float(b.split("=")[1]) if b else 0)):
        rec = model_record(family if budget is None else f"{family} @ {budget}", rungs[budget],
                           targets)
        rec["family"], rec["budget"] = family, budget
        out.append(rec)
    return out


def _across(per_signal: dict[str, list[dict]]) -> list[dict]:
    """Each model's mean over signals of its per-signal means (± std over signals)."""
    models = list(dict.fromkeys(r["model"] for recs in per_signal.values() for r in recs))
    out = []
    for m in models:
        recs = [r for recs in per_signal.values() for r in recs if r["model"] == m]
        rec = {"model": m, "metric": recs[0]["metric"], "signals": len(recs),
               "macs_source": recs[0]["macs_source"],
               **{k: recs[0].get(k) for k in ("family", "budget", "own_size", "knob",
                                               "cost_rule", "eval_every")},
               "time_bound": any(r.get("time_bound") for r in recs),
               "stopped_by": sorted({s for r in recs for s in r["stopped_by"]})}
        for key in ("quality", "psnr_8bit", "ssim", "steps", "gpu_mb",
                    *(k for k, _, _ in COSTS)):
            mean, std, n = mean_std([r[key]["mean"] for r in recs])
            rec[key] = {"mean": mean, "std": std, "n": n}
        rec["time_to"] = {}
        for t in recs[0]["time_to"]:
            vals = [r["time_to"][t]["mean"] for r in recs]
            mean, std, n = mean_std(vals)
            rec["time_to"][t] = {"mean": mean if n == len(recs) else None, "std": std,
                                 "reached": n, "of": len(recs)}
        out.append(rec)
    return out


def frontier(root: Path, quality: float | None = None, targets: list[float] | None = None) -> dict:
    """The frontier of every signal under ``root`` and, with several, of their means."""
    root = Path(root)
    signals = _signals(root)
    first = next(iter(next(iter(signals.values())).values()))[0]
    metric = first.summary.get("metric", "psnr")
    if targets is None:
        targets = [float(h["target"]) for h in first.summary.get("time_to_targets") or []]
    if quality is None:
        quality = targets[len(targets) // 2] if targets else (30.0 if metric == "psnr" else 0.9)
    unit = "dB" if metric == "psnr" else metric
    per_signal = {}
    for name, models in signals.items():
        recs = [rec for m, runs in models.items() for rec in _rung_records(m, runs, targets)]
        _mark(recs)
        per_signal[name] = recs
    summary = per_signal[next(iter(per_signal))] if len(per_signal) == 1 else _across(per_signal)
    if len(per_signal) > 1:
        _mark(summary)
    return {"root": str(root), "metric": metric, "unit": unit, "quality": quality,
            "described": _described(root, first), "eval_every": _eval_every(first),
            "seeds": sorted({s for recs in per_signal.values() for r in recs
                             for s in r["seeds"] if s is not None}),
            "targets": targets, "shown": f"{metric} of the float output (psnr_8bit beside it)",
            "signals": list(per_signal), "per_signal": per_signal, "summary": summary,
            "answers": answers(summary, quality, unit),
            "machine": first.machine, "budget": _budget(first)}


def _described(root: Path, run: Run) -> str:
    """The signals in words: the data module, file and crop of each (from ``bench.json``),
    else the first run's recorded data description."""
    try:
        sigs = json.loads((root / "bench.json").read_text())["plan"]["signals"]
        over = json.loads((root / "bench.json").read_text()).get("overrides") or []
    except (OSError, ValueError, KeyError, TypeError):
        return str(run.summary.get("data_description") or run.data)
    shared = " ".join(o for o in over if o.startswith("data."))
    return f"{len(sigs)} signal(s): " + "; ".join(sigs) + (f" (each with {shared})" if shared
                                                           else "")


def _eval_every(run: Run) -> int | None:
    every = (run.config.get("task") or {}).get("eval_every")
    return int(every) if every is not None else None


def _budget(run: Run) -> dict:
    s = run.summary
    steps = (run.config.get("task") or {}).get("steps")
    return {"max_time": s.get("max_time"), "steps": steps, "max_epochs": s.get("max_epochs")}


def markdown(result: dict, figure: str | None = None) -> str:
    unit, metric = result["unit"], result["metric"]
    b = result["budget"]
    bound = (f"{b['max_time']:g} s of training (evaluations excluded)" if b["max_time"]
             else f"{b['steps']} steps")
    every = result.get("eval_every")
    evals = (f"evaluated every {every} steps and at the end"
             if every and every < _most_steps(result)
             else "evaluated at the end only (times to a target are then upper bounds, marked ≤)")
    lines = [f"# Quality-cost frontier: {', '.join(result['signals'])}", "",
             f"Signals: {result.get('described') or ', '.join(result['signals'])}; "
             f"seeds: {', '.join(map(str, result.get('seeds') or [])) or '—'}.", "",
             f"Budget per model: {bound}, {evals}; machine: {result['machine']}. Quality: "
             f"{result['shown']}. Non-dominated on all costs: **bold**; a cost's column is "
             f"starred (*) for the models non-dominated on that cost alone.", "",
             "Costs: *MACs (paper)* is each model's paper convention (the measured matmul "
             "MACs where a model has none, marked †); *matmul MACs* are measured on a full "
             "render (matrix products only); *FLOPs* count every op class of one render by "
             f"the rule {_rule(result)} (docs/cost-rule.md). Peak RSS differences within "
             f"{MEMORY_BAND[1]:g} MiB or {MEMORY_BAND[0]:.0%} are not ranked.", ""]
    own = sorted({r["family"] for r in result["summary"] if r.get("own_size")})
    if own:
        lines += [f"Benched at their own size (no size knob declared, or the knob does not "
                  f"move this count): {', '.join(own)}.", ""]
    lines += [f"- {a}" for a in result["answers"]] + [""]
    if figure:
        lines += [f"![frontier]({figure})", ""]
    sections = [("summary" if len(result["signals"]) > 1 else result["signals"][0],
                 result["summary"])]
    if len(result["signals"]) > 1:
        sections += list(result["per_signal"].items())
    for title, recs in sections:
        lines += [f"## {title}" + (" (mean ± std over signals)" if title == "summary" else ""),
                  ""]
        lines += _table(recs, metric, unit, result["targets"]) + [""]
    return "\n".join(lines)


def _rule(result: dict) -> str:
    rules = sorted({r.get("cost_rule") for r in result["summary"] if r.get("cost_rule")})
    return ", ".join(rules) or "—"


def _table(recs: list[dict], metric: str, unit: str, targets: list[float]) -> list[str]:
    head = ["model", f"{metric} ({unit})", "psnr_8bit", *(f"{lab}{' (' + u + ')' if u else ''}"
                                                          for _, lab, u in COSTS),
            "steps", "stopped by", *(f"s to {t:g}" for t in targets)]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    def order(r):  # a ladder's rungs together, by budget; else best quality first
        if r.get("budget"):
            return (0, r["family"], float(r["budget"].split("=")[1]), 0.0)
        return (1, "", 0.0, -(r["quality"]["mean"] or float("-inf")))

    for r in sorted(recs, key=order):
        name = f"**{r['model']}**" if r["frontier"] else r["model"]
        cells = [name, fmt_mean_std(r["quality"]["mean"], r["quality"]["std"],
                                    2 if metric == "psnr" else 4),
                 fmt_mean_std(r["psnr_8bit"]["mean"], r["psnr_8bit"]["std"])]
        for key, _, _ in COSTS:
            star = "*" if key in r["non_dominated_on"] else ""
            dagger = "†" if key == "macs" and r.get("macs_source") == "measured" else ""
            cells.append(_num(r[key]["mean"]) + dagger + star)
        cells += [_num(r["steps"]["mean"]), ",".join(r["stopped_by"])]
        for t in targets:
            hit = r["time_to"][str(t)]
            bound = "≤ " if r.get("time_bound") else ""
            cells.append(bound + _num(hit["mean"]) if hit["mean"] is not None
                         else f"— ({hit['reached']}/{hit['of']})")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _most_steps(result: dict) -> float:
    """The most steps any model trained (a time budget plans an unbounded step count)."""
    return max((r["steps"]["mean"] or 0 for r in result["summary"]), default=0)


def _figure_note(result: dict) -> str:
    b, every = result["budget"], result.get("eval_every")
    bound = f"{b['max_time']:g} s" if b["max_time"] else f"{b['steps']} steps"
    ev = (f"eval every {every} steps" if every and every < _most_steps(result)
          else "final evaluation only")
    n = len(result["signals"])
    return (f"{bound} per run, {ev}; mean over {n} signal(s) and seeds "
            f"{', '.join(map(str, result.get('seeds') or []))}" + (", band ± std over signals"
                                                                   if n > 1 else ""))


def write_report(root: Path, quality: float | None = None,
                 targets: list[float] | None = None) -> dict:
    """``frontier.json``, ``frontier.md`` and ``frontier.png`` in ``root`` (with several
    signals also ``frontier-<signal>.json``); returns the result with the files written."""
    root = Path(root)
    result = frontier(root, quality, targets)
    files = []
    png = frontier_png(result["summary"], result["metric"], result["unit"],
                       result.get("described") or ", ".join(result["signals"]),
                       note=_figure_note(result))
    if png:
        atomic_write_bytes(root / "frontier.png", png)
        files.append(root / "frontier.png")
    atomic_write_json(root / "frontier.json", result)
    atomic_write_text(root / "frontier.md", markdown(result, "frontier.png" if png else None)
                      + "\n" + family_tables(_signals(root)))
    files += [root / "frontier.json", root / "frontier.md"]
    if len(result["signals"]) > 1:
        for name, recs in result["per_signal"].items():
            path = root / f"frontier-{name}.json"
            atomic_write_text(path, json.dumps({**result, "signals": [name], "summary": recs,
                                                "per_signal": {name: recs}}, indent=1))
            files.append(path)
    result["files"] = [str(f) for f in files]
    return result
