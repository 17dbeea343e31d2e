"""Full-signal render latency of every model of the ASMR paper's Table 3 on one 512x768 RGB
signal (Kodak size), configured exactly as the rows of ``conf/experiment/table3.yaml``.

Target (2 CPU cores): ASMR at least 20x faster than SIREN. All models are timed side by side
in this run (median of N renders after warm-up, inference mode); params, MACs and the MAC
ratio to SIREN are printed beside the time ratio so the two can be compared.

    python benchmarks/render.py [--repeats 10] [--rows siren,asmr]
"""

from __future__ import annotations

import argparse

import torch
from common import device, machine, median_ms

from inrbench.build import build_model
from inrbench.config import row_config
from inrbench.config.experiment import load_experiment, select_rows
from inrbench.experiments import row_signal
from inrbench.profiling import profile


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rows", help="comma-separated Table 3 row ids (default: all)")
    args = ap.parse_args()
    exp = load_experiment("table3")
    rows = select_rows(exp, args.rows.split(",") if args.rows else None)
    dev = device()
    results = []
    for row in rows:
        cfg = row_config(exp, row)
        spec = row_signal(exp, row, cfg)
        torch.manual_seed(0)
        model = build_model(cfg, spec)
        stats = profile(model, spec.shape)
        model = model.to(dev).eval()
        with torch.inference_mode():
            # slow models get fewer repeats; each is still a median after a warm-up render
            slow = stats["macs_measured"] > 1e4
            ms = median_ms(lambda m=model, s=spec.shape: m.render(s),
                           repeats=max(3, args.repeats // 3) if slow else args.repeats,
                           warmup=1 if slow else 3)
        results.append((row.get("label", row["id"]), stats, ms, getattr(model, "backend", "")))
    print(f"render {spec.shape[0]}x{spec.shape[1]}x{spec.channels} on {machine()}")
    base = next((r for r in results if r[0] == "SIREN"), results[0])
    print(f"{'model':8s} {'params':>9s} {'MACs/px':>10s} {'measured':>10s} {'median ms':>10s} "
          f"{'speed-up vs SIREN':>18s} {'MAC ratio':>10s}")
    for name, stats, ms, _ in results:
        print(f"{name:8s} {stats['params']:9,d} {stats['macs']:10,.1f} "
              f"{stats['macs_measured']:10,.1f} {ms:10.1f} {base[2] / ms:17.1f}x "
              f"{base[1]['macs'] / stats['macs']:9.1f}x")


if __name__ == "__main__":
    main()
