"""Bjøntegaard deltas of compressed-INR curves against the classic codecs (``inrbench report``'s
rate-distortion section and ``inrbench codecs``).

A curve is made of ``.inrb`` files of one model on one signal, rate = file bits / (H·W),
quality = PSNR of the decoded rendering rounded to 8 bits (the codecs' rule): per model, every
file it has (any method, bit width or run) on the curve's upper envelope, i.e. the best file
at each rate; and per model and method (PTQ, QAT, none) when that alone has enough points.
Each codec's sweep is the anchor. Both deltas are unchanged by the rate's divisor (bits /
(H·W) or ANI's bits / (H·W·3)), so one table serves both conventions.
"""

from __future__ import annotations

from pathlib import Path

from inrbench.reports.runs import SAMPLING_KEYS, Run, find_runs
from inrbench.reports.sections import Cell, Section
from inrbench.reports.stats import MIN_POINTS, bd_delta, curve_points, fmt_pct


def _quality(rec: dict) -> float:
    return float(rec.get("psnr_8bit", rec["psnr"]))


def inr_curves(records: list[dict], min_points: int = MIN_POINTS) -> list[dict]:
    """``{"name", "points", "files"}`` per model (all its files) and per model and method
    with at least ``min_points`` files on its envelope."""
    groups: dict[tuple[str, str | None], list[dict]] = {}
    for rec in records:
        groups.setdefault((rec["model"], None), []).append(rec)
        groups.setdefault((rec["model"], rec["method"]), []).append(rec)
    out = []
    for (model, method), recs in sorted(groups.items(), key=lambda kv: (kv[0][0],
                                                                         kv[0][1] or "")):
        kept = set(curve_points((r["bpp"], _quality(r)) for r in recs)["points"])
        if method is not None and len(kept) < min_points:
            continue
        files = [r for r in recs if (float(r["bpp"]), _quality(r)) in kept]
        out.append({"name": f"{model} ({'all files' if method is None else method.upper()})",
                    "points": [(r["bpp"], _quality(r)) for r in recs],
                    "files": [f"{_tag(r)}" for r in sorted(files, key=lambda r: r["bpp"])]})
    return out


def _tag(rec: dict) -> str:
    tag = "fp32" if rec["method"] == "none" else f"{rec['method'].upper()}{rec['bits']}"
    return f"{rec['_run'].path.name}/{tag}" if "_run" in rec else tag


def codec_deltas(records: list[dict], codecs: list[dict], interpolation: str = "pchip",
                 min_points: int = MIN_POINTS) -> list[dict]:
    """One row per INR curve and codec: the curve's BD-rate and BD-PSNR against the codec
    (:func:`inrbench.reports.stats.bd_delta`, the codec as anchor)."""
    rows = []
    for curve in inr_curves(records, min_points):
        for codec in sorted({c["codec"] for c in codecs}):
            pts = [(c["bpp"], c["psnr"]) for c in codecs if c["codec"] == codec]
            rows.append({"curve": curve["name"], "files": curve["files"], "codec": codec,
                         **bd_delta(pts, curve["points"], interpolation, min_points)})
    return rows


def _cells(row: dict) -> list[str]:
    psnr = "—" if row["bd_quality"] is None else f"{row['bd_quality']:+.2f}"
    why = "; ".join(dict.fromkeys(r for r in (row["reason_rate"], row["reason_quality"]) if r))
    span = ("—" if row["quality_range"] is None
            else f"{row['quality_range'][0]:.2f}–{row['quality_range'][1]:.2f} "
                 f"({row['overlap_quality']:.0%})")
    bpp = ("—" if row["cost_range"] is None
           else f"{row['cost_range'][0]:.3g}–{row['cost_range'][1]:.3g} "
                f"({row['overlap_cost']:.0%})")
    return [row["curve"], ", ".join(row["files"]), row["codec"], fmt_pct(row["bd_rate"]), psnr,
            span, bpp, why or "—"]


HEAD = ["INR curve", "its files", "against", "BD-rate", "BD-PSNR (dB)",
        "shared dB (share of both)", "shared bpp (share, log)", "not computed because"]


def explanation(interpolation: str = "pchip") -> str:
    return (f"Bjøntegaard deltas (VCEG-M33, `bjontegaard` package, {interpolation} "
            f"interpolation on log10 bpp) of each INR curve against each codec's sweep on the "
            f"same image: BD-rate is the INR's mean bit cost relative to the codec at equal "
            f"PSNR over the PSNR range both reach (negative = fewer bits), BD-PSNR its mean "
            f"PSNR gain at equal bpp over the bpp range both reach. A curve is the upper "
            f"envelope of a model's files (the best file at each rate; a file no better than "
            f"a smaller one is left off); it needs {MIN_POINTS} points. PSNR is the 8-bit "
            f"decoded image for both. The shared ranges say how much of the curves a delta "
            f"rests on: one over a sliver of them is a statement about that sliver only.")


def deltas_section(records: list[dict], codecs: list[dict]) -> Section | None:
    """The report's section, or ``None`` without both INR files and codec points."""
    if not records or not codecs:
        return None
    sec = Section("Bjøntegaard deltas against the codecs")
    sec.paragraphs.append(explanation())
    sec.table = (HEAD, [[Cell(c) for c in _cells(r)] for r in codec_deltas(records, codecs)])
    return sec


def markdown(rows: list[dict]) -> list[str]:
    lines = ["| " + " | ".join(HEAD) + " |", "|" + "---|" * len(HEAD)]
    return lines + ["| " + " | ".join(_cells(r)) + " |" for r in rows]


def _signal(run: Run) -> tuple:
    """What was fitted: the data's description, shape and file hashes as recorded, else the
    data config without how it was sampled or fetched."""
    s = run.summary
    if s.get("data_description"):
        files = tuple(sorted(str(f.get("sha256")) for f in s.get("data_files") or []))
        return (s.get("data"), s["data_description"], str(s.get("signal_shape")), files)
    data = run.config.get("data") or {}
    skip = (*SAMPLING_KEYS, "download", "fallback")
    return tuple(sorted((k, str(v)) for k, v in data.items() if k not in skip))


def runs_beside(run_dir: Path) -> list[Run]:
    """``run_dir`` and the runs beside it (its parent folder) that fitted the same signal:
    the runs whose compressed files ``inrbench codecs RUN_DIR`` compares with its sweep."""
    run_dir = Path(run_dir)
    if not (run_dir / "metrics.json").is_file():
        return []
    runs = find_runs(run_dir.parent)
    mine = next((r for r in runs if r.path.resolve() == run_dir.resolve()), None)
    return [] if mine is None else [r for r in runs if _signal(r) == _signal(mine)]
