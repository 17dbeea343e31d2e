"""Statistics a reviewer asks of a comparison: Bjøntegaard deltas between two quality-cost
curves, and paired statistics of two families over the same signals.

Pure functions of numbers (numpy, scipy and the ``bjontegaard`` package); no records are read
here, so the frontier, the rate-distortion section and ``inrbench codecs`` share one core.

**Bjøntegaard deltas** (G. Bjøntegaard, "Calculation of average PSNR differences between
RD-curves", VCEG-M33, 2001): each curve's quality is interpolated as a function of log10(cost)
and the two are integrated over the cost range they share: the mean gap is ΔQ at equal cost
(BD-PSNR when quality is PSNR). Swapping the axes (log10 cost as a function of quality, over
the quality range they share) gives the mean log-cost gap, reported as a percentage,
``(10**gap - 1) * 100``: Δcost at equal quality (BD-rate; negative = cheaper). The
interpolation is piecewise cubic Hermite (``pchip``, as the JCT-VC / JVET common-test-condition
sheets, JCTVC-L1100 and JVET-T2010) through the ``bjontegaard`` package (FAU-LMS, BSD-3);
VCEG-M33's original third-order polynomial fit (``cubic``) and Akima are selectable.

**Paired statistics**: per signal the seeds are averaged first, so a signal counts once; the
differences ``a - b`` over the signals both families ran on give wins (k of n), the mean
difference with a two-sided 95% Student-t interval, and a two-sided Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``: zero differences dropped, exact null distribution for n <= 50
without ties, exhaustive permutations with ties up to n = 13, else the normal approximation).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import scipy
from scipy import stats as sstats

#: interpolations the ``bjontegaard`` package offers; pchip is the standards bodies' choice
INTERPOLATIONS = ("pchip", "akima", "cubic")
#: points per curve VCEG-M33's cubic fit needs; the frontier's ladders are held to it too
MIN_POINTS = 4


def curve_points(curve: Iterable[tuple[float, float]]) -> dict:
    """The points of one (cost, quality) curve a Bjøntegaard delta may use: finite, cost > 0,
    sorted by cost, and only those on the curve's upper envelope (each better than every
    cheaper one). A point whose quality does not rise with cost (a bigger model that fits
    worse, a coarser file that decodes better) is dropped and listed, because the integrals
    need quality and cost both strictly increasing."""
    pts, bad = [], []
    for c, q in curve:
        c, q = float(c), float(q)
        (pts if math.isfinite(c) and math.isfinite(q) and c > 0 else bad).append((c, q))
    pts.sort(key=lambda p: (p[0], -p[1]))
    kept, dropped = [], []
    for c, q in pts:
        if kept and (q <= kept[-1][1] or c == kept[-1][0]):
            dropped.append((c, q))
        else:
            kept.append((c, q))
    return {"points": kept, "dropped": dropped, "invalid": bad}


def _overlap(lo_a: float, hi_a: float, lo_b: float, hi_b: float) -> tuple[float, float] | None:
    lo, hi = max(lo_a, lo_b), min(hi_a, hi_b)
    return (lo, hi) if hi > lo else None


def bd_delta(curve_a: Iterable[tuple[float, float]], curve_b: Iterable[tuple[float, float]],
             interpolation: str = "pchip", min_points: int = MIN_POINTS) -> dict:
    """Bjøntegaard deltas of curve ``b`` (the test) against curve ``a`` (the anchor), each a
    sequence of (cost, quality) points in any order.

    Returns a dict: ``bd_quality`` (mean quality of b minus a at equal cost, over the log-cost
    range both cover; dB for PSNR), ``bd_rate`` (mean cost of b relative to a at equal quality,
    over the quality range both cover, in %: -50 means half the cost), each ``None`` with a
    ``reason_quality`` / ``reason_rate`` when it cannot be computed; ``interpolation``;
    ``cost_range`` / ``quality_range`` (the integration intervals, ``None`` without overlap);
    ``overlap_cost`` / ``overlap_quality`` (the shared interval's share of the union, 0..1);
    ``points_a`` / ``points_b`` (the points used) and ``dropped_a`` / ``dropped_b`` (points off
    the upper envelope or not finite, see :func:`curve_points`).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation {interpolation!r}: choose from {INTERPOLATIONS}")
    a, b = curve_points(curve_a), curve_points(curve_b)
    out = {"bd_quality": None, "bd_rate": None, "interpolation": interpolation,
           "cost_axis": "log10", "min_points": min_points,
           "points_a": a["points"], "points_b": b["points"],
           "dropped_a": a["dropped"] + a["invalid"], "dropped_b": b["dropped"] + b["invalid"],
           "cost_range": None, "quality_range": None, "overlap_cost": 0.0,
           "overlap_quality": 0.0, "reason_quality": None, "reason_rate": None}
    short = [f"{name} has {len(c['points'])} usable point(s)" for name, c in (("a", a), ("b", b))
             if len(c["points"]) < max(min_points, 2)]
    if short:
        reason = "; ".join(short) + f", a Bjøntegaard delta needs {max(min_points, 2)}"
        out["reason_quality"] = out["reason_rate"] = reason
        return out
    ca, qa = (np.array(v) for v in zip(*a["points"]))
    cb, qb = (np.array(v) for v in zip(*b["points"]))
    la, lb = np.log10(ca), np.log10(cb)
    cost = _overlap(la[0], la[-1], lb[0], lb[-1])
    qual = _overlap(qa[0], qa[-1], qb[0], qb[-1])
    if cost is None:
        out["reason_quality"] = "the curves share no cost range"
    else:
        out["cost_range"] = [10 ** cost[0], 10 ** cost[1]]
        out["overlap_cost"] = (cost[1] - cost[0]) / (max(la[-1], lb[-1]) - min(la[0], lb[0]))
        out["bd_quality"] = _bd(la, qa, lb, qb, interpolation)
    if qual is None:
        out["reason_rate"] = "the curves share no quality range"
    else:
        out["quality_range"] = list(qual)
        out["overlap_quality"] = (qual[1] - qual[0]) / (max(qa[-1], qb[-1]) - min(qa[0], qb[0]))
        out["bd_rate"] = (10 ** _bd(qa, la, qb, lb, interpolation) - 1) * 100
    return out


def _bd(xa, ya, xb, yb, interpolation: str) -> float:
    """Mean of f_b - f_a over the shared x range (``bjontegaard.bd_linear``)."""
    import bjontegaard

    with warnings.catch_warnings():  # overlap is checked and reported by the caller
        warnings.simplefilter("ignore")
        return float(bjontegaard.bd_linear(xa, ya, xb, yb, interpolation,
                                           require_matching_points=False, min_overlap=0))


def signal_means(rows: Iterable[tuple[str, object, float | None]]) -> dict[str, dict]:
    """``(signal, seed, value)`` rows -> ``{signal: {"mean", "seeds"}}``: the mean over each
    signal's seeds (missing or non-finite values left out), so every signal counts once in
    :func:`paired` however many seeds it ran."""
    vals: dict[str, list[float]] = {}
    for signal, _seed, value in rows:
        if value is not None and math.isfinite(float(value)):
            vals.setdefault(str(signal), []).append(float(value))
    return {s: {"mean": sum(v) / len(v), "seeds": len(v)} for s, v in vals.items()}


def _mean_of(v) -> float:
    return float(v["mean"] if isinstance(v, Mapping) else v)


def _seeds(by_signal: Mapping, keys: list[str]) -> list[int]:
    return sorted({int(by_signal[k]["seeds"]) if isinstance(by_signal[k], Mapping) else 1
                   for k in keys})


def paired(a_by_signal: Mapping, b_by_signal: Mapping, confidence: float = 0.95) -> dict:
    """Paired comparison of two families over the signals both ran on: per-signal values
    (a number, or ``{"mean", "seeds"}`` from :func:`signal_means`), difference ``a - b``.

    Returns ``n`` (signals paired), ``seeds_a`` / ``seeds_b`` (the seed counts per signal
    seen), ``wins`` / ``losses`` / ``ties`` of a (k of n), ``mean_diff``, ``ci`` ([lo, hi],
    Student t with n - 1 degrees of freedom; ``None`` for n < 2), ``interval``,
    ``p_value`` and ``test`` (two-sided Wilcoxon signed-rank; ``None`` with ``reason`` for
    n < 2 or when every difference is zero), and ``unpaired`` (signals only one side has).
    """
    keys = sorted(set(a_by_signal) & set(b_by_signal))
    diffs = np.array([_mean_of(a_by_signal[k]) - _mean_of(b_by_signal[k]) for k in keys])
    n = len(keys)
    out = {"n": n, "signals": keys, "seeds_a": _seeds(a_by_signal, keys),
           "seeds_b": _seeds(b_by_signal, keys), "diffs": diffs.tolist(),
           "wins": int((diffs > 0).sum()), "losses": int((diffs < 0).sum()),
           "ties": int((diffs == 0).sum()), "mean_diff": float(diffs.mean()) if n else None,
           "ci": None, "confidence": confidence,
           "interval": f"two-sided {confidence:.0%} Student t, n - 1 degrees of freedom",
           "p_value": None, "test": None, "reason": None,
           "unpaired": sorted(set(a_by_signal) ^ set(b_by_signal))}
    if n < 2:
        out["reason"] = f"{n} paired signal(s): an interval and a test need at least 2"
        return out
    half = (sstats.t.ppf(0.5 + confidence / 2, n - 1) * diffs.std(ddof=1) / math.sqrt(n))
    out["ci"] = [out["mean_diff"] - float(half), out["mean_diff"] + float(half)]
    nonzero = diffs[diffs != 0]
    if not len(nonzero):
        out["reason"] = "every difference is zero: the signed-rank test has nothing to rank"
        return out
    ties = len(np.unique(np.abs(nonzero))) < len(nonzero) or len(nonzero) < n
    if len(nonzero) <= 50 and not ties:
        how = "exact null distribution"
    elif ties and len(nonzero) <= 13:
        how = "exhaustive permutations (ties or zeros)"
    else:
        how = "normal approximation"
    # method="auto": how the p-value is found is scipy's choice; the label follows its rule
    # (scipy 1.17) and the version is recorded with it
    res = sstats.wilcoxon(diffs, zero_method="wilcox", alternative="two-sided")
    out["p_value"] = float(res.pvalue)
    out["test"] = (f"Wilcoxon signed-rank, two-sided, zero differences dropped "
                   f"({len(nonzero)} ranked), {how} (scipy {scipy.__version__})")
    return out


def fmt_p(p: float | None) -> str:
    """A p-value for a table: three significant digits, ``< 0.001`` below that."""
    if p is None:
        return "—"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{x:+.1f}%"


__all__ = ["INTERPOLATIONS", "MIN_POINTS", "bd_delta", "curve_points", "fmt_p", "fmt_pct",
           "paired", "signal_means"]
