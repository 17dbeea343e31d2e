"""Rate-distortion section of a report (ANI Figs. 7, 8, 10): PSNR against bits per
pixel for the ``.inrb`` files of ``inrbench compress`` (records ``<run>/compressed/*.json``),
the classic codecs of ``inrbench codecs`` (``codecs.json`` beside the runs or in a
``codecs/`` folder beside them), and the papers' published Kodak points, drawn hollow and
labelled as the papers'. Two panels: bits / (H W) (COIN, COIN++, Strümpler et al., the
codecs) and bits / (H W C) (ANI's divisor). Once-for-all runs (``--task ofa``) get a table
of every sub-network's PSNR (ANI Figure 7).

PSNR of our points is the decoded file's rendering rounded to 8 bits (``psnr_8bit``), the
same rule as the codecs' decoded images. The papers' points are means over the 24 Kodak
images; ours come from the images the runs fitted (the data record says which), so they sit
beside the papers' curves, not on them.
"""

from __future__ import annotations

import io
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from inrbench.reports import rd_deltas  # noqa: E402
from inrbench.reports.runs import Run  # noqa: E402
from inrbench.reports.sections import Cell, Figure, Section  # noqa: E402

#: published Kodak points, bpp = bits / (H W), PSNR dB (facts note sec. 2e-2f)
PAPER_POINTS = {
    "COIN (Dupont et al. 2021)": [(0.0368, 22.41), (0.0736, 23.21), (0.1604, 24.64),
                                  (0.3074, 26.41), (0.6109, 28.41), (1.209, 30.64)],
    "COIN++ (Dupont et al. 2022)": [(0.0666, 23.68), (0.1325, 24.93), (0.2659, 26.14),
                                    (0.3983, 27.03), (0.5366, 27.80)],
    "Strümpler et al. 2022, 8-bit": [(0.0996, 25.64), (0.1879, 27.15), (0.2994, 28.41),
                                     (0.9463, 32.27)],
    "JPEG (PIL, COIN's)": [(0.221, 23.78), (0.327, 26.58), (0.423, 28.04), (0.508, 29.04),
                           (0.588, 29.78), (0.729, 30.90), (0.906, 32.06), (1.037, 32.79)],
    "JPEG 2000 (COIN's)": [(0.126, 26.44), (0.149, 26.92), (0.171, 27.32), (0.199, 27.80),
                           (0.239, 28.42), (0.299, 29.19), (0.399, 30.30), (0.599, 32.09),
                           (1.198, 35.68)],
    "BPG 4:4:4 (COIN's)": [(0.068, 26.20), (0.161, 28.68), (0.352, 31.59), (0.685, 34.86),
                           (1.200, 38.26)],
}
#: ANI Table 3 (Kodak means, ANI's bpp = bits / (H W 3)), alignment as conf/experiment/ani_table3
ANI_POINTS = {
    "ANI SIREN (Table 3)": [(1.812, 27.98, "fp32"), (0.479, 27.78, "PTQ8"),
                            (0.257, 18.24, "PTQ4"), (0.479, 27.26, "QAT8"),
                            (0.257, 25.35, "QAT4")],
    "ANI MFN (Table 3)": [(1.906, 29.16, "fp32"), (0.572, 28.60, "PTQ8"),
                          (0.350, 14.22, "PTQ4"), (0.572, 28.61, "QAT8"),
                          (0.350, 26.79, "QAT4")],
}


def compression_records(runs: list[Run]) -> list[dict]:
    out = []
    for run in runs:
        for p in sorted((run.path / "compressed").glob("*.json")):
            try:
                rec = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            if "file_bits" in rec and "psnr" in rec:
                rec["_run"] = run
                out.append(rec)
    return out


def codec_records(runs: list[Run]) -> list[dict]:
    seen, out = set(), []
    for run in runs:
        for folder in (run.path, run.path.parent, run.path.parent / "codecs"):
            p = (folder / "codecs.json").resolve()
            if p in seen or not p.is_file():
                continue
            seen.add(p)
            try:
                data = json.loads(p.read_text())
            except (OSError, ValueError):
                continue
            for pt in data.get("points", []):
                out.append({**pt, "source": data.get("source"), "_file": p})
    return out


def _label(rec: dict) -> str:
    if rec["method"] == "none":
        return f"{rec['model']} fp32"
    return f"{rec['model']} {rec['method'].upper()} {rec['bits']}-bit"


