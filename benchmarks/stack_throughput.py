"""Signals per second of many same-shape fits: one process per fit, one at a time in one
process, and stacked (:func:`inrbench.run.stacked.train_runs`), side by side in one run.

The signals are ``--signals`` distinct 64x64 crops of Cameraman (scikit-image's
``camera.png``, through the ``image`` data module's ``data.crop``/``data.crop_at``), each
fitted by every model of ``--models`` for ``--steps`` steps with the model's default config,
no logger and no progress bar (as ``inrbench bench`` runs its entries). Variants, per model:

- ``procs``: one child process per fit, ``python -m inrbench.cli run ...``, one after another
  (what ``inrbench bench`` does by default), over the first ``--procs-signals`` crops (each
  process starts from nothing, so the rate of a few is the rate of all);
- ``alone``: one at a time in this process, ``train_runs(cfgs, stack=False)``;
- ``stackN``: ``train_runs(cfgs, max_members=N)`` for each N of ``--max-members`` (``0``:
  the default, as many as :data:`~inrbench.run.stacked.STACK_SAMPLES` allows).

A variant's time is the wall clock from its first config to its last ``metrics.json``:
process start, imports, building, training, final evaluation, latency and records. Signals
per second are fits finished over that. Where the time goes: ``train_s`` (the trainer's own
training time, from each record) against the rest, per fit, and from these two the signals
per second projected to longer budgets (``projected_*``; a projection, not a measurement).
Each stacked member's final PSNR is compared with its ``alone`` counterpart (same config,
same seed).

The variants of one model run in an interleaved order (alone, stacked, procs, the other
stacks) with the load average before and after each; threads: one (``OMP_NUM_THREADS=1`` and
``torch.set_num_threads(1)``, children included) unless ``--threads``.

    OMP_NUM_THREADS=1 python benchmarks/stack_throughput.py [--models asmr,siren,ngp]
        [--signals 24] [--steps 50] [--procs-signals 6] [--max-members 0,4,8]
        [--variants procs,alone,stack]
        [--accelerator cpu|gpu] [--record reports/stack-throughput-cpu/record.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CROP = 64


def camera_png() -> Path:
    from skimage import data as skimage_data
    return Path(skimage_data.__file__).parent / "camera.png"


def crop_at(i: int) -> list[int]:
    """The ``i``-th crop's top-left pixel: rows of 8 blocks from row 64 (below the flat sky)
    of the 512x512 image, 48 distinct blocks at most."""
    if i >= 48:
        raise SystemExit("--signals: at most 48 distinct 64x64 crops of Cameraman")
    return [CROP * (1 + i // 8), CROP * (i % 8)]


def overrides(i: int, steps: int, accelerator: str) -> list[str]:
    """The ``key=value`` overrides of fit ``i``: the same for the CLI and :func:`compose`."""
    r, c = crop_at(i)
    return [f"data.path={camera_png()}", f"data.crop=[{CROP},{CROP}]",
            f"data.crop_at=[{r},{c}]", f"task.steps={steps}", "trainer.logger=none",
            "trainer.progress_bar=false", f"trainer.accelerator={accelerator}"]


def configs(model: str, n: int, steps: int, accelerator: str, root: Path) -> list:
    from inrbench.config import compose
    return [compose(model=model, data="image", overrides=overrides(i, steps, accelerator),
                    extra={"trainer.out": str(root / f"crop{i:02d}"), "trainer.seed": 0})
            for i in range(n)]


def run_procs(model: str, n: int, steps: int, accelerator: str, root: Path) -> None:
    """One ``inrbench run`` child process per fit, one after another."""
    for i in range(n):
        cmd = [sys.executable, "-m", "inrbench.cli", "run", "--model", model, "--data", "image",
               "--out", str(root / f"crop{i:02d}"), "--seed", "0",
               *overrides(i, steps, accelerator)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{model} crop {i}: {' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")


def run_inproc(model: str, n: int, steps: int, accelerator: str, root: Path,
               stack: bool, max_members: int | None) -> None:
    from inrbench.run.stacked import train_runs
    results = train_runs(configs(model, n, steps, accelerator, root), stack=stack,
                         max_members=max_members)
    bad = [r for r in results if isinstance(r, Exception)]
    if bad:
        raise SystemExit(f"{model}: {len(bad)} of {n} fits failed: {bad[0]}")


def read_records(root: Path, n: int) -> list[dict]:
    return [json.loads((root / f"crop{i:02d}" / "metrics.json").read_text()) for i in range(n)]


def measure(variant: str, model: str, n: int, steps: int, accelerator: str,
            root: Path) -> dict:
    """Run one variant of ``n`` fits into ``root``; its wall seconds, load and per-fit facts:
    ``fixed_s_per_fit`` (everything but the trainer's training time) and
    ``train_ms_per_step_per_fit`` (training time over fits and steps)."""
    load = os.getloadavg()
    t0 = time.perf_counter()
    if variant == "procs":
        run_procs(model, n, steps, accelerator, root)
    elif variant == "alone":
        run_inproc(model, n, steps, accelerator, root, stack=False, max_members=None)
    else:
        size = int(variant[len("stack"):])
        run_inproc(model, n, steps, accelerator, root, stack=True, max_members=size or None)
    wall = time.perf_counter() - t0
    recs = read_records(root, n)
    stacks = sorted({r["stack"]["of"] if "stack" in r else 1 for r in recs})
    # a stack's training time is under its members' "stack" (theirs alone is None): once
    train = {}
    for i, r in enumerate(recs):
        key = tuple(r["stack"]["runs"]) if "stack" in r else i
        train[key] = float(r["stack"]["train_s"] if "stack" in r else r["train_s"])
    out = {"variant": variant, "wall_s": wall, "signals_per_s": n / wall,
           "load_before": list(load), "load_after": list(os.getloadavg()),
           "train_s": sum(train.values()), "stack_sizes": stacks,
           "fixed_s_per_fit": (wall - sum(train.values())) / n,
           "psnr": [float(r["psnr"]) for r in recs]}
    out["train_ms_per_step_per_fit"] = 1e3 * out["train_s"] / (n * steps)
    return out


def order(variants: list[str], sizes: list[int]) -> list[str]:
    """Interleaved: alone, the default stack, procs, then the other stacks."""
    stacks = [f"stack{s}" for s in sizes]
    first = [v for v in ("alone",) if v in variants]
    rest = [v for v in ("procs",) if v in variants]
    if "stack" not in variants:
        return first + rest
    return first + stacks[:1] + rest + stacks[1:]


#: step budgets the measured costs are projected to (``projected``): signals per second at
#: N steps is 1 / (fixed_s_per_fit + N * train_ms_per_step_per_fit / 1000)
PROJECT_STEPS = (200, 1000, 10000)


def seconds_per_fit(row: dict, steps: int) -> float:
    return row["fixed_s_per_fit"] + steps * row["train_ms_per_step_per_fit"] / 1e3


def compare(model_rows: dict, base: str = "alone") -> None:
    """Ratios against ``procs`` and ``alone`` (measured, and projected to other budgets);
    PSNR differences against ``alone``, member by member (zip: ``procs`` may fit fewer)."""
    for name, row in model_rows.items():
        row["projected_signals_per_s"] = {str(n): 1 / seconds_per_fit(row, n)
                                          for n in PROJECT_STEPS}
        if base not in model_rows or name == base:
            continue
        ref = model_rows[base]
        row["psnr_max_abs_diff_vs_alone"] = max(
            abs(a - b) for a, b in zip(row["psnr"], ref["psnr"]))
        if not name.startswith("stack"):
            continue
        for other in ("alone", "procs"):
            if other in model_rows:
                o = model_rows[other]
                row[f"ratio_vs_{other}"] = row["signals_per_s"] / o["signals_per_s"]
                row[f"projected_ratio_vs_{other}"] = {
                    str(n): seconds_per_fit(o, n) / seconds_per_fit(row, n)
                    for n in PROJECT_STEPS}


def facts(accelerator: str) -> dict:
    from inrbench.profiling.machine import machine
    from inrbench.sysinfo import git_sha
    dev = torch.device("cuda" if accelerator in ("gpu", "cuda") else "cpu")
    return {"machine": machine(dev), "torch": torch.__version__, "git_sha": git_sha(),
            "python": sys.version.split()[0], "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "torch_threads": torch.get_num_threads()}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="asmr,siren,ngp")
    p.add_argument("--signals", type=int, default=24, help="distinct 64x64 crops (<= 48)")
    p.add_argument("--steps", type=int, default=50, help="training steps of every fit")
    p.add_argument("--procs-signals", type=int, default=6,
                   help="fits of the one-process-per-fit variant (the first N crops; 0: all): "
                        "its processes are independent, so its rate needs few")
    p.add_argument("--max-members", default="0,4,8",
                   help="stack sizes to try; 0 = train_runs' default (all 24 at 64x64)")
    p.add_argument("--variants", default="procs,alone,stack")
    p.add_argument("--accelerator", default="cpu", help="trainer.accelerator (cpu, gpu)")
    p.add_argument("--threads", type=int, default=1, help="torch threads, children too")
    p.add_argument("--keep", help="folder to keep the runs in (default a temporary one)")
    p.add_argument("--record", help="JSON record to write")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    args = parse(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the children's too
    os.environ.setdefault("WANDB_MODE", "offline")
    torch.set_num_threads(args.threads)
    from inrbench.console import quiet_libraries
    quiet_libraries(False)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    sizes = [int(s) for s in args.max_members.split(",") if s.strip()]
    record = {"benchmark": "stack_throughput", **facts(args.accelerator),
              "signals": args.signals, "procs_signals": args.procs_signals, "crop": [CROP, CROP],
              "steps": args.steps,
              "accelerator": args.accelerator, "threads": args.threads,
              "image": "skimage camera.png", "crop_at": [crop_at(i) for i in range(args.signals)],
              "order": order(variants, sizes), "load_start": list(os.getloadavg()),
              "models": {}}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        for model in models:
            rows: dict = {}
            for variant in record["order"]:
                n = min(args.procs_signals or args.signals, args.signals) \
                    if variant == "procs" else args.signals
                rows[variant] = row = measure(variant, model, n, args.steps,
                                              args.accelerator, base / model / variant)
                row["signals"] = n
                compare(rows)
                record["models"][model] = rows
                save(args.record, record)  # a run cut short keeps the variants it finished
                print(f"{model:6s} {variant:7s} {row['wall_s']:8.1f} s "
                      f"{row['signals_per_s']:7.3f} signals/s  train "
                      f"{row['train_ms_per_step_per_fit']:7.2f} ms/step/fit, other "
                      f"{row['fixed_s_per_fit']:6.2f} s/fit  load {row['load_before'][0]:.2f}"
                      f"->{row['load_after'][0]:.2f}", flush=True)
    record["total_s"] = time.perf_counter() - t0
    record["load_end"] = list(os.getloadavg())
    for model, rows in record["models"].items():
        for name, row in rows.items():
            if name.startswith("stack"):
                print(f"{model:6s} {name:7s} x{row.get('ratio_vs_procs', float('nan')):.2f} vs "
                      f"procs, x{row.get('ratio_vs_alone', float('nan')):.2f} vs alone, PSNR "
                      f"max |diff| {row.get('psnr_max_abs_diff_vs_alone', float('nan')):.2e} dB")
    save(args.record, record)
    return record


def save(path: str | None, record: dict) -> None:
    if path:
        from inrbench.io import atomic_write_json
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(path), record)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
