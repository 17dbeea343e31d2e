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

from collections import OrderedDict
from pathlib import Path

import numpy as np

from inrbench.config.experiment import load_experiment
from inrbench.reports.figures import grid_png, lines_png
from inrbench.reports.runs import Run
from inrbench.reports.sections import Cell, Figure, Section

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


def _curve_png(groups: list[tuple[str, list[float]]], title: str) -> bytes | None:
    """Encoding curves: PSNR after 1..n inner steps."""
    return lines_png([(label, list(range(1, len(c) + 1)), c) for label, c in groups],
                     "inner steps", title)


def _fmt(value, spec: str, unit: str = "") -> str:
    return "—" if value is None else f"{value:{spec}}{unit}"


def figure5_sections(runs: list[Run]) -> list[Section]:
    """The Figure 5 sections of the meta-learning runs, one per group trained alike, or
    ``[]``."""
    return [_group_section(key, group) for key, group in _groups(runs).items()]


def _groups(runs: list[Run]) -> OrderedDict:
    """``{(data set, outer steps, batch size): [meta runs]}``: only runs trained alike are
    compared."""
    groups: OrderedDict = OrderedDict()
    for run in meta_runs(runs):
        s = run.summary
        key = (s.get("data_set") or run.data, run.steps, s.get("batch_size"))
        groups.setdefault(key, []).append(run)
    return groups


def _group_section(key: tuple, group: list[Run]) -> Section:
    data_set, steps, batch = key
    k = group[0].summary.get("inner_steps", 3)
    sec = Section(f"Figure 5: meta-learning on {data_set} ({steps:,} outer steps of "
                  f"{batch} images)")
    sec.paragraphs += _setting(group, steps, batch, k)
    sec.table = _table(group, k)
    sec.paragraphs += _verdict(group, k)
    slug = f"figure5_{steps}_{batch}"
    png = _curve_png([(_label(r), r.summary.get("encoding_curve") or []) for r in group],
                     f"encoding curve: {data_set}, {steps:,} outer steps")
    if png:
        sec.figures.append(Figure(f"{slug}_curve.png", "Test PSNR after 1..N inner steps "
                                  "from the meta-learned initialisation", png))
    png = grid_png(_grid_rows(group), f"after {k} inner steps from the meta-learned "
                   f"initialisation")
    if png:
        sec.figures.append(Figure(f"{slug}_grid.png", f"Figure 5 layout: test originals, "
                                  f"then each backbone after {k} inner steps", png))
    return sec


def _setting(group: list[Run], steps: int, batch, k) -> list[str]:
    """How the group was meta-learned, beside the paper's setting, and its data."""
    first = group[0].summary
    text = (f"{len(group)} backbone(s) meta-learned alike: {steps:,} outer steps of {batch} "
            f"images ({_fmt(first.get('epochs'), '.3g')} epochs of "
            f"{first.get('train_images', '?'):,} train images), latent "
            f"{first.get('latent_dim')}, {k} inner SGD steps at lr {first.get('inner_lr')}, "
            f"outer Adam at lr {first.get('outer_lr')}. The paper trains 500 epochs of "
            f"CIFAR-10 (391,000 steps of 64) at outer lr 3e-6. PSNR is over "
            f"{first.get('eval_images', '?'):,} test images (mean ± std).")
    out = [text]
    if first.get("data_source") != "paper":
        out.append(f"Data: {first.get('data_note') or first.get('data_set')}.")
    return out


def _table(group: list[Run], k) -> tuple[list[str], list[list[Cell]]]:
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
    return header, body


def _verdict(group: list[Run], k) -> list[str]:
    """ASMR against Instant-NGP, the paper's claim, when the group has both."""
    by_model = {r.model: r.summary["psnr"] for r in group}
    if "asmr" not in by_model or "ngp" not in by_model:
        return []
    diff = by_model["asmr"] - by_model["ngp"]
    verdict = "beats" if diff > 0 else "does not beat"
    return [f"ASMR {verdict} Instant-NGP here: {by_model['asmr']:.2f} vs "
            f"{by_model['ngp']:.2f} dB after {k} steps ({diff:+.2f} dB); the paper's claim "
            f"(Figure 5) is that Instant-NGP fails to learn the shared structure."]


def _grid_rows(group: list[Run]) -> list[tuple[str, np.ndarray]]:
    """The test originals, then each run's reconstructions of those same images."""
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
    return rows
