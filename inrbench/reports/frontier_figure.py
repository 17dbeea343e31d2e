"""The frontier figure: quality against each cost, one panel per cost in a grid about 1400 px
wide, text of 10 pt or more. Each family is a curve over its ladder (one point per budget: the
mean over signals, a band of ± the std over signals), a family at one size a single marker; the
dashed black staircase is the non-dominated envelope over every point on that cost. A family
keeps one colour and marker in every bench: both come from a hash of its name, never from the
order of the records."""

from __future__ import annotations

import hashlib
import math
import textwrap

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import LogFormatterSciNotation, LogLocator, NullFormatter  # noqa: E402

from inrbench.reports.figures import _family, _png  # noqa: E402

#: cost axes: (record key, label, unit); each label says which count it shows
COSTS = (("macs", "MACs / sample, paper convention", ""),
         ("macs_measured", "matmul MACs / sample, measured", ""),
         ("flops", "FLOPs / sample, inrbench-flops-1", ""),
         ("params", "parameters", ""), ("latency_ms", "render latency", "ms"),
         ("peak_rss_mb", "peak RSS (training)", "MiB"), ("train_s", "training time", "s"))
#: markers families draw with (the colour and the marker are hashed separately)
MARKERS = "osD^vP*Xh<>p"
#: a colour-blind-safe-ish palette of distinct hues (tab10 without grey)
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31")
#: colours of families that are not built in (plugins), apart from the built-ins' own
OTHERS = ("#000000", "#7f7f7f", "#aec7e8", "#ff9896", "#98df8a", "#c5b0d5", "#f7b6d2",
          "#dbdb8d", "#9edae5", "#c49c94")
#: the memory axis is never zoomed below this span (MiB): a few MiB of allocator noise over a
#: process baseline would otherwise look like a ranking
MEMORY_SPAN_MB = 64.0


#: the built-in families' fixed styles (distinct pairs); any other family is hashed
BUILTIN = {f: (PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]) for i, f in enumerate(
    ("ASMR", "SIREN", "FFN", "Instant-NGP", "KiloNeRF", "Grid", "GaussianImage", "WIRE", "MFN",
     "LoE", "DINER"))}


def label(model: str) -> str:
    """A family's display name: the built-in's (``ASMR``), a plugin's class name
    (``finer_inr:FINER`` -> ``FINER``), else the registered name."""
    name = _family(model)
    return name.rsplit(":", 1)[-1] if ":" in name else name


def style(family: str) -> tuple[str, str]:
    """The colour and marker of ``family`` (a :func:`label`), the same in every bench."""
    if family in BUILTIN:
        return BUILTIN[family]
    h = int(hashlib.sha1(family.encode()).hexdigest(), 16)
    return OTHERS[h % len(OTHERS)], MARKERS[(h // len(OTHERS)) % len(MARKERS)]


def _envelope(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The non-dominated points (more quality at no more cost), by cost."""
    front, best = [], -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _log_axis(ax, xs: list[float]) -> None:
    ax.set_xscale("log")
    lo, hi = min(xs), max(xs)
    subs = (1.0,) if hi / lo > 1e3 else (1.0, 2.0, 5.0)  # labelled ticks, never one lone decade
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_major_formatter(LogFormatterSciNotation(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo / 1.4, hi * 1.4)


def frontier_png(records: list[dict], metric: str, unit: str, title: str,
                 note: str = "") -> bytes | None:
    """PNG of ``records`` (:func:`inrbench.reports.frontier.model_record` entries, with
    ``family`` when they are rungs of a ladder), or None when no model has a quality."""
    recs = [r for r in records if r["quality"]["mean"] is not None]
    if not recs:
        return None
    families: dict[str, list[dict]] = {}
    for r in recs:
        families.setdefault(r.get("family") or r["model"], []).append(r)
    costs = [c for c in COSTS if any((r[c[0]] or {}).get("mean") for r in recs)]
    cols = 4
    rows = math.ceil((len(costs) + 1) / cols)
    with plt.rc_context({"font.size": 11, "axes.titlesize": 11, "axes.labelsize": 11,
                         "xtick.labelsize": 10, "ytick.labelsize": 10, "legend.fontsize": 11}):
        fig, axes = plt.subplots(rows, cols, figsize=(12.7, 3.6 * rows), sharey=True,
                                 squeeze=False)
        flat = list(axes.flat)
        for ax, (key, axis_label, cost_unit) in zip(flat, costs):
            allpts = []
            for fam, rs in families.items():
                color, marker = style(label(fam))
                pts = sorted((r[key]["mean"], r["quality"]["mean"], r["quality"]["std"] or 0.0)
                             for r in rs if r[key]["mean"] is not None and r[key]["mean"] > 0)
                if not pts:
                    continue
                xs, ys, sd = zip(*pts)
                ax.plot(xs, ys, marker=marker, color=color, ms=7, lw=1.6,
                        mfc="white" if all(r.get("own_size") for r in rs) else color)
                if len(pts) > 1 and any(sd):
                    ax.fill_between(xs, [y - s for y, s in zip(ys, sd)],
                                    [y + s for y, s in zip(ys, sd)], color=color, alpha=0.15,
                                    lw=0)
                allpts += list(zip(xs, ys))
            front = _envelope(allpts)
            if len(front) > 1:
                ax.step([p[0] for p in front], [p[1] for p in front], where="post",
                        color="black", lw=1.0, ls="--")
            if allpts:
                xs = [p[0] for p in allpts]
                if key == "peak_rss_mb" or max(xs) <= 8 * min(xs):
                    mid, span = (max(xs) + min(xs)) / 2, max(max(xs) - min(xs), MEMORY_SPAN_MB
                                                           if key == "peak_rss_mb" else 0)
                    if span > 0:
                        ax.set_xlim(mid - 0.6 * span, mid + 0.6 * span)
                else:
                    _log_axis(ax, xs)
            ax.set_xlabel(f"{axis_label}{' (' + cost_unit + ')' if cost_unit else ''}")
            ax.grid(True, which="major", alpha=0.3)
        for ax in flat[::cols]:
            ax.set_ylabel(f"{metric} ({unit})" if unit != metric else metric)
        for ax in flat[len(costs):]:
            ax.axis("off")
        handles = [Line2D([], [], color=style(label(f))[0], marker=style(label(f))[1],
                          ms=7, lw=1.6, label=label(f)
                          + (" (own size)" if all(r.get("own_size") for r in rs) else ""))
                   for f, rs in sorted(families.items(), key=lambda kv: label(kv[0]))]
        handles.append(Line2D([], [], color="black", ls="--", lw=1.0,
                              label="non-dominated envelope"))
        flat[-1].legend(handles=handles, loc="center", frameon=False,
                        title="family (curve: its ladder;\nband: ± std over signals)")
        fig.suptitle(textwrap.fill(f"Quality-cost frontier: {title}", 150), fontsize=12)
        if note:
            fig.text(0.5, 0.005, note, ha="center", va="bottom", fontsize=10)
        fig.tight_layout(rect=(0, 0.03, 1, 0.97))
        return _png(fig)
