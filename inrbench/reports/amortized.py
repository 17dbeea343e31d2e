"""Three ways to get an INR of each image of a data set, on the same test images:

* ``hypernet``: one forward pass of a trained hyper-network (ANR, Trans-INR; ``--task
  hypernet``, ``inrbench/tasks/hypernet.py``);
* ``meta``: k gradient steps on a latent from a meta-learned initialisation (ASMR, SIREN,
  Instant-NGP; ``--task meta``, COIN++ setting);
* ``fit``: a network fitted to each test image alone (``--task fit`` on ``data.split=test
  data.index=i``), the per-image reference.

Reads only results folders: ``metrics.json``, ``config.yaml`` and, for the per-image PSNRs of
the data-set tasks, ``reconstructions.npz``. Runs are grouped by data set (module, source and
image shape); the PSNR is compared on the test images every method scored: the first N of the
test split (N the smallest ``eval_images`` of the data-set runs) and, separately, the images
with a per-image fit. Also one section per group of ``hypernet`` runs: ANR against the linear
baseline (the paper's claim), the validation curves and the reconstructions.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np

from inrbench.reports.figures import grid_png, lines_png
from inrbench.reports.runs import Run
from inrbench.reports.sections import Cell, Figure, Section

LABELS = {"anr": "ANR", "transinr": "Trans-INR", "asmr": "ASMR", "siren": "SIREN",
          "ngp": "Instant-NGP"}
DATASET_TASKS = ("hypernet", "meta")


def _task(run: Run) -> str:
    return str(run.summary.get("task") or "fit")


def _group_key(run: Run) -> tuple:
    s = run.summary
    shape = tuple(s.get("image_shape") or [*(s.get("signal_shape") or []), s.get("channels")])
    return run.data, s.get("data_source"), shape


def _fit_index(run: Run) -> int | None:
    """The test image a fitting run fitted, or None when it is not one of a test split."""
    data = run.config.get("data", {})
    if _task(run) != "fit" or data.get("split") != "test" or data.get("index") is None:
        return None
    return int(data["index"])


def _per_image(run: Run) -> np.ndarray | None:
    path = Path(run.path) / "reconstructions.npz"
    if not path.is_file():
        return None
    with np.load(path) as z:
        return np.asarray(z["psnr"], dtype=float) if "psnr" in z else None


def _fmt(value, spec: str) -> str:
    return "—" if value is None else f"{value:{spec}}"


def _ms(values: np.ndarray) -> str:
    return f"{values.mean():.2f} ± {values.std():.2f}" if len(values) else "—"


def groups(runs: list[Run]) -> OrderedDict:
    """``{(data, source, shape): {"set": [data-set runs], "fit": {index: [fit runs]}}}`` for
    the groups that hold at least one data-set run."""
    out: OrderedDict = OrderedDict()
    for run in runs:
        if _task(run) in DATASET_TASKS:
            out.setdefault(_group_key(run), {"set": [], "fit": {}})["set"].append(run)
    for run in runs:
        index = _fit_index(run)
        key = _group_key(run)
        if index is not None and key in out and run.summary.get("modality") == "image":
            out[key]["fit"].setdefault(index, []).append(run)
    return out


def _label(run: Run) -> str:
    s, m = run.summary, run.config.get("model", {})
    name = LABELS.get(run.model, run.model)
    if _task(run) == "meta":
        return f"meta: {name} ({s.get('inner_steps', '?')} steps, latent {s.get('latent_dim')})"
    if _task(run) == "hypernet":
        return f"hypernet: {name} ({m.get('n_layers')} x {m.get('hidden_dim')})"
    return f"fit: {name} ({m.get('n_layers')} x {m.get('hidden_dim')})"


def amortized_sections(runs: list[Run]) -> list[Section]:
    """The comparison table per data set, then the hypernet sections; ``[]`` without runs."""
    sections = [_comparison_section(key, group) for key, group in groups(runs).items()]
    return sections + hypernet_sections(runs)


def _comparison_section(key: tuple, group: dict) -> Section:
    """Every method of one data set on the test images they all scored."""
    data, source, shape = key
    set_runs = sorted(group["set"], key=lambda r: (DATASET_TASKS.index(_task(r)), r.model,
                                                   r.steps or 0))
    fits = group["fit"]
    first = set_runs[0].summary
    n_common = min(int(r.summary.get("eval_images") or 0) for r in set_runs)
    fitted = sorted(i for i in fits if i < n_common)
    sec = Section(f"Three ways to an INR of each image: {first.get('data_set') or data} "
                  f"({'x'.join(map(str, shape))})")
    sec.paragraphs.append(
        f"Every method on the same test images: *PSNR, first {n_common}* is over the first "
        f"{n_common} test images (the fewest any data-set run scored), *PSNR, fitted* over "
        f"the {len(fitted)} of them with a per-image fit "
        f"({', '.join(map(str, fitted)) or 'none'}). "
        f"Mean ± std over images. *encode* is the seconds per image to get its INR: one "
        f"forward pass (hypernet), k gradient steps (meta), or the fit's training time; "
        f"*decode* one render of the image; MACs per pixel of the render, plus the "
        f"per-image set-up spread over its pixels (ANR's keys and values of the tokens; "
        f"meta's latent-to-shift map); the per-instance representation is what must be "
        f"stored per image. Training lengths differ between methods (column *trained*), and "
        f"so may the machines (column *machine*: the card or CPU that ran it).")
    if source != "paper":
        sec.paragraphs.append(f"Data: {first.get('data_note') or first.get('data_set')}.")
    header = ["method", f"PSNR, first {n_common} (dB)", "PSNR, fitted (dB)", "encode s/img",
              "decode ms/img", "MACs/pixel (+ per-image)", "per-instance floats",
              "trained", "wall s", "machine"]
    body = [_set_row(run, n_common, fitted) for run in set_runs]
    if fitted:
        body += _fit_rows(fits, fitted)
    sec.table = (header, body)
    return sec


def _set_row(run: Run, n_common: int, fitted: list[int]) -> list[Cell]:
    """A data-set run (hypernet or meta) on the common and the fitted test images."""
    s, psnr = run.summary, _per_image(run)
    common = psnr[:n_common] if psnr is not None else np.array([])
    at_fit = psnr[fitted] if psnr is not None and fitted else np.array([])
    # a run without per-image PSNRs: its own mean, over its own images, marked
    own = f"{s['psnr']:.2f} ± {s.get('psnr_std', 0):.2f} (its {s.get('eval_images')} images)"
    if _task(run) == "hypernet":
        setup, size = s.get("instance_macs_per_pixel"), s.get("instance_floats")
        decode_ms = s.get("decode_ms")
    else:
        setup, size = s.get("latent_map_macs_per_pixel"), s.get("latent_dim")
        decode_ms = (s.get("decode_s_per_image") or 0) * 1e3 or None
    macs = _fmt(s.get("macs_per_pixel"), ",.0f") + (f" (+{setup:,.0f})" if setup else "")
    return [Cell(_label(run), str(run.path)),
            Cell(_ms(common) if psnr is not None else own, str(run.path)),
            Cell(_ms(at_fit)), Cell(_fmt(s.get("encode_s_per_image"), ".4f")),
            Cell(_fmt(decode_ms, ".2f")), Cell(macs), Cell(_fmt(size, ",d")),
            Cell(f"{run.steps:,} steps"), Cell(_fmt(s.get("wall_s"), ",.0f")),
            Cell(run.machine)]


def _fit_rows(fits: dict, fitted: list[int]) -> list[list[Cell]]:
    """One row per fitted network (model, its size, steps): its runs on the fitted images."""
    by_model: OrderedDict = OrderedDict()
    for i in fitted:
        for r in fits[i]:
            m = r.config.get("model", {})
            key = (r.model, m.get("hidden_dim"), m.get("n_layers"), r.steps)
            by_model.setdefault(key, {})[i] = r  # the last run of an image counts
    body = []
    for (*_, steps), per_image in by_model.items():
        rs = list(per_image.values())
        psnr = np.array([r.summary["psnr"] for r in rs])

        def mean(key, rs=rs):
            values = [r.value(key) for r in rs]
            return None if None in values else float(np.mean(values))

        body.append([Cell(f"{_label(rs[0])}, {len(rs)} image(s)", str(rs[0].path)),
                     Cell("—"), Cell(_ms(psnr)), Cell(_fmt(mean("wall_s"), ".2f")),
                     Cell(_fmt(mean("latency_ms"), ".2f")),
                     Cell(_fmt(mean("macs"), ",.0f")),
                     Cell(_fmt(int(mean("params")) if mean("params") else None, ",d")),
                     Cell(f"{steps:,} steps / image"),
                     Cell(_fmt(mean("wall_s"), ",.0f") + " / image"),
                     Cell(rs[0].machine)])
    return body


def _curve_png(curves: list[tuple[str, list, list]], title: str) -> bytes | None:
    if not any(len(x) for _, x, _ in curves):
        return None
    return lines_png(curves, "training step", title)


def hypernet_sections(runs: list[Run]) -> list[Section]:
    """ANR against the linear baseline, per (data set, steps) group of hypernet runs."""
    grouped: OrderedDict = OrderedDict()
    for run in runs:
        if _task(run) == "hypernet":
            grouped.setdefault((run.summary.get("data_set") or run.data, run.steps),
                               []).append(run)
    sections = []
    for (data_set, steps), group in grouped.items():
        sec = Section(f"Generated in one pass: ANR vs the linear baseline on {data_set} "
                      f"({steps:,} steps)")
        sec.paragraphs.append(_hypernet_setting(group, steps))
        sec.table = _hypernet_table(group)
        sec.paragraphs += _anr_vs_linear(group)
        sec.figures += _hypernet_figures(group, data_set, f"hypernet_{steps}_{len(sections)}")
        sections.append(sec)
    return sections


def _hypernet_setting(group: list[Run], steps: int) -> str:
    first = group[0].summary
    return (f"{len(group)} decoder(s) trained alike with their transformer hyper-networks: "
            f"{steps:,} steps of {first.get('batch_size')} images "
            f"({_fmt(first.get('epochs'), '.3g')} epochs of {first.get('train_images', '?'):,} "
            f"train images), Adam at lr {first.get('lr')}, EMA {first.get('ema_decay')} every "
            f"{first.get('ema_every')} step(s) (evaluation uses it). The paper trains 200,000 "
            f"steps of 18 CelebA images at 128x128. PSNR over "
            f"{first.get('eval_images', '?'):,} test images (mean ± std).")


def _hypernet_table(group: list[Run]) -> tuple[list[str], list[list[Cell]]]:
    header = ["decoder", "test PSNR (dB)", "best val (dB)", "encode ms/img",
              "decode ms/img", "MACs/pixel", "hyper-net MACs/pixel", "tokens (floats)",
              "INR params / image", "shared params", "wall s"]
    body = []
    for run in group:
        s = run.summary
        shared = (s.get("hyper_params") or 0) + (s.get("decoder_params") or 0)
        body.append([
            Cell(_label(run), str(run.path)),
            Cell(f"{s['psnr']:.2f} ± {s.get('psnr_std', 0):.2f}", str(run.path)),
            Cell(_fmt(s.get("best_psnr"), ".2f")),
            Cell(_fmt((s.get("encode_s_per_image") or 0) * 1e3, ".2f")),
            Cell(_fmt(s.get("decode_ms"), ".2f")),
            Cell(_fmt(s.get("macs_per_pixel"), ",.0f")),
            Cell(_fmt(s.get("hyper_macs_per_pixel"), ",.0f")),
            Cell(_fmt(s.get("instance_floats"), ",d")),
            Cell(_fmt(s.get("instance_params"), ",d")),
            Cell(f"{shared:,}"), Cell(_fmt(s.get("wall_s"), ",.0f"))])
    return header, body


def _anr_vs_linear(group: list[Run]) -> list[str]:
    """The paper's claim checked on the group, when it has both ANR and Trans-INR."""
    by_model = {r.model: r for r in group}
    if "anr" not in by_model or "transinr" not in by_model:
        return []
    a, t = by_model["anr"], by_model["transinr"]
    diff = a.summary["psnr"] - t.summary["psnr"]
    text = (f"Attention {'beats' if diff > 0 else 'does not beat'} linear here: ANR "
            f"{a.summary['psnr']:.2f} vs Trans-INR {t.summary['psnr']:.2f} dB on the "
            f"test images ({diff:+.2f} dB)")
    pa, pt = _per_image(a), _per_image(t)
    if pa is not None and pt is not None and len(pa) == len(pt) > 1:
        d = pa - pt  # the same test images, in the same order
        text += (f"; per image, ANR - Trans-INR = {d.mean():+.2f} ± "
                 f"{d.std(ddof=1) / np.sqrt(len(d)):.2f} dB (mean ± standard error "
                 f"over {len(d)} images), ANR ahead on {int((d > 0).sum())} of them")
    return [text + f". Wall time {_fmt(a.summary.get('wall_s'), ',.0f')} s (ANR) vs "
            f"{_fmt(t.summary.get('wall_s'), ',.0f')} s (Trans-INR) for the same steps. The "
            f"paper's claim is CelebA 47.25 dB for ANR against 37.95 dB for its baseline."]


