"""A dense multi-resolution grid against SIREN and Instant-NGP at about equal parameters.

Each model is fitted by the suite's own runner (``inrbench.run``: the fitting task, Adam with
its cosine schedule, the whole image every step) for the same number of steps on two 128 x 128
crops of the shipped Cameraman photo (``skimage.data.camera``), one after another in this
process, with whatever thread count ``OMP_NUM_THREADS`` sets (1 on a shared machine):

    topleft   --data cameraman data.crop=[128,128]           (the suite's crop: mostly sky)
    head      --data image data.path=<camera.png> data.crop=[128,128] data.crop_at=[64,192]

Models, ~8.6-8.9 K parameters each (0.53-0.54 per pixel), each at its ``conf/model`` lr:

    grid      levels 8, base_resolution 8, finest_resolution 64            8,927 (lr 1e-2)
    grid_1    one level of 93 x 93 vertices                                  8,649 (lr 1e-2)
    siren     hidden_dim 64, n_layers 4                                      8,577 (lr 1e-4)
    ngp       10 levels x 2 features, 2^9 entries, 8 -> 128, MLP 2 x 32      8,641 (lr 1e-2)

then the grid again at other learning rates (``--lrs``) and SIREN at 1e-3 (``--siren-lrs``:
its 1e-4 is the papers' lr for 256-wide networks and 10,000 steps). Each run prints one JSON
line (PSNR, training seconds, seconds per step, parameters, measured MACs, render latency);
``--record FILE`` writes them with the machine and the load average before and after.

    OMP_NUM_THREADS=1 python benchmarks/grid_fit.py --record reports/grid-cpu/grid_fit.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from common import machine
from skimage import data as skimage_data

from inrbench.config import compose
from inrbench.io import atomic_write_json
from inrbench.run import run

CAMERA = Path(skimage_data.__file__).parent / "camera.png"
SIGNALS = {
    "topleft": ("cameraman", ["data.crop=[128,128]"]),
    "head": ("image", [f"data.path={CAMERA}", "data.crop=[128,128]", "data.crop_at=[64,192]"]),
}
MODELS = {
    "grid": ("grid", ["model.levels=8", "model.base_resolution=8", "model.finest_resolution=64"]),
    "grid_1": ("grid", ["model.levels=1", "model.base_resolution=93",
                        "model.finest_resolution=93"]),
    "siren": ("siren", ["model.hidden_dim=64", "model.n_layers=4"]),
    "ngp": ("ngp", ["model.n_levels=10", "model.n_features_per_level=2",
                    "model.log2_hashmap_size=9", "model.base_resolution=8",
                    "model.finest_resolution=128", "model.hidden_dim=32", "model.n_layers=2"]),
}
KEYS = ("psnr", "best_psnr", "params", "macs", "macs_measured", "train_s", "steps",
        "latency_ms", "lr")


def fit(signal: str, label: str, steps: int, root: Path, lr: float | None = None) -> dict:
    data, data_over = SIGNALS[signal]
    model, model_over = MODELS[label]
    over = [*data_over, *model_over, "trainer.progress_bar=false", "trainer.latency_repeats=5",
            "trainer.latency_warmup=2", "trainer.checkpoint_every=100000"]
    if lr is not None:
        over.append(f"task.lr={lr}")
    out = root / signal / f"{label}-lr{lr}" if lr is not None else root / signal / label
    cfg = compose(model=model, data=data, overrides=over,
                  extra={"task.steps": steps, "task.eval_every": steps, "trainer.out": str(out),
                         "trainer.logger": "none"})
    summary = run(cfg)
    row = {"signal": signal, "model": label, **{k: summary.get(k) for k in KEYS}}
    row["s_per_step"] = summary["train_s"] / summary["steps"]
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--signals", default="topleft,head")
    ap.add_argument("--models", default="grid,grid_1,siren,ngp")
    ap.add_argument("--lrs", default="1e-3,3e-3,3e-2,1e-1",
                    help="the grid's other learning rates (empty: none)")
    ap.add_argument("--siren-lrs", default="1e-3", help="SIREN's other learning rates")
    ap.add_argument("--record", type=Path, help="write the rows and the machine as JSON")
    args = ap.parse_args(argv)
    rows = []
    load = {"before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as tmp:
        for signal in args.signals.split(","):
            for label in args.models.split(","):
                rows.append(fit(signal, label, args.steps, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
            others = [("grid", float(x)) for x in args.lrs.split(",") if x] \
                + [("siren", float(x)) for x in args.siren_lrs.split(",") if x]
            for label, lr in others:
                rows.append(fit(signal, label, args.steps, Path(tmp), lr))
                print(json.dumps(rows[-1]), flush=True)
    load["after"] = os.getloadavg()
    if args.record:
        atomic_write_json(args.record, {"steps": args.steps, "rows": rows, "load": load,
                                        "machine": machine(),
                                        "omp_num_threads": os.environ.get("OMP_NUM_THREADS")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
