"""Block-sampled training step of Table 5's ASMR at every cell level: wall time beside the
MAC cost that :mod:`inrbench.blocks` chooses the default level by.

Table 5's ASMR (6 x 512, linear modulators) on an RGB signal of ``--shape`` (default the
3375x6000 Pluto stand-in that ``inrbench run --model asmr --data pluto`` serves offline,
bases derived for it as the run derives them; 8192,8192 takes the paper's bases), 2^18
samples per step. For each level whose cells fit the step: one whole optimizer step
(drawing the cells from the signal, ``forward_cells``, backward, Adam), median of
``--repeats`` after a warm-up, all levels timed side by side in this one process, with
``block_step_macs`` per sample and both figures as ratios to the cheapest level. The
signal is synthetic (the cost does not depend on pixel values). The level marked ``*`` is
the one the default rule picks (``data.block_cost``, default 1.25, and ``data.block_cells``,
default 256).

    python benchmarks/block_levels.py [--shape 3375,6000] [--repeats 3] [--block-cost 1.25]
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from common import device, machine, median_ms

from inrbench.blocks import choose_level, level_costs
from inrbench.config.experiment import load_experiment
from inrbench.data.base import RandomBlocks
from inrbench.models import create_model

BATCH = 2**18


def table5_asmr(shape) -> torch.nn.Module:
    exp = load_experiment("table5")
    row = next(r for r in exp.rows if r["id"] == "asmr")
    kwargs = {k: v for k, v in row["model"].items() if k != "name"}
    if list(shape) != list(exp.signal["shape"]):
        kwargs["bases"] = None  # derived for this shape, as a run on a stand-in derives them
    torch.manual_seed(0)
    return create_model("asmr", in_features=2, out_features=3, signal_shape=list(shape),
                        **kwargs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="3375,6000")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--block-cost", type=float, default=1.25)
    args = ap.parse_args()
    shape = tuple(int(n) for n in args.shape.split(","))
    dev = device()
    model = table5_asmr(shape).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    signal = torch.rand(*shape, 3)
    costs = level_costs(model, BATCH)
    chosen = choose_level(costs, args.block_cost)["level"]  # data.block_cells at its default
    steps = {}
    for c in costs:
        per_epoch = math.ceil(math.prod(shape) / (c["n_cells"] * math.prod(c["cell"])))
        ds = RandomBlocks(signal, shape, c["cell"], c["n_cells"], per_epoch, seed=0,
                          level=c["level"])
        it = iter(range(10**9))

        def step(ds=ds, per_epoch=per_epoch, it=it):
            b = ds[next(it) % per_epoch]
            opt.zero_grad(set_to_none=True)
            pred = model.forward_cells(b["cells"].to(dev), b["level"]).reshape(-1, 3)
            F.mse_loss(pred, b["values"].to(dev)).backward()
            opt.step()

        steps[c["level"]] = median_ms(step, repeats=args.repeats, warmup=1)
    print(f"Table 5's ASMR (6 x 512, bases {model.bases}), {shape[0]}x{shape[1]} RGB, "
          f"~{BATCH:,} samples per step, on {machine()}")
    cheap = min(c["macs_per_sample"] for c in costs)
    fast = min(steps[c["level"]] / (c["n_cells"] * math.prod(c["cell"])) for c in costs)
    print(f"{'level':>6s} {'cell':>10s} {'cells':>7s} {'samples':>9s} {'MACs/sample':>12s} "
          f"{'MAC ratio':>10s} {'step ms':>9s} {'us/sample':>10s} {'time ratio':>11s}")
    for c in costs:
        n = c["n_cells"] * math.prod(c["cell"])
        ms = steps[c["level"]]
        mark = "*" if c["level"] == chosen else " "
        print(f"{c['level']:>5d}{mark} {'x'.join(map(str, c['cell'])):>10s} {c['n_cells']:7,d} "
              f"{n:9,d} {c['macs_per_sample']:12,.0f} {c['macs_per_sample'] / cheap:9.2f}x "
              f"{ms:9.1f} {ms * 1e3 / n:10.3f} {ms / n / fast:10.2f}x")
    print(f"* the default level: the finest within data.block_cost={args.block_cost:g}x of the "
          f"cheapest level's MACs per sample, or a finer one for >= 256 cells per step "
          f"(data.block_cells)")


if __name__ == "__main__":
    main()
