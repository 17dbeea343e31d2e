"""GaussianImage on this CPU: one training step's time and peak memory at the paper's point
count on a Kodak-sized image, a fit of a Kodak stand-in within a time budget, and its render
time beside ASMR's and SIREN's (one process, same image size, interleaved repeats).

    OMP_NUM_THREADS=1 python benchmarks/gaussianimage_cpu.py step  --out DIR
    OMP_NUM_THREADS=1 python benchmarks/gaussianimage_cpu.py fit   --out DIR --budget 600
    OMP_NUM_THREADS=1 python benchmarks/gaussianimage_cpu.py render --out DIR
Each writes DIR/<mode>.json.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inrbench.io import atomic_write_text
from inrbench.models import create_model
from inrbench.tasks.optim import Adan

H, W = 512, 768  # Kodak's landscape size


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def stand_in() -> torch.Tensor:
    """The suite's Kodak stand-in (``data=kodak`` offline: the shipped photo resized and
    centre-cropped to 512x768), RGB in [0, 1]."""
    from inrbench.data.fetch import sample_file
    from inrbench.data.image import KODAK_STAND_IN, CoverImage

    return CoverImage(path=str(sample_file(KODAK_STAND_IN)), shape=[H, W]).load_signal()


def step_mode(args) -> dict:
    torch.manual_seed(1)
    model = create_model("gaussianimage", signal_shape=(H, W), out_features=3,
                         num_points=args.points)
    target = stand_in()
    opt = Adan(model.parameters(), lr=1e-3)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        loss = F.mse_loss(model.render((H, W)), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    return {"points": args.points, "image": [H, W], "step_s": times,
            "evals_per_pixel": model.evals[(H, W)] / (H * W),
            "peak_rss_mib": peak_rss_mib()}


def psnr(pred, target) -> float:
    return 10 * math.log10(1.0 / float(F.mse_loss(pred, target)))


def fit_mode(args) -> dict:
    torch.manual_seed(1)
    model = create_model("gaussianimage", signal_shape=(H, W), out_features=3,
                         num_points=args.points)
    target = stand_in()
    opt = Adan(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20000, gamma=0.5)
    curve, start, step = [], time.perf_counter(), 0
    while time.perf_counter() - start < args.budget:
        loss = F.mse_loss(model.render((H, W)), target)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        step += 1
        if step % 10 == 0 or step == 1:
            curve.append({"step": step, "s": time.perf_counter() - start,
                          "psnr": psnr(model.render((H, W)).detach(), target)
                          if step % 50 == 0 or step == 1 else None,
                          "loss": loss.item()})
    elapsed = time.perf_counter() - start
    with torch.no_grad():
        final = psnr(model.render((H, W)), target)
    return {"points": args.points, "image": [H, W], "steps": step, "seconds": elapsed,
            "s_per_step": elapsed / step, "psnr": final, "curve": curve,
            "evals_per_pixel": model.evals[(H, W)] / (H * W), "peak_rss_mib": peak_rss_mib()}


def conf_model(name: str, points: int):
    """The model as ``conf/model/<name>.yaml`` builds it for a 512x768 RGB image."""
    from omegaconf import OmegaConf

    from inrbench.config import conf_dir

    kwargs = OmegaConf.to_container(OmegaConf.load(conf_dir() / "model" / f"{name}.yaml").model)
    kwargs.pop("name")
    if name == "gaussianimage":
        kwargs["num_points"] = points
    if name in ("gaussianimage", "asmr"):
        kwargs["signal_shape"] = [H, W]
    torch.manual_seed(1)
    return create_model(name, in_features=2, out_features=3, **kwargs)


def render_mode(args) -> dict:
    torch.manual_seed(1)
    models = {name: conf_model(name, points=args.points)
              for name in ("gaussianimage", "asmr", "siren")}
    times = {k: [] for k in models}
    with torch.no_grad():
        for m in models.values():  # warm-up
            m.render((H, W), chunk=2**20)
        for _ in range(args.repeats):
            for name, m in models.items():
                t0 = time.perf_counter()
                m.render((H, W), chunk=2**20)
                times[name].append(time.perf_counter() - t0)
    return {"image": [H, W], "repeats": args.repeats, "render_s": times,
            "params": {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()},
            "median_s": {k: float(np.median(v)) for k, v in times.items()},
            "peak_rss_mib": peak_rss_mib()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["step", "fit", "render"])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--points", type=int, default=70_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--budget", type=float, default=600.0)
    args = ap.parse_args()
    result = {"step": step_mode, "fit": fit_mode, "render": render_mode}[args.mode](args)
    result["threads"] = torch.get_num_threads()
    result["torch"] = torch.__version__
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / f"{args.mode}.json", json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "curve"}, indent=1))


if __name__ == "__main__":
    main()
