"""Block-sampled fitting of a signal bigger than memory, served from a memory-mapped file.

For each ``--sizes`` side S: a synthetic S x S RGB uint8 ``.npy`` is written band by band
into ``--dir`` (32768 -> 3.2 GB, one gigapixel; nothing of it is held in memory), then a
fresh process fits Table 5's ASMR (6 x 512, linear modulators, bases derived for S x S) on it
with block sampling: 2^18 samples per step, the cell level chosen as ``inrbench run`` chooses
it (:func:`inrbench.blocks.choose_level`), every batch read from the file
(:class:`inrbench.data.mapped.MappedSignal`).
It prints the step time, the epoch time (every pixel once: measured with ``--steps 0``,
else projected from ``--steps`` steps of the epoch), and the process's peak RSS beside what
the signal alone would take loaded as float32. ``--eval`` also renders the whole signal
cell group by cell group (``inrbench.blocks.stream_evaluate``) into a uint8 ``.npy`` on disk
and prints its PSNR and time (a full render: hours for a gigapixel on a CPU). Each size runs
in its own process, so each peak RSS is that size's alone; the files are deleted after.

    python benchmarks/gigapixel.py [--sizes 8192,32768] [--steps 20] [--eval] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import device, machine

from inrbench.blocks import choose_level, level_costs, stream_evaluate
from inrbench.data.base import RandomBlocks
from inrbench.data.mapped import open_samples
from inrbench.models import create_model

BATCH = 2**18
BAND = 256  # rows written at a time
PROGRESS = 128  # steps between progress lines (stderr, so a long epoch shows it is alive)


def write_signal(path: Path, size: int) -> None:
    """A smooth synthetic RGB image, ``(size, size, 3)`` uint8, written band by band."""
    header = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(size, size, 3))
    offset = header.offset
    header._mmap.close()
    x = np.linspace(0, 1, size, dtype=np.float32)
    with open(path, "r+b") as f:
        f.seek(offset)
        for r0 in range(0, size, BAND):
            rows = x[r0:r0 + BAND, None]
            band = np.stack([0.5 + 0.25 * np.sin((c + 2) * 6.28 * x)[None, :]
                             * (0.6 + 0.4 * np.cos((c + 3) * 9.0 * rows)) for c in range(3)], -1)
            f.write((band * 255).round().astype(np.uint8).tobytes())


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def child(path: Path, steps: int, evaluate: bool) -> dict:
    signal = open_samples(path)
    shape = signal.shape[:-1]
    dev = device()
    torch.manual_seed(0)
    model = create_model("asmr", in_features=2, out_features=3, signal_shape=list(shape),
                         hidden_dim=512, n_layers=6, omega0=30.0, first_omega0=30.0,
                         modulator="linear").to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    chosen = choose_level(level_costs(model, BATCH))
    per_epoch = math.ceil(math.prod(shape) / (chosen["n_cells"] * math.prod(chosen["cell"])))
    ds = RandomBlocks(signal, shape, chosen["cell"], chosen["n_cells"], per_epoch, seed=0,
                      level=chosen["level"])
    n = per_epoch if steps <= 0 else min(steps, per_epoch)
    read_s = 0.0
    t0 = time.perf_counter()
    for i in range(n):
        r0 = time.perf_counter()
        b = ds[i]
        read_s += time.perf_counter() - r0
        opt.zero_grad(set_to_none=True)
        pred = model.forward_cells(b["cells"].to(dev), b["level"]).reshape(-1, 3)
        F.mse_loss(pred, b["values"].to(dev)).backward()
        opt.step()
        if (i + 1) % PROGRESS == 0 or i + 1 == n:
            done = time.perf_counter() - t0
            print(f"step {i + 1}/{n}: {done:.0f} s, {done / (i + 1) * 1e3:.0f} ms/step, "
                  f"peak RSS {rss_gib():.2f} GiB", file=sys.stderr, flush=True)
    wall = time.perf_counter() - t0
    out = {"size": shape[0], "level": chosen["level"], "cell": chosen["cell"],
           "n_cells": chosen["n_cells"], "steps": n, "epoch_steps": per_epoch,
           "step_ms": wall / n * 1e3, "read_ms": read_s / n * 1e3,
           "epoch_s": wall / n * per_epoch, "measured_epoch": n == per_epoch,
           "rss_train_gib": rss_gib()}
    if evaluate:
        t0 = time.perf_counter()
        got = stream_evaluate(model, signal, out=path.with_suffix(".pred.npy"))
        out.update(eval_s=time.perf_counter() - t0, eval_psnr=got["psnr"], rss_gib=rss_gib())
        path.with_suffix(".pred.npy").unlink()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="8192,32768")
    ap.add_argument("--steps", type=int, default=20, help="steps of the epoch timed; 0: all")
    ap.add_argument("--eval", action="store_true", help="also a streamed full render")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child), args.steps, args.eval)))
        return
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        path = Path(args.dir) / f"gigapixel_{size}.npy"
        need = size * size * 3 * (2 if args.eval else 1)
        if shutil.disk_usage(args.dir).free < need * 1.2:
            sys.exit(f"{args.dir} has too little free space for a {size}x{size} RGB signal "
                     f"({need / 1e9:.1f} GB); pick another --dir")
        try:
            t0 = time.perf_counter()
            write_signal(path, size)
            write_s = time.perf_counter() - t0
            cmd = [sys.executable, __file__, "--child", str(path), "--steps", str(args.steps),
                   *(["--eval"] if args.eval else [])]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
            rows.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "write_s": write_s,
                         "file_gb": path.stat().st_size / 1e9})
        finally:
            path.unlink(missing_ok=True)
    print(f"Table 5's ASMR (6 x 512) fitted on memory-mapped uint8 RGB signals, ~{BATCH:,} "
          f"samples per step, on {machine()}")
    print(f"{'side':>6s} {'file GB':>8s} {'as float32 GiB':>15s} {'level':>6s} {'cell':>8s} "
          f"{'steps':>11s} {'step ms':>8s} {'read ms':>8s} {'epoch s':>14s} {'peak RSS GiB':>13s}")
    for r in rows:
        epoch = f"{r['epoch_s']:.0f}" + ("" if r["measured_epoch"] else " (proj.)")
        print(f"{r['size']:6d} {r['file_gb']:8.2f} {r['size'] ** 2 * 12 / 2**30:15.2f} "
              f"{r['level']:6d} {'x'.join(map(str, r['cell'])):>8s} "
              f"{r['steps']:5d}/{r['epoch_steps']:<5d} {r['step_ms']:8.0f} {r['read_ms']:8.1f} "
              f"{epoch:>14s} {r['rss_train_gib']:13.2f}")
        if "eval_s" in r:
            print(f"{'':6s} streamed full render: {r['eval_s']:.0f} s, PSNR {r['eval_psnr']:.2f} "
                  f"dB, peak RSS {r['rss_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
