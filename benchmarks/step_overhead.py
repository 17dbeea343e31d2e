"""The suite's cost per training step against a plain PyTorch loop of the same model and
optimizer.

One process, one thread, repeats interleaved (plain, suite, plain, suite, ...): the plain loop
builds the run's model with the run's seed, then steps Adam with the cosine schedule on the
whole signal's MSE (``render``, ``mse_loss``, ``backward``, ``step``); the suite trains the
same config through :func:`inrbench.run.run` -- the fit task, the Trainer and the suite's
callbacks, with a CSV logger, no progress bar and no evaluation or checkpoint within the
timed steps. A suite step is the time between two consecutive training batches' starts
(Lightning's loop, data loader, hooks, callbacks, schedule and logging included). Medians
over the steps after ``--warmup`` of every repeat; the ratio is suite / plain.

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py [--model asmr] [--crop 64]
        [--steps 300] [--repeats 5] [--record reports/step-overhead-cpu/asmr.json]
        [--profile 300]  # cProfile of one suite run: the 25 costliest functions
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from common import machine

from inrbench.build import build_datamodule, build_model
from inrbench.config import compose
from inrbench.console import quiet_libraries
from inrbench.run import run


def config(model: str, crop: int, steps: int, out: Path, extra=()):
    return compose(model=model, data="cameraman",
                   overrides=[f"data.crop=[{crop},{crop}]", "trainer.progress_bar=false",
                              f"task.eval_every={steps}", f"trainer.checkpoint_every={steps}",
                              "trainer.latency_repeats=1", "trainer.latency_warmup=0", *extra],
                   extra={"task.steps": steps, "trainer.out": str(out),
                          "trainer.logger": "csv"})


def plain_step_ms(cfg, steps: int) -> list[float]:
    """Per-step milliseconds of the bare loop on the run's model and signal."""
    L.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg)
    spec = dm.spec()
    model = build_model(cfg, spec)
    dm.setup("fit")
    target = dm.signal
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg.task.lr))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps,
                                                       eta_min=float(cfg.task.lr_min))
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = F.mse_loss(model.render(spec.shape), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


class StepTimes(L.Callback):
    """Milliseconds between consecutive training batches' starts."""

    def __init__(self):
        self.times, self._t = [], None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = time.perf_counter()
        if self._t is not None:
            self.times.append((now - self._t) * 1e3)
        self._t = now


def suite_step_ms(cfg) -> list[float]:
    timer = StepTimes()
    run(cfg, callbacks=[timer])
    return timer.times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="asmr")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--record", type=Path)
    p.add_argument("--profile", type=int, default=0, help="profile one suite run of N steps")
    args = p.parse_args()
    quiet_libraries()
    torch.set_num_threads(1)
    plain, suite = [], []
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run(config(args.model, args.crop, args.profile, Path(tmp) / "profile"))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            return
        for r in range(args.repeats):  # interleaved, so drifting load hits both alike
            cfg = config(args.model, args.crop, args.steps, Path(tmp) / f"r{r}")
            plain += plain_step_ms(cfg, args.steps)[args.warmup:]
            suite += suite_step_ms(cfg)[args.warmup:]
    row = {"model": args.model, "signal": f"cameraman {args.crop}x{args.crop}",
           "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup,
           "plain_ms": round(statistics.median(plain), 3),
           "suite_ms": round(statistics.median(suite), 3),
           "machine": machine(), "load_avg": os.getloadavg(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    row["ratio"] = round(row["suite_ms"] / row["plain_ms"], 3)
    print(json.dumps(row))
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
