"""Quality of block sampling by cell level against random per-sample sampling, at equal steps
and at equal wall time, for Table 5's ASMR on one image (the cell-level rule's evidence).

Table 5's ASMR (6 x 512, linear modulators, bases derived for the signal as a run on a
stand-in derives them), Adam at Table 5's lr 1e-4 annealed by cosine to 1e-6 over each run's
own steps, ``--batch`` samples per step, seed 0. Trained, each from the same initial weights:

- random per-sample sampling (``data.sampling: random``: a fresh permutation of the pixels,
  per-sample ``forward``) for ``--random-steps`` K steps;
- every cell level that fits the step (``data.sampling: blocks``: random whole cells,
  ``forward_cells`` with activation sharing) for K steps (equal steps) and for
  K x t_random / t_level steps (equal wall time), where t is a whole optimizer step's wall
  time measured first, all configurations round-robin in this one process (so the load of a
  shared machine moves them alike). Each run's own training seconds are recorded too.
  ``--budget-s T`` sets K from the measured random step instead (K = T / t_random, at least
  1), so every configuration's equal-time run is about T seconds of training: for batches
  where a random step costs a minute or more.

PSNR over the whole signal after training (``blocks.stream_evaluate``: predictions clipped to
[0, 1], float64 squared error). Every run is appended to the ``--out`` JSON as it ends, with
the load average around it; ``--report`` prints the table of one or more such files and marks
the level the default rule (:func:`inrbench.blocks.choose_level`) picks.

    python benchmarks/block_quality.py --data pluto --out q.json [--batch 16384] [--random-steps 16]
    python benchmarks/block_quality.py --data pluto --batch 262144 --budget-s 240 --out q.json
    python benchmarks/block_quality.py --data image --path PHOTO --crop 2048,2048 --crop-at 900,1800
    python benchmarks/block_quality.py --report q.json [more.json ...]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from block_levels import table5_asmr
from common import machine

from inrbench.blocks import choose_level, level_costs, stream_evaluate
from inrbench.data import create_datamodule
from inrbench.data.base import RandomBlocks, RandomSamples
from inrbench.tasks.optim import adam

LR, LR_MIN = 1e-4, 1e-6


def load() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def stepper(model, config: dict, signal, shape, batch: int, steps: int, seed: int):
    """One optimizer step per call, of ``config`` (a level's cells or random samples), with
    Adam and the cosine schedule over ``steps``."""
    planned = adam(model.parameters(), LR, "cosine", steps, LR_MIN)
    opt, sched = planned["optimizer"], planned["lr_scheduler"]["scheduler"]
    if config["level"] is None:
        ds = RandomSamples(signal, shape, batch, 10**9, seed)
    else:
        ds = RandomBlocks(signal, shape, config["cell"], config["n_cells"], 10**9, seed,
                          level=config["level"])
    count = iter(range(10**9))

    def step():
        b = ds[next(count)]
        opt.zero_grad(set_to_none=True)
        if config["level"] is None:
            pred = model(b["coords"])
        else:
            pred = model.forward_cells(b["cells"], b["level"]).reshape(-1, signal.shape[-1])
        F.mse_loss(pred, b["values"]).backward()
        opt.step()
        sched.step()
    return step


def step_times(model, configs, signal, shape, batch, repeats: int) -> dict:
    """Median wall seconds of one step per configuration, measured round-robin after one
    warm-up step each, on a throwaway copy of the model."""
    steps = {c["name"]: stepper(copy.deepcopy(model), c, signal, shape, batch, 10**6, 0)
             for c in configs}
    times = {name: [] for name in steps}
    for r in range(repeats + 1):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            if r:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def train(model0, config, signal, shape, batch, steps, seed) -> dict:
    model = copy.deepcopy(model0)
    step = stepper(model, config, signal, shape, batch, steps, seed)
    before, t0 = load(), time.perf_counter()
    for _ in range(steps):
        step()
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    psnr = stream_evaluate(model, signal)["psnr"]
    eval_s = time.perf_counter() - t1
    return {"steps": steps, "train_s": round(train_s, 2), "eval_s": round(eval_s, 2),
            "psnr": round(psnr, 3), "load_before": before, "load_after": load()}


def measure(args) -> None:
    kwargs = {}
    if args.data == "image":
        kwargs = {"path": args.path, "crop": [int(n) for n in args.crop.split(",")]}
        if args.crop_at:
            kwargs["crop_at"] = [int(n) for n in args.crop_at.split(",")]
    dm = create_datamodule(args.data, **kwargs)
    dm.setup()
    signal, shape = dm.signal, tuple(dm.spec().shape)
    model = table5_asmr(shape)
    costs = level_costs(model, args.batch)
    configs = [{"name": f"level {c['level']}", **c} for c in costs]
    configs.append({"name": "random", "level": None})
    record = {"signal": dm.describe(), "data": args.data, **kwargs, "shape": list(shape),
              "model": "Table 5 ASMR 6x512", "bases": model.bases, "batch": args.batch,
              "random_steps": args.random_steps, "seed": args.seed, "lr": [LR, LR_MIN],
              "machine": machine(), "levels": costs, "runs": []}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        out.write_text(json.dumps(record, indent=1) + "\n")
        print(json.dumps(record["runs"][-1] if record["runs"] else record["step_s"]), flush=True)

    record["load_before_timing"] = load()
    record["step_s"] = step_times(model, configs, signal, shape, args.batch, args.repeats)
    record["load_after_timing"] = load()
    save()
    t_random, k = record["step_s"]["random"], args.random_steps
    if args.budget_s:
        k = record["random_steps"] = max(1, round(args.budget_s / t_random))
        record["budget_s"] = args.budget_s
    plan = [(c, "equal steps", k) for c in configs]
    plan += [(c, "equal time", max(1, round(k * t_random / record["step_s"][c["name"]])))
             for c in configs if c["level"] is not None]
    for c, budget, steps in plan:
        run = train(model, c, signal, shape, args.batch, steps, args.seed)
        record["runs"].append({"config": c["name"], "level": c["level"], "budget": budget, **run})
        save()


def report(paths) -> None:
    for path in paths:
        rec = json.loads(Path(path).read_text())
        chosen = choose_level(rec["levels"])["level"]
        runs = {(r["config"], r["budget"]): r for r in rec["runs"]}
        rnd = runs.get(("random", "equal steps"))
        print(f"\n{rec['signal']} {rec['shape']}, {rec['model']}, bases {rec['bases']}, "
              f"{rec['batch']:,} samples per step, {rec['random_steps']} random steps; "
              f"load {rec['load_before_timing']} -> {rec['load_after_timing']} while timing")
        print(f"{'config':>10s} {'cells':>12s} {'step s':>8s} | {'steps':>5s} {'PSNR':>7s} | "
              f"{'steps':>6s} {'train s':>8s} {'PSNR':>7s}")
        for c in [*rec["levels"], {"level": None}]:
            name = "random" if c["level"] is None else f"level {c['level']}"
            mark = "*" if c["level"] == chosen else " "
            cell = "-" if c["level"] is None else "x".join(map(str, c["cell"]))
            cells = "-" if c["level"] is None else f"{c['n_cells']} x {cell}"
            s, t = runs.get((name, "equal steps")), runs.get((name, "equal time"), rnd)
            if c["level"] is None:
                t = rnd
            print(f"{name:>9s}{mark} {cells:>12s} {rec['step_s'][name]:8.3f} | "
                  + (f"{s['steps']:5d} {s['psnr']:7.2f} | " if s else f"{'':5s} {'':7s} | ")
                  + (f"{t['steps']:6d} {t['train_s']:8.1f} {t['psnr']:7.2f}" if t else ""))
    print("* the default level (inrbench.blocks.choose_level)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", choices=("pluto", "image"), default="pluto")
    ap.add_argument("--path", help="the photo, for --data image")
    ap.add_argument("--crop", default="2048,2048", help="H,W of the crop, for --data image")
    ap.add_argument("--crop-at", help="row,column of the crop's top-left pixel")
    ap.add_argument("--batch", type=int, default=2**14)
    ap.add_argument("--random-steps", type=int, default=16)
    ap.add_argument("--budget-s", type=float, help="equal wall time in seconds (sets K)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="block_quality.json")
    ap.add_argument("--report", nargs="+", metavar="JSON")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    if args.report:
        return report(args.report)
    if args.data == "image" and not args.path:
        print("block_quality.py: --data image needs --path PHOTO", file=sys.stderr)
        sys.exit(2)
    measure(args)


if __name__ == "__main__":
    main()
