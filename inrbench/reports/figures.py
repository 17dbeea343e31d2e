"""The paper's curves, drawn with matplotlib (Agg) from run results and profiling rows.

Every function returns PNG bytes (or None when there is nothing to draw) and reads only what
it is given: runs (their ``metrics.json``, ``metrics.csv`` and ``reconstruction.png``),
matched table rows, arrays of images, or profiling results (what the ``profile`` given to
:func:`inrbench.reports.build.make_report` returns, computed from configs, never trained).
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
from PIL import Image  # noqa: E402

from inrbench.reports.runs import Run, mean_std  # noqa: E402
from inrbench.reports.tables import SCALE  # noqa: E402

FAMILY_LABEL = {"siren": "SIREN", "asmr": "ASMR", "asmr_big": "ASMR", "kilonerf": "KiloNeRF",
                "loe": "LoE", "ngp": "Instant-NGP", "ffn": "FFN", "mfn": "MFN", "wire": "WIRE",
                "diner": "DINER", "grid": "Grid", "gaussianimage": "GaussianImage"}


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


def _overlap(a, b) -> float:
    """Area shared by two display-space boxes ``(x0, y0, x1, y1)``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


# label offsets (points) tried in order: close first, then further out in 8 directions
_DIRECTIONS = [(1, 1), (1, -1), (-1, 1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)]
_RADII = [5, 12, 20, 30, 42, 56, 72]


def place_labels(ax, xy: list[tuple[float, float]], texts: list[str], marker_px: list[float],
                 fontsize: float = 6.5) -> list[tuple]:
    """Annotate ``texts`` at data points ``xy`` without overlaps: each label takes the first
    offset (close ones first, 8 directions) whose box meets no placed label, no marker and
    stays inside the axes; a label moved away gets a thin leader line. Returns the labels'
    display boxes ``(x0, y0, x1, y1)`` (the tests check they are disjoint)."""
    fig = ax.figure
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    px_per_pt = fig.dpi / 72.0
    centres = [ax.transData.transform(p) for p in xy]
    markers = [(cx - r, cy - r, cx + r, cy + r) for (cx, cy), r in zip(centres, marker_px)]
    placed: list[tuple] = []
    # the most crowded points choose first
    order = sorted(range(len(xy)), key=lambda i: -sum(
        1 for j in range(len(xy)) if j != i and abs(centres[i][0] - centres[j][0]) < 80
        and abs(centres[i][1] - centres[j][1]) < 40))
    boxes: dict[int, tuple] = {}
    for i in order:
        probe = ax.text(0, 0, texts[i], fontsize=fontsize)
        ext = probe.get_window_extent(renderer)
        probe.remove()
        w, h = ext.width, ext.height
        best = None
        for r in _RADII:
            for dx, dy in _DIRECTIONS:
                ox = centres[i][0] + dx * (r * px_per_pt + marker_px[i])
                oy = centres[i][1] + dy * (r * px_per_pt + marker_px[i])
                x0 = ox if dx > 0 else ox - w if dx < 0 else ox - w / 2
                y0 = oy if dy > 0 else oy - h if dy < 0 else oy - h / 2
                box = (x0, y0, x0 + w, y0 + h)
                cost = sum(_overlap(box, b) for b in placed)
                cost += sum(_overlap(box, m) for j, m in enumerate(markers) if j != i)
                outside = (max(0, frame.x0 - box[0]) + max(0, box[2] - frame.x1)
                           + max(0, frame.y0 - box[1]) + max(0, box[3] - frame.y1))
                cost += outside * h
                if best is None or cost < best[0]:
                    best = (cost, box, dx, dy, r)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, box, dx, dy, r = best
        placed.append(box)
        boxes[i] = box
        ha = "left" if dx > 0 else "right" if dx < 0 else "center"
        va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
        anchor_x = box[0] if dx > 0 else box[2] if dx < 0 else (box[0] + box[2]) / 2
        anchor_y = box[1] if dy > 0 else box[3] if dy < 0 else (box[1] + box[3]) / 2
        # axes fraction, not pixels: the PNG is saved at another dpi and cropped ("tight")
        anchor = ax.transAxes.inverted().transform((anchor_x, anchor_y))
        ax.annotate(texts[i], xy[i], xytext=tuple(anchor), textcoords="axes fraction",
                    fontsize=fontsize, ha=ha, va=va,
                    arrowprops=(dict(arrowstyle="-", lw=0.6, color="0.3", shrinkA=1,
                                     shrinkB=marker_px[i] / px_per_pt)
                                if r > _RADII[0] else None))
    return [boxes[i] for i in range(len(xy))]


