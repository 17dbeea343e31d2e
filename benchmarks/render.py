"""Full-signal render latency of SIREN(4) and ASMR(4) on a 512x768 RGB signal (Kodak size).

Target (2 CPU cores): ASMR at least 20x faster than SIREN. Both are timed side by side in
this run (median of N renders after warm-up, inference mode); the MAC ratio is printed
beside the time ratio so the two can be compared.

    python benchmarks/render.py [--repeats 10]
"""

from __future__ import annotations

import argparse

import torch
from common import device, machine, median_ms

from inrbench.models import create_model
from inrbench.profiling import profile

SHAPE, CHANNELS = (512, 768), 3


def models():
    yield "SIREN(4)", create_model("siren", out_features=CHANNELS, n_layers=4, hidden_dim=256)
    yield "ASMR(4)", create_model("asmr", out_features=CHANNELS, signal_shape=SHAPE, n_layers=4,
                                  hidden_dim=256, bases=[[4, 4, 4, 8], [4, 4, 6, 8]])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    dev = device()
    print(f"render {SHAPE[0]}x{SHAPE[1]}x{CHANNELS} on {machine()}")
    rows = []
    for name, model in models():
        stats = profile(model, SHAPE)
        model = model.to(dev).eval()
        with torch.inference_mode():
            ms = median_ms(lambda m=model: m.render(SHAPE), repeats=args.repeats)
        rows.append((name, stats, ms))
    base = rows[0]
    print(f"{'model':10s} {'params':>9s} {'MACs/px':>10s} {'median ms':>10s} "
          f"{'speed-up':>9s} {'MAC ratio':>10s}")
    for name, stats, ms in rows:
        print(f"{name:10s} {stats['params']:9,d} {stats['macs']:10,.1f} {ms:10.1f} "
              f"{base[2] / ms:8.1f}x {base[1]['macs'] / stats['macs']:9.1f}x")


if __name__ == "__main__":
    main()
