"""The paper's curves, drawn with matplotlib (Agg) from run results and profiling rows.

Every function returns PNG bytes (or None when there is nothing to draw) and reads only what
it is given: runs (their ``metrics.json``, ``metrics.csv`` and ``reconstruction.png``) or
profiling results (:func:`inrbench.experiments.profile_experiment`, computed from configs,
never trained).
"""

from __future__ import annotations

import io
import math
from collections import OrderedDict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from inrbench.reports.runs import Run, mean_std  # noqa: E402

FAMILY_LABEL = {"siren": "SIREN", "asmr": "ASMR", "asmr_big": "ASMR", "kilonerf": "KiloNeRF",
                "loe": "LoE", "ngp": "Instant-NGP", "ffn": "FFN", "mfn": "MFN", "wire": "WIRE",
                "diner": "DINER"}


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _family(name: str) -> str:
    return FAMILY_LABEL.get(name, name)


def figure2(profiles: list[dict]) -> bytes | None:
    """MACs per sample against #params over depth (log-log), one line per model family:
    ours (computed by profiling each row's config) filled, the paper's printed Table 7
    figures hollow."""
    series: OrderedDict[str, list[dict]] = OrderedDict()
    for p in profiles:
        if p.get("params") is not None and p.get("macs") is not None:
            series.setdefault(_family(p["model"]), []).append(p)
    if not series:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for i, (family, rows) in enumerate(series.items()):
        rows = sorted(rows, key=lambda r: r["params"])
        color = f"C{i}"
        ax.plot([r["params"] for r in rows], [r["macs"] for r in rows], "o-", color=color,
                label=f"{family} (ours)")
        paper = [(r["paper_params"], r["paper_macs"]) for r in rows
                 if r.get("paper_params") is not None and r.get("paper_macs") is not None]
        if paper:
            unit_p = 1e3 if rows[0]["units"].get("params") == "K" else 1
            unit_m = 1e3 if rows[0]["units"].get("macs") == "K" else 1
            ax.plot([a * unit_p for a, _ in paper], [b * unit_m for _, b in paper], "s",
                    mfc="none", color=color, ms=9, label=f"{family} (paper, Table 7)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("#params")
    ax.set_ylabel("MACs per sample")
    ax.set_title("Figure 2: MACs vs #params over depth (profiled, not trained)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    return _png(fig)


def figure3(points: list[dict]) -> bytes | None:
    """PSNR against MACs per sample; marker area proportional to #params. ``points``:
    dicts with family, label, macs, psnr, params, steps (one per row that has runs)."""
    points = [p for p in points if None not in (p.get("macs"), p.get("psnr"), p.get("params"))]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    biggest = max(p["params"] for p in points)
    families: OrderedDict[str, list[dict]] = OrderedDict()
    for p in points:
        families.setdefault(p["family"], []).append(p)
    for i, (family, pts) in enumerate(families.items()):
        pts = sorted(pts, key=lambda p: p["macs"])
        color = f"C{i}"
        ax.plot([p["macs"] for p in pts], [p["psnr"] for p in pts], "-", color=color, alpha=0.5)
        ax.scatter([p["macs"] for p in pts], [p["psnr"] for p in pts],
                   s=[600 * p["params"] / biggest for p in pts], color=color, alpha=0.55,
                   edgecolors="k", linewidths=0.5, label=family)
        for p in pts:
            ax.annotate(f"{p['label']}\n{p['steps']:,} steps", (p["macs"], p["psnr"]),
                        fontsize=6, xytext=(4, 4), textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.margins(0.2)
    ax.set_xlabel("MACs per sample (log)")
    ax.set_ylabel("best PSNR (dB)")
    ax.set_title("Figure 3: MAC-PSNR (marker area ∝ #params; our runs)")
    ax.grid(True, which="both", alpha=0.3)
    legend = ax.legend(fontsize=7)
    for handle in legend.legend_handles:
        handle.set_sizes([40])
    return _png(fig)


def _psnr_curve(run: Run):
    """(steps, psnr) of one run: the training PSNR of full-signal steps, else the
    evaluations' PSNR."""
    df = run.curve()
    for col in ("psnr", "val_psnr"):
        if col in df.columns and "step" in df.columns:
            d = df[["step", col]].dropna()
            if len(d):
                return d["step"].to_numpy(), d[col].to_numpy()
    return None


def training_curves(groups: list[tuple[str, list[Run]]], title: str) -> bytes | None:
    """PSNR vs step, one line per model (row); seeds averaged, ± std shaded."""
    curves = []
    for label, runs in groups:
        per_seed = [c for c in (_psnr_curve(r) for r in runs) if c is not None]
        if per_seed:
            curves.append((label, per_seed))
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (label, per_seed) in enumerate(curves):
        n = min(len(s) for s, _ in per_seed)
        steps = per_seed[0][0][:n]
        ys = np.stack([y[:n] for _, y in per_seed])
        mean = ys.mean(axis=0)
        suffix = f" ({len(per_seed)} seeds)" if len(per_seed) > 1 else ""
        ax.plot(steps, mean, color=f"C{i}", lw=1.2, label=f"{label}{suffix}")
        if len(per_seed) > 1:
            std = ys.std(axis=0, ddof=1)
            ax.fill_between(steps, mean - std, mean + std, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)


def reconstruction_grid(items: list[tuple[str, Run]], title: str,
                        zoom: float = 0.25) -> bytes | None:
    """The saved reconstructions side by side (Figure 4/6/7 style): the whole image on top,
    an enlarged centre crop (``zoom`` of each side) below, labelled with PSNR and steps."""
    from PIL import Image

    tiles = []
    for label, run in items:
        path = run.path / "reconstruction.png"
        if path.is_file():
            with Image.open(path) as im:
                tiles.append((label, run, np.asarray(im.convert("RGB"))))
    if not tiles:
        return None
    n = len(tiles)
    fig, axes = plt.subplots(2, n, figsize=(2.6 * n, 5.6), squeeze=False)
    for j, (label, run, img) in enumerate(tiles):
        h, w = img.shape[:2]
        ch, cw = max(1, int(h * zoom)), max(1, int(w * zoom))
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        axes[0, j].imshow(img, interpolation="nearest")
        axes[0, j].add_patch(plt.Rectangle((x0, y0), cw, ch, fill=False, ec="red", lw=1))
        psnr = run.value("best_psnr")
        head = f"{label}\n{psnr:.2f} dB" if psnr is not None else label
        axes[0, j].set_title(f"{head}, {run.steps or 0:,} steps", fontsize=8)
        axes[1, j].imshow(img[y0:y0 + ch, x0:x0 + cw], interpolation="nearest")
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=10)
    return _png(fig)


def figure3_points(rows) -> list[dict]:
    """Figure 3's points from matched table rows (see :mod:`inrbench.reports.tables`)."""
    points, seen = [], set()
    for res in rows:
        if not res.runs:
            continue
        key = tuple(sorted(str(r.path) for r in res.runs))
        if key in seen:
            continue
        seen.add(key)
        macs, _, _ = mean_std(list(res.macs_by_run.values())) if res.macs_by_run else (
            mean_std([r.value("macs") for r in res.runs]))
        psnr, _, _ = mean_std([r.value("best_psnr") for r in res.runs])
        params, _, _ = mean_std([r.value("params") for r in res.runs])
        points.append({"family": _family(res.runs[0].model), "label": res.label,
                       "macs": macs, "psnr": psnr, "params": params,
                       "steps": res.runs[0].steps or 0})
    return [p for p in points if p["macs"] is not None and not math.isnan(p["macs"])]
