"""Evaluation render of Table 5's ASMR on the 20-megapixel Pluto stand-in against its MAC floor.

The floor is the render's measured MACs (matrix products, ``inrbench.profiling.measured_macs``)
divided by this machine's matmul rate, measured in the same process just before on a product
of the render's own inner shape (rows x 512 @ 512 x 512, float32). A render within 2x of the
floor spends its time on the products; more means elementwise work (sines, the broadcast
adds) or memory traffic dominates. The render is ``model.render(shape, chunk=EVAL_CHUNK)``, as
the runner's evaluations call it (without autograd: ``render_no_grad``), timed side by side
with the autograd path (``model.render_autograd``, what the render was before), alternating
the two, median of ``--repeats`` after one warm-up each; the two outputs are compared too.

    python benchmarks/render_pluto.py [--shape 3375,6000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import torch
from block_levels import table5_asmr
from common import device, machine, median_ms

from inrbench.models.base import EVAL_CHUNK
from inrbench.profiling import measured_macs


def matmul_rate(dev, rows: int = 2**16, width: int = 512) -> float:
    """Multiply-accumulates per second of a (rows x width) @ (width x width) float32 product."""
    a, b = torch.randn(rows, width, device=dev), torch.randn(width, width, device=dev)
    ms = median_ms(lambda: a @ b, repeats=10, warmup=3)
    return rows * width * width / (ms / 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="3375,6000")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    shape = tuple(int(n) for n in args.shape.split(","))
    dev = device()
    model = table5_asmr(shape).to(dev).eval()
    macs = measured_macs(model, shape) * math.prod(shape)
    rate = matmul_rate(dev)
    paths = {"no-grad render (model.render)": lambda: model.render(shape, chunk=EVAL_CHUNK),
             "autograd path (render_autograd)": lambda: model.render_autograd(EVAL_CHUNK)}
    times = {name: [] for name in paths}
    with torch.inference_mode():
        new, old = (fn() for fn in paths.values())  # warm-up, and the outputs compared
        diff = float((new - old).abs().max())
        del new, old
        for _ in range(args.repeats):
            for name, fn in paths.items():
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1e3)
    floor_ms = macs / rate * 1e3
    print(f"Table 5's ASMR render of {shape[0]}x{shape[1]} RGB ({math.prod(shape) / 1e6:.1f} MP) "
          f"on {machine()}")
    print(f"measured MACs        {macs / 1e9:10.1f} G  ({macs / math.prod(shape):,.0f} per sample)")
    print(f"matmul rate          {rate / 1e9:10.1f} GMAC/s (rows x 512 @ 512 x 512)")
    print(f"MAC floor            {floor_ms / 1e3:10.1f} s")
    for name, t in times.items():
        ms = statistics.median(t)
        print(f"{name:32s} {ms / 1e3:8.1f} s = {ms / floor_ms:.2f}x the floor "
              f"(median of {args.repeats}: {', '.join(f'{x / 1e3:.1f}' for x in t)})")
    print(f"max |difference| of the two renders: {diff:.2e}")


if __name__ == "__main__":
    main()
