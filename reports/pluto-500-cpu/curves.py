"""PSNR against epoch and against training time of a (possibly unfinished) run, read from its
checkpoint: every evaluation row the run made (step, PSNR, SSIM, training and evaluation
seconds, carried across resumes), written as ``curves.json`` and drawn as ``curves.png``.

    python reports/pluto-500-cpu/curves.py RUN_DIR --steps-per-epoch 78

(``--steps-per-epoch``: the run's, ``ceil(samples / samples per step)`` under
``data.steps_per_epoch: auto``; 78 for the Pluto stand-in's 20,250,000 pixels in steps of 419
cells of 25x25.)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import yaml


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--steps-per-epoch", type=int)
    a = ap.parse_args()
    ckpt = torch.load(a.run / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=False)
    cfg = yaml.safe_load((a.run / "config.yaml").read_text())
    per_epoch = a.steps_per_epoch or cfg["data"].get("steps_per_epoch")
    if not isinstance(per_epoch, int):
        ap.error("the run's data.steps_per_epoch is auto: give --steps-per-epoch")
    evals = ckpt["inrbench"]["evals"]
    rows = [{**r, "epoch": r["step"] / per_epoch} for r in evals]
    out = {"run": str(a.run), "global_step": int(ckpt["global_step"]),
           "epochs_done": int(ckpt["global_step"]) / per_epoch, "steps_per_epoch": per_epoch,
           "steps_planned": cfg["task"]["steps"], "evaluations": rows}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "curves.json").write_text(json.dumps(out, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.4), sharey=True)
    ax[0].plot([r["epoch"] for r in rows], [r["val_psnr"] for r in rows], "o-")
    ax[0].set_xlabel("epoch (every pixel once)")
    ax[0].set_ylabel("PSNR (dB), whole 20 MP signal")
    ax[1].plot([r["train_s"] / 60 for r in rows], [r["val_psnr"] for r in rows], "o-")
    ax[1].set_xlabel("training time (min, one CPU thread)")
    for x in ax:
        x.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out / "curves.png", dpi=110)
    print(json.dumps({k: v for k, v in out.items() if k != "evaluations"}))


if __name__ == "__main__":
    main()
