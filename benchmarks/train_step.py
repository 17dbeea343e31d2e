"""Training-step cost of ASMR with activation sharing against its per-sample forward.

Part 1 (``--part full``): one full-image step (forward, backward, Adam) of ASMR(4) on
Cameraman 512x512, ``render`` against the per-sample forward on every pixel.

Part 2 (``--part blocks``, issue 9): Table 5's ASMR (6 x 512, bases [4,4,4,4,4,8] per axis)
on an 8192x8192 RGB signal, 2^18 samples per step. A whole optimizer step -- drawing the
samples from the signal, forward, backward, Adam -- with block sampling (random level-k cells,
``forward_cells``) against random sampling through the per-sample forward, on the same
number of samples. Prints the ratio, the wall time of one epoch (every pixel once, 256 steps)
and the peak RSS. The signal is a synthetic smooth image (the cost does not depend on the
pixel values; the real Pluto image cannot be downloaded here).

    python benchmarks/train_step.py [--part full,blocks] [--repeats 10]
"""

from __future__ import annotations

import argparse
import math
import resource

import torch
import torch.nn.functional as F
from common import device, machine, median_ms

from inrbench.data import create_datamodule
from inrbench.data.base import RandomBlocks, RandomSamples, choose_cells
from inrbench.models import create_model, make_grid

TABLE5_BASES = [[4, 4, 4, 4, 4, 8], [4, 4, 4, 4, 4, 8]]


def full_image(dev, repeats: int) -> None:
    dm = create_datamodule("cameraman")
    dm.setup()
    target = dm.signal.to(dev)
    shape = tuple(target.shape[:2])
    torch.manual_seed(0)
    model = create_model("asmr", signal_shape=shape, n_layers=4, hidden_dim=256,
                         bases=[4, 4, 4, 8]).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    grid = make_grid(shape, device=dev)

    def step(predict):
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(predict(), target)
        loss.backward()
        opt.step()

    print(f"\n[full] ASMR(4) full-image training step, Cameraman {shape}")
    shared = median_ms(lambda: step(lambda: model.render(shape)), repeats=repeats)
    naive = median_ms(lambda: step(lambda: model(grid)), repeats=max(3, repeats // 3),
                      warmup=1)
    print(f"activation-sharing step  {shared:8.1f} ms  (10k steps ~ {shared * 10:.0f} s)")
    print(f"per-sample forward step  {naive:8.1f} ms")
    print(f"speed-up                 {naive / shared:8.1f}x")


def synthetic_signal(size: int) -> torch.Tensor:
    """A smooth RGB image ``(size, size, 3)`` in [0, 1], built row band by row band."""
    x = torch.linspace(0, 1, size)
    out = torch.empty(size, size, 3)
    for c in range(3):
        col = 0.5 + 0.25 * torch.sin((c + 2) * 6.28 * x)
        for r0 in range(0, size, 1024):
            rows = x[r0:r0 + 1024, None]
            out[r0:r0 + 1024, :, c] = col[None, :] * (0.6 + 0.4 * torch.cos((c + 3) * rows))
    return out


def blocks(dev, repeats: int, per_sample_repeats: int, size: int) -> None:
    batch = 2**18
    signal = synthetic_signal(size)
    shape = (size, size)
    bases = TABLE5_BASES if size == 8192 else None
    torch.manual_seed(0)
    model = create_model("asmr", signal_shape=shape, out_features=3, n_layers=6,
                         hidden_dim=512, bases=bases).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    level, cell, n_cells = choose_cells(model.cell_shapes(), batch)
    steps_per_epoch = math.ceil(size * size / batch)
    block_ds = RandomBlocks(signal, shape, cell, n_cells, steps_per_epoch, seed=0, level=level)
    random_ds = RandomSamples(signal, shape, batch, steps_per_epoch, seed=0)
    it = iter(range(10**9))

    def step(ds, predict):
        b = ds[next(it) % steps_per_epoch]
        opt.zero_grad(set_to_none=True)
        loss = F.mse_loss(predict(b), b["values"].to(dev))
        loss.backward()
        opt.step()

    def shared(b):
        return model.forward_cells(b["cells"], b["level"]).reshape(-1, 3)

    print(f"\n[blocks] Table 5's ASMR (6 x 512, bases {model.bases[0]} per axis), "
          f"{size}x{size} RGB, {batch:,} samples per step")
    print(f"block sampling: {n_cells} random level-{level} cells of {cell[0]}x{cell[1]} "
          f"per step")
    t_block = median_ms(lambda: step(block_ds, shared), repeats=repeats)
    # high-water mark before the per-sample path, whose activations need several GiB
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t_naive = median_ms(lambda: step(random_ds, lambda b: model(b["coords"].to(dev))),
                        repeats=per_sample_repeats, warmup=1)
    epoch_s = t_block * steps_per_epoch / 1e3
    print(f"block-sampled step (sampling, fwd, bwd, Adam)  {t_block:9.1f} ms")
    print(f"per-sample random step (same)                  {t_naive:9.1f} ms")
    print(f"speed-up                                       {t_naive / t_block:9.1f}x")
    print(f"one epoch ({steps_per_epoch} steps, every pixel once)  "
          f"{epoch_s:9.1f} s  (per-sample: {t_naive * steps_per_epoch / 6e4:.1f} min)")
    print(f"peak RSS, signal + block-sampled training       {rss:9.2f} GiB")
    rss_all = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"peak RSS after the per-sample steps too         {rss_all:9.2f} GiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", default="full,blocks")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--per-sample-repeats", type=int, default=2)
    ap.add_argument("--size", type=int, default=8192, help="side of the blocks signal")
    args = ap.parse_args()
    dev = device()
    print(f"on {machine()}")
    parts = args.part.split(",")
    if "full" in parts:
        full_image(dev, args.repeats)
    if "blocks" in parts:
        blocks(dev, args.repeats, args.per_sample_repeats, args.size)


if __name__ == "__main__":
    main()
