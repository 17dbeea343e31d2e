"""One full-image training step (forward, backward, Adam) of ASMR(4) on Cameraman 512x512:
the activation-sharing path (``render``) against the naive per-sample forward of the same
model on every pixel. Target here: at most 60 ms per shared step (10k steps < 10 minutes).

    python benchmarks/train_step.py [--repeats 10]
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from common import device, machine, median_ms

from inrbench.data import create_datamodule
from inrbench.models import create_model, make_grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    dev = device()
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

    print(f"ASMR(4) full-image training step, Cameraman {shape}, on {machine()}")
    shared = median_ms(lambda: step(lambda: model.render(shape)), repeats=args.repeats)
    naive = median_ms(lambda: step(lambda: model(grid)), repeats=max(3, args.repeats // 3),
                      warmup=1)
    print(f"activation-sharing step  {shared:8.1f} ms  (10k steps ~ {shared * 10:.0f} s)")
    print(f"per-sample forward step  {naive:8.1f} ms")
    print(f"speed-up                 {naive / shared:8.1f}x")


if __name__ == "__main__":
    main()