def figure(records: list[dict], codecs: list[dict]) -> bytes | None:
    if not records and not codecs:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    markers = {"none": "o", "ptq": "s", "qat": "^"}
    colours = {}
    for ax, key, divisor in ((axes[0], "bpp", 1), (axes[1], "bpp_ani", 3)):
        for name, pts in PAPER_POINTS.items():
            ax.plot([b / divisor for b, _ in pts], [p for _, p in pts], ls=":", marker="o",
                    mfc="none", color="0.6", lw=1, ms=4)
            ax.annotate(f"{name} [paper]", (pts[-1][0] / divisor, pts[-1][1]), fontsize=6,
                        color="0.45")
        for name, pts in ANI_POINTS.items():
            ax.scatter([b * 3 / divisor for b, _, _ in pts], [p for _, p, _ in pts],
                       marker="D", facecolors="none", edgecolors="0.35", s=25)
            for b, p, tag in pts:
                ax.annotate(f"ANI {name.split()[1]} {tag} [paper]", (b * 3 / divisor, p),
                            fontsize=5, color="0.35")
        for codec in sorted({c["codec"] for c in codecs}):
            pts = sorted((c[key], c["psnr"]) for c in codecs if c["codec"] == codec)
            ax.plot(*zip(*pts), ls="--", marker=".", label=f"{codec} (ours, imagecodecs)")
        for rec in records:
            model = rec["model"]
            colours.setdefault(model, f"C{len(colours) + 4}")
            psnr = rec.get("psnr_8bit", rec["psnr"])
            ax.scatter([rec[key]], [psnr], marker=markers.get(rec["method"], "o"),
                       color=colours[model], s=40, zorder=5)
            ax.annotate(_label(rec), (rec[key], psnr), fontsize=6)
        ax.set_xscale("log")
        ax.set_xlabel("bits / (H·W)" if divisor == 1 else "bits / (H·W·3)  (ANI's divisor)")
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=f"{m} (ours: o fp32, "
                          f"s PTQ, ^ QAT)") for m, c in colours.items()]
    axes[0].legend(handles=axes[0].get_legend_handles_labels()[0] + handles, fontsize=7,
                   loc="lower right")
    fig.suptitle("Rate-distortion: our .inrb files (filled) and codecs vs the papers' Kodak "
                 "means (hollow grey, [paper])", fontsize=10)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def ratedistortion_sections(runs: list[Run]) -> list[Section]:
    """The rate-distortion section (when there are compressed files or codec points), then
    one section per once-for-all run; ``[]`` without either."""
    records, codecs = compression_records(runs), codec_records(runs)
    sections = [_ratedistortion_section(records, codecs)] if records or codecs else []
    deltas = rd_deltas.deltas_section(records, codecs)
    sections += [deltas] if deltas else []
    return sections + [_ofa_section(r) for r in runs if r.summary.get("subnets")]


def codec_deltas_markdown(run_dir, codec_points: list[dict]) -> list[str]:
    """``inrbench codecs RUN_DIR``'s Bjøntegaard table: the compressed files of the run and
    of the runs beside it on the same signal against the sweep just made; ``[]`` without
    files."""
    records = compression_records(rd_deltas.runs_beside(run_dir))
    if not records or not codec_points:
        return []
    return ([rd_deltas.explanation(), ""]
            + rd_deltas.markdown(rd_deltas.codec_deltas(records, codec_points)))


def _ratedistortion_section(records: list[dict], codecs: list[dict]) -> Section:
    sec = Section("Rate-distortion (neural-image compression, ANI)")
    sec.paragraphs.append(
        "Each of our points is a `.inrb` file written by `inrbench compress` and decoded "
        "from the file alone; PSNR is the decoded rendering rounded to 8 bits, like the "
        "codecs'. `bpp` = file bits / (H·W) (COIN, COIN++, Strümpler); `bpp ANI` = file "
        "bits / (H·W·3), ANI's divisor; *fixed* is the same file with fixed-length "
        "symbols instead of range coding; *ANI count* counts parameter bits only (no "
        "header, step sizes or entropy coding), as ANI's tables do. The papers' points "
        "are Kodak means (24 images) and are drawn hollow, labelled [paper].")
    head = ["run", "method", "bits", "steps", "file bits", "bpp", "bpp ANI",
            "bpp ANI (fixed)", "bpp ANI count", "PSNR 8-bit", "SSIM", "render ms"]
    rows = []
    for rec in sorted(records, key=lambda r: (r["model"], r["bpp"])):
        run = rec["_run"]
        s = run.summary
        rows.append([
            Cell(run.path.name, str(run.path)), Cell(rec["method"]),
            Cell(str(rec["bits"])), Cell(f"{s.get('steps', '?'):,}"),
            Cell(f"{rec['file_bits']:,}"), Cell(f"{rec['bpp']:.4f}"),
            Cell(f"{rec['bpp_ani']:.4f}"), Cell(f"{rec['bpp_ani_fixed']:.4f}"),
            Cell(f"{rec['bpp_ani_count']:.4f}"),
            Cell(f"{rec.get('psnr_8bit', rec['psnr']):.2f}"),
            Cell(f"{rec['ssim']:.3f}" if "ssim" in rec else "—"),
            Cell(f"{s['latency_ms']:.1f}" if s.get("latency_ms") else "—")])
    if rows:
        sec.table = (head, rows)
    png = figure(records, codecs)
    if png:
        sec.figures.append(Figure("ratedistortion.png", "PSNR vs bits per pixel, both "
                                  "conventions; filled: ours; hollow grey: the papers' "
                                  "published Kodak means", png))
    return sec


def _ofa_section(run: Run) -> Section:
    """Every sub-network of one once-for-all run (ANI Figure 7)."""
    sec = Section(f"Adaptive neural image (once-for-all): {run.path.name} (ANI Figure 7)")
    sec.paragraphs.append(
        f"PSNR of every sub-network of one supernetwork ({run.summary.get('steps')} "
        f"steps), rendered from the shared weights without retraining; bpp ANI is the "
        f"sub-network's float32 parameters / (H·W·3).")
    h, w = run.summary["signal_shape"][:2]
    c = run.summary.get("channels", 3)
    rows = [[Cell(f"{r['width']} x {r['depth']}", str(run.path)), Cell(f"{r['params']:,}"),
             Cell(f"{32 * r['params'] / (h * w * c):.3f}"), Cell(f"{r['psnr']:.2f}"),
             Cell(f"{r['ssim']:.3f}" if "ssim" in r else "—")]
            for r in run.summary["subnets"]]
    sec.table = (["width x hidden layers", "params", "bpp ANI (fp32)", "PSNR", "SSIM"], rows)
    return sec
