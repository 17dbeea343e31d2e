"""Figure 5 of the ASMR paper (sec. 4.4): meta-learned backbones side by side, from the runs of
``--task meta`` found under the results folder (their ``metrics.json``,
``encoding_curve.json`` and ``reconstructions.npz``).

One section per (data set, outer steps, batch size) group, so only runs trained alike are
compared: a table (test PSNR after k inner steps, mean ± std over test images; PSNR after 1, 3
and 10 steps; seconds per image to encode and decode; MACs per pixel; params; outer steps and
epochs; wall time), the encoding curves, and Figure 5's grid: the test originals on top, then
each backbone's reconstruction after k steps. The paper's figure is qualitative; the one
printed number beside ours is COIN++'s SIREN (24.38 dB, latent 128, 3 steps, CIFAR-10 test).
"""

from __future__ import annotations

import io
from collections import OrderedDict
from pathlib import Path

import numpy as np

from inrbench.reports.runs import Run

LABELS = {"asmr": "ASMR", "ngp": "Instant-NGP", "siren": "SIREN"}
#: printed figures beside ours, from conf/experiment/figure5.yaml (its 'paper' entries)
EXPERIMENT = "figure5"


def meta_runs(runs: list[Run]) -> list[Run]:
    return [r for r in runs if r.summary.get("task") == "meta"]


def _label(run: Run) -> str:
    m = run.config.get("model", {})
    base = LABELS.get(run.model, run.model)
    shape = f"{m.get('n_layers', '?')} x {m.get('hidden_dim', '?')}"
    return f"{base} ({shape})"


def _paper_psnr(run: Run) -> tuple[str, str] | None:
    """The printed PSNR of the figure5 row with this run's model config, if any."""
    try:
        from inrbench.config.experiment import load_experiment

        exp = load_experiment(EXPERIMENT)
    except Exception:  # noqa: BLE001 - a report never fails on a missing experiment file
        return None
    for row in exp.rows:
        model = row.get("model", {})
        if all(run.config.get("model", {}).get(k) == v for k, v in model.items()):
            psnr = (row.get("paper") or {}).get("psnr")
            if psnr:
                return psnr, row.get("notes") or exp.source
    return None


def _lines_png(lines: list[tuple[str, list, list]], xlabel: str, title: str) -> bytes | None:
    """One marked line per ``(label, x, y)``, y = test PSNR; PNG bytes (None: no lines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def _curve_png(groups: list[tuple[str, list[float]]], title: str) -> bytes | None:
    """Encoding curves: PSNR after 1..n inner steps."""
    return _lines_png([(label, list(range(1, len(c) + 1)), c) for label, c in groups],
                      "inner steps", title)


def _grid_png(rows: list[tuple[str, np.ndarray]], title: str) -> bytes | None:
    """Rows of images ``(n, H, W, C)`` in [0, 1], one labelled row each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def _fmt(value, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def figure5_sections(runs: list[Run]):
    """The Figure 5 sections (``build.Section``s) of the meta-learning runs, or ``[]``."""
    from inrbench.reports.build import Figure, Section
    from inrbench.reports.tables import Cell

    groups: OrderedDict = OrderedDict()
    for run in meta_runs(runs):
        s = run.summary
        key = (s.get("data_set") or run.data, run.steps, s.get("batch_size"))
        groups.setdefault(key, []).append(run)
    sections = []
    for (data_set, steps, batch), group in groups.items():
        first = group[0].summary
        k = first.get("inner_steps", 3)
        title = (f"Figure 5: meta-learning on {data_set} ({steps:,} outer steps of "
                 f"{batch} images)")
        sec = Section(title)
        epochs = first.get("epochs")
        text = (f"{len(group)} backbone(s) meta-learned alike: {steps:,} outer steps of {batch} "
                f"images ({_fmt(epochs, '.3g')} epochs of {first.get('train_images', '?'):,} "
                f"train images), latent {first.get('latent_dim')}, {k} inner SGD steps at lr "
                f"{first.get('inner_lr')}, outer Adam at lr {first.get('outer_lr')}. The paper "
                f"trains 500 epochs of CIFAR-10 (391,000 steps of 64) at outer lr 3e-6. PSNR "
                f"is over {first.get('eval_images', '?'):,} test images (mean ± std).")
        sec.paragraphs.append(text)
        if first.get("data_source") != "paper":
            sec.paragraphs.append(f"Data: {first.get('data_note') or first.get('data_set')}.")
        header = ["backbone", f"test PSNR @{k} (dB)", "@1", "@3", "@10", "encode s/img",
                  "decode s/img", "MACs/pixel", "params", "wall time (s)", "paper / COIN++"]
        body = []
        for run in group:
            s = run.summary
            curve = s.get("encoding_curve") or []
            at = (lambda i, curve=curve: curve[i - 1] if len(curve) >= i else None)  # noqa: E731
            paper = _paper_psnr(run)
            body.append([
                Cell(_label(run), str(run.path)),
                Cell(f"{s['psnr']:.2f} ± {s.get('psnr_std', 0):.2f}", str(run.path)),
                Cell(_fmt(at(1), ".2f")), Cell(_fmt(at(3), ".2f")), Cell(_fmt(at(10), ".2f")),
                Cell(_fmt(s.get("encode_s_per_image"), ".4f")),
                Cell(_fmt(s.get("decode_s_per_image"), ".4f")),
                Cell(_fmt(s.get("macs_per_pixel"), ",.0f")),
                Cell(_fmt(s.get("params"), ",d")),
                Cell(_fmt(s.get("wall_s"), ",.0f")),
                Cell(f"{paper[0]} dB" if paper else "— (qualitative)"),
            ])
        sec.table = (header, body)
        by_model = {r.model: r.summary["psnr"] for r in group}
        if "asmr" in by_model and "ngp" in by_model:
            diff = by_model["asmr"] - by_model["ngp"]
            verdict = "beats" if diff > 0 else "does not beat"
            sec.paragraphs.append(
                f"ASMR {verdict} Instant-NGP here: {by_model['asmr']:.2f} vs "
                f"{by_model['ngp']:.2f} dB after {k} steps ({diff:+.2f} dB); the paper's claim "
                f"(Figure 5) is that Instant-NGP fails to learn the shared structure.")
        png = _curve_png([(_label(r), r.summary.get("encoding_curve") or []) for r in group],
                         f"encoding curve: {data_set}, {steps:,} outer steps")
        slug = f"figure5_{steps}_{batch}"
        if png:
            sec.figures.append(Figure(f"{slug}_curve.png", "Test PSNR after 1..N inner steps "
                                      "from the meta-learned initialisation", png))
        rows, originals = [], None
        for run in group:
            path = Path(run.path) / "reconstructions.npz"
            if not path.is_file():
                continue
            with np.load(path) as z:
                if originals is None:
                    originals = z["originals"]
                    rows.append(("originals", originals))
                if z["originals"].shape == originals.shape and np.allclose(z["originals"],
                                                                           originals):
                    rows.append((_label(run), z["reconstructions"]))
        png = _grid_png(rows, f"after {k} inner steps from the meta-learned initialisation")
        if png:
            sec.figures.append(Figure(f"{slug}_grid.png", f"Figure 5 layout: test originals, "
                                      f"then each backbone after {k} inner steps", png))
        sections.append(sec)
    return sections