def _figure3_axes(points: list[dict], paper: list[dict]):
    """The Figure 3 axes and the labels' display boxes (see :func:`figure3`)."""
    fig, ax = plt.subplots(figsize=(7.2, 5.0))
    everything = points + paper
    biggest = max(p["params"] for p in everything if p.get("params"))
    families: OrderedDict[str, list[dict]] = OrderedDict()
    for p in everything:
        families.setdefault(p["family"], [])
    colors = {f: f"C{i}" for i, f in enumerate(families)}
    xy, texts, radii = [], [], []
    px_per_pt = fig.dpi / 72.0

    def size(p):
        return max(20.0, 600 * (p.get("params") or 0) / biggest)

    for family in families:
        pts = sorted((p for p in points if p["family"] == family), key=lambda p: p["macs"])
        if pts:
            ax.plot([p["macs"] for p in pts], [p["psnr"] for p in pts], "-",
                    color=colors[family], alpha=0.5)
            ax.scatter([p["macs"] for p in pts], [p["psnr"] for p in pts],
                       s=[size(p) for p in pts], color=colors[family], alpha=0.6,
                       edgecolors="k", linewidths=0.5, label=f"{family} (ours)")
        ref = [p for p in paper if p["family"] == family]
        if ref:
            ax.scatter([p["macs"] for p in ref], [p["psnr"] for p in ref], marker="s",
                       s=[size(p) for p in ref], facecolors="none",
                       edgecolors=colors[family], linewidths=1.2,
                       label=f"{family} (paper)")
    for p in points:
        xy.append((p["macs"], p["psnr"]))
        texts.append(f"{p['label']}: {p['psnr']:.2f}\n{p['steps']:,} steps")
        radii.append(math.sqrt(size(p)) / 2 * px_per_pt)
    for p in paper:
        xy.append((p["macs"], p["psnr"]))
        texts.append(f"{p['label']} (paper): {p['psnr']:.2f}")
        radii.append(math.sqrt(size(p)) / 2 * px_per_pt)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.margins(0.25)
    ax.set_xlabel("MACs per sample (log)")
    ax.set_ylabel("best PSNR (dB)")
    ax.set_title("Figure 3: MAC-PSNR (marker area ∝ #params)")
    ax.grid(True, which="both", alpha=0.3)
    legend = ax.legend(fontsize=7, bbox_to_anchor=(1.02, 1), loc="upper left")
    for handle in legend.legend_handles:
        handle.set_sizes([40])
    boxes = place_labels(ax, xy, texts, radii)
    return fig, ax, boxes


def figure3(points: list[dict], paper: list[dict] | None = None) -> bytes | None:
    """PSNR against MACs per sample, marker area proportional to #params: ``points`` are
    ours (filled; dicts with family, label, macs, psnr, params, steps), ``paper`` the
    paper's printed figures of the same rows (hollow squares, same colour per family).
    Labels are placed so that none overlaps another or a marker (:func:`place_labels`)."""
    points = [p for p in points if None not in (p.get("macs"), p.get("psnr"), p.get("params"))]
    paper = [p for p in (paper or []) if None not in (p.get("macs"), p.get("psnr"))]
    if not points:
        return None
    fig, _, _ = _figure3_axes(points, paper)
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


def lines_png(lines: list[tuple[str, list, list]], xlabel: str, title: str) -> bytes | None:
    """One marked line per ``(label, x, y)``, y = test PSNR; PNG bytes (None: no lines)."""
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, x, y in lines:
        ax.plot(x, y, marker="o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


def grid_png(rows: list[tuple[str, np.ndarray]], title: str) -> bytes | None:
    """Rows of images ``(n, H, W, C)`` in [0, 1], one labelled row each."""
    if len(rows) < 2:
        return None
    n = min(len(images) for _, images in rows)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.4, 1.15 * len(rows) + 0.4),
                             squeeze=False)
    for i, (label, images) in enumerate(rows):
        for j in range(n):
            ax = axes[i][j]
            im = np.clip(images[j], 0, 1)
            ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, interpolation="nearest",
                      cmap="gray" if im.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i][0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    return buffer.getvalue()


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


def figure3_paper_points(rows) -> list[dict]:
    """The paper's printed (MACs, PSNR, params) of the rows that print a PSNR, in absolute
    units (the row's ``units``), one point per label."""
    points, seen = [], set()
    for res in rows:
        paper = res.row.get("paper") or {}
        units = getattr(res, "units", {}) or {}
        try:
            macs = float(paper["macs"]) * SCALE.get(units.get("macs", ""), 1)
            psnr = float(paper["psnr"])
        except (KeyError, TypeError, ValueError):
            continue
        try:
            params = float(paper["params"]) * SCALE.get(units.get("params", ""), 1)
        except (KeyError, TypeError, ValueError):
            params = None
        if res.label in seen:
            continue
        seen.add(res.label)
        family = _family((res.row.get("model") or {}).get("name", res.label))
        points.append({"family": family, "label": res.label, "macs": macs, "psnr": psnr,
                       "params": params})
    return points