def _hypernet_figures(group: list[Run], data_set, slug: str) -> list[Figure]:
    """Validation curves, the grid of test images and INRs, and each run's super-resolution
    image."""
    figures = []
    curves = []
    for run in group:
        c = run.curve()
        if "val_psnr" in c:
            c = c.dropna(subset=["val_psnr"])
            curves.append((_label(run), list(c["step"]), list(c["val_psnr"])))
    png = _curve_png(curves, f"test PSNR during training: {data_set}")
    if png:
        figures.append(Figure(f"{slug}_curve.png", "Test PSNR (EMA weights) at each "
                              "evaluation during training", png))
    rows, originals = [], None
    for run in group:
        path = Path(run.path) / "reconstructions.npz"
        if path.is_file():
            with np.load(path) as z:
                if originals is None:
                    originals = z["originals"]
                    rows.append(("originals", originals))
                if z["originals"].shape == originals.shape:
                    rows.append((_label(run), z["reconstructions"]))
    png = grid_png(rows, "test images and their INRs generated in one forward pass")
    if png:
        figures.append(Figure(f"{slug}_grid.png", "Test originals, then each decoder's "
                              "INR rendered at the training resolution", png))
    for run in group:
        sr = Path(run.path) / "super_resolution.png"
        if sr.is_file():
            figures.append(Figure(
                f"{slug}_{run.model}_sr.png", f"{_label(run)}: test originals "
                f"(nearest-upscaled) above the INR rendered at "
                f"{run.summary.get('sr_scale')}x the training resolution", sr.read_bytes()))
    return figures


__all__ = ["amortized_sections", "groups", "hypernet_sections"]
