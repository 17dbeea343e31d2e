"""The suite's cost per training step against a plain PyTorch loop of the same model and
optimizer.

One process, one thread, repeats interleaved (plain, suite, plain, suite, ...): the plain loop
builds the run's model with the run's seed, then steps Adam with the cosine schedule on the
whole signal's MSE (``render``, ``mse_loss``, ``backward``, ``step``); the suite trains the
same config through :func:`inrbench.run.run` -- the fit task, the Trainer and the suite's
callbacks, with a CSV logger, no progress bar and no evaluation or checkpoint within the
timed steps. A suite step is the time between two consecutive training batches' starts
(Lightning's loop, data loader, hooks, callbacks, schedule and logging included). Medians
over the steps after ``--warmup`` of every repeat; the ratio is suite / plain. Each step is
timed by two clocks: ``wall`` (``perf_counter``) and ``cpu`` (``thread_time``, this thread's
CPU time, which other processes time-slicing a shared machine do not inflate).

Two measurements in each repeat: ``runs``, a plain loop then a suite run, one after the
other; ``alternating``, one suite run whose timing callback makes one plain step (of the
plain loop's own model) at each batch start, outside the timed suite interval, so both see
the same load step by step on a shared machine (the suite interval then leaves out the
few microseconds of the other callbacks' batch-start hooks, no-ops, that run before it).

    OMP_NUM_THREADS=1 python benchmarks/step_overhead.py [--model asmr] [--crop 64]
        [--steps 300] [--repeats 5] [--record reports/step-overhead-cpu/asmr.json]
        [--profile 300]  # cProfile of one suite run: the 25 costliest functions
        [--calls 100]    # Python calls a step, plain and suite (cProfile's count)

``--calls N`` counts the Python function calls (and built-in calls) a step makes, which no
load on a shared machine changes: a suite run of 2N steps less one of N, over N, against N
steps of the plain loop.
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


class PlainLoop:
    """The bare loop on the run's model and signal, one step at a time."""

    def __init__(self, cfg, steps: int):
        L.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)
        dm = build_datamodule(cfg)
        self.shape = dm.spec().shape
        self.model = build_model(cfg, dm.spec())
        dm.setup("fit")
        self.target = dm.signal
        self.opt = torch.optim.Adam(self.model.parameters(), lr=float(cfg.task.lr))
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.opt, T_max=steps, eta_min=float(cfg.task.lr_min))

    def step_ms(self) -> tuple[float, float]:
        """(wall, CPU) milliseconds of one step."""
        t0, c0 = time.perf_counter(), time.thread_time()
        loss = F.mse_loss(self.model.render(self.shape), self.target)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.sched.step()
        return (time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3


def plain_step_ms(cfg, steps: int) -> list[tuple[float, float]]:
    """Per-step (wall, CPU) milliseconds of the bare loop, ``steps`` steps."""
    loop = PlainLoop(cfg, steps)
    return [loop.step_ms() for _ in range(steps)]


class StepTimes(L.Callback):
    """(wall, CPU) milliseconds between consecutive training batches' starts; with
    ``plain``, a step of the bare loop runs (and is timed) at each batch start, outside the
    suite's interval, so the two alternate step by step under the same load."""

    def __init__(self, plain: PlainLoop | None = None):
        self.times, self.plain_times, self._t, self.plain = [], [], None, plain

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        now = (time.perf_counter(), time.thread_time())
        if self._t is not None:
            self.times.append(((now[0] - self._t[0]) * 1e3, (now[1] - self._t[1]) * 1e3))
        if self.plain is not None:
            self.plain_times.append(self.plain.step_ms())
        self._t = (time.perf_counter(), time.thread_time())


def suite_step_ms(cfg) -> list[float]:
    timer = StepTimes()
    run(cfg, callbacks=[timer])
    return timer.times


def paired_step_ms(cfg, steps: int) -> tuple[list[float], list[float]]:
    """(plain, suite) per-step milliseconds, the steps alternating within one run."""
    timer = StepTimes(PlainLoop(cfg, steps))
    run(cfg, callbacks=[timer])
    return timer.plain_times[1:], timer.times


def calls_per_step(model: str, crop: int, n: int, out: Path) -> dict:
    """Python calls a step of the plain loop and of the suite (module docstring)."""
    def counted(fn) -> int:
        prof = cProfile.Profile()
        prof.enable()
        fn()
        prof.disable()
        return pstats.Stats(prof).total_calls

    cfg = config(model, crop, n, out / "plain")
    loop = PlainLoop(cfg, n)
    plain = counted(lambda: [loop.step_ms() for _ in range(n)]) / n
    short = counted(lambda: run(config(model, crop, n, out / "short")))
    long = counted(lambda: run(config(model, crop, 2 * n, out / "long")))
    return {"plain": round(plain, 1), "suite": round((long - short) / n, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="asmr")
    p.add_argument("--crop", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--record", type=Path)
    p.add_argument("--profile", type=int, default=0, help="profile one suite run of N steps")
    p.add_argument("--calls", type=int, default=0, help="Python calls a step, over N steps")
    args = p.parse_args()
    quiet_libraries()
    torch.set_num_threads(1)
    plain, suite = [], []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            run(config(args.model, args.crop, args.profile, Path(tmp) / "profile"))
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            return
        if args.calls:
            print(json.dumps(calls_per_step(args.model, args.crop, args.calls, Path(tmp))))
            return
        paired_plain, paired_suite = [], []
        for r in range(args.repeats):  # interleaved, so drifting load hits both alike
            cfg = config(args.model, args.crop, args.steps, Path(tmp) / f"r{r}")
            plain += plain_step_ms(cfg, args.steps)[args.warmup:]
            suite += suite_step_ms(cfg)[args.warmup:]
            cfg = config(args.model, args.crop, args.steps, Path(tmp) / f"p{r}")
            a, b = paired_step_ms(cfg, args.steps)
            paired_plain += a[args.warmup:]
            paired_suite += b[args.warmup:]
    def pair(plain_ms, suite_ms):
        out = {}
        for i, clock in enumerate(("wall", "cpu")):
            p_ms = statistics.median(t[i] for t in plain_ms)
            s_ms = statistics.median(t[i] for t in suite_ms)
            out[clock] = {"plain_ms": round(p_ms, 3), "suite_ms": round(s_ms, 3),
                          "ratio": round(s_ms / p_ms, 3)}
        return out

    row = {"model": args.model, "signal": f"cameraman {args.crop}x{args.crop}",
           "steps": args.steps, "repeats": args.repeats, "warmup": args.warmup,
           "runs": pair(plain, suite), "alternating": pair(paired_plain, paired_suite),
           "machine": machine(), "load_avg_before": load_before,
           "load_avg_after": os.getloadavg(),
           "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    print(json.dumps(row))
    if args.record:
        args.record.parent.mkdir(parents=True, exist_ok=True)
        args.record.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
