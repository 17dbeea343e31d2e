"""The frontier figure: quality against each cost (log scale), one panel per cost; models on
that cost's Pareto front filled and joined by a step line, the others hollow."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402

from inrbench.reports.figures import _family, _png, place_labels  # noqa: E402

#: cost axes: (record key, label, unit)
COSTS = (("macs", "MACs / sample", ""), ("latency_ms", "render latency", "ms"),
         ("params", "parameters", ""), ("peak_rss_mb", "peak RSS (training)", "MiB"),
         ("train_s", "training time", "s"))


def frontier_png(records: list[dict], metric: str, unit: str, title: str) -> bytes | None:
    """PNG of ``records`` (:func:`inrbench.reports.frontier.model_record` entries with
    ``non_dominated_on``), or None when no model has a quality."""
    recs = [r for r in records if r["quality"]["mean"] is not None]
    if not recs:
        return None
    colors = {r["model"]: f"C{i % 10}" for i, r in enumerate(recs)}
    fig, axes = plt.subplots(1, len(COSTS), figsize=(3.3 * len(COSTS), 3.4), sharey=True)
    for ax, (key, label, cost_unit) in zip(axes, COSTS):
        have = [r for r in recs if r[key]["mean"] is not None and r[key]["mean"] > 0]
        for r in have:
            front = key in r["non_dominated_on"]
            ax.errorbar(r[key]["mean"], r["quality"]["mean"], yerr=r["quality"]["std"] or 0,
                        fmt="o", ms=7, color=colors[r["model"]],
                        mfc=colors[r["model"]] if front else "white", capsize=2)
        line = sorted((r for r in have if key in r["non_dominated_on"]),
                      key=lambda r: r[key]["mean"])
        if len(line) > 1:
            ax.step([r[key]["mean"] for r in line], [r["quality"]["mean"] for r in line],
                    where="post", color="0.4", lw=0.8, ls="--")
        if have:
            xs = [r[key]["mean"] for r in have]
            if max(xs) > 8 * min(xs):  # log only where the costs span orders of magnitude
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # crowded labels otherwise
            place_labels(ax, [(r[key]["mean"], r["quality"]["mean"]) for r in have],
                         [_family(r["model"]) for r in have], [5.0] * len(have))
        ax.set_xlabel(f"{label}{' (' + cost_unit + ')' if cost_unit else ''}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel(f"{metric} ({unit})" if unit != metric else metric)
    fig.suptitle(f"Quality-cost frontier: {title} (filled: non-dominated on that cost)",
                 fontsize=10)
    fig.tight_layout()
    return _png(fig)
