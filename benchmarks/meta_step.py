"""One meta-learning outer step (issue 10; ASMR paper sec. 4.4, appendix I; COIN++ setting):
ASMR through its activation-sharing batch path against a SIREN of the same width and depth.

A step: zero latents (128) for a batch of 64 CIFAR-size images (32x32 RGB), 3 inner SGD steps on
the latents (``torch.func.grad``, the outer graph kept: second order), the outer loss, its
backward through the inner loop, and Adam on all shared weights -- ``MetaTask``'s own code, not
a copy. Models as Figure 5 gives them: ASMR 5 x 512, w0 50, bases [2,2,2,2,2] per axis;
SIREN 5 x 512 (same width and depth) and, for reference, COIN++'s SIREN 10 x 512, and
Instant-NGP (4 levels x 2, 2^16, base 2, scale 2, MLP 5 x 512). The images are the offline
stand-in set (the cost does not depend on the pixel values). Goal: ASMR >= 5x faster than the
SIREN of the same width and depth.

    python benchmarks/meta_step.py [--batch 64] [--inner 3] [--repeats 3] [--warmup 1]
                                   [--models asmr,siren5,siren10,ngp] [--json]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics

import torch
from common import device, elapsed_ms, machine

from inrbench.data.base import SignalSpec
from inrbench.models import create_model
from inrbench.tasks.meta import MetaTask

SPEC = SignalSpec((32, 32), 3)
MODELS = {
    "asmr": dict(name="asmr", signal_shape=[32, 32], hidden_dim=512, n_layers=5,
                 bases=[[2, 2, 2, 2, 2], [2, 2, 2, 2, 2]], omega0=50.0, first_omega0=50.0),
    "siren5": dict(name="siren", hidden_dim=512, n_layers=5, omega0=50.0, first_omega0=50.0),
    "siren10": dict(name="siren", hidden_dim=512, n_layers=10, omega0=50.0, first_omega0=50.0),
    "ngp": dict(name="ngp", n_levels=4, n_features_per_level=2, log2_hashmap_size=16,
                base_resolution=2, finest_resolution=None, per_level_scale=2.0, n_layers=5,
                hidden_dim=512),
}


def images(batch: int) -> torch.Tensor:
    from inrbench.data.cifar import standin_set

    return standin_set().train[:batch]


def outer_step(key: str, x: torch.Tensor, inner: int, dev):
    """One outer step of ``key`` as a closure, and the model's row facts."""
    torch.manual_seed(0)
    kwargs = dict(MODELS[key])
    model = create_model(kwargs.pop("name"), in_features=2, out_features=3, **kwargs).to(dev)
    task = MetaTask(model, SPEC, latent_dim=128, inner_steps=inner, inner_lr=1e-2,
                    outer_lr=3e-6).to(dev)
    opt = task.configure_optimizers()

    def step():
        latents, _ = task.encode(x)
        loss = task.per_image_mse(latents, x).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, {"model": key, "macs_per_pixel": float(model.macs_per_sample()),
                  "params": sum(p.numel() for p in task.parameters())}


def interleaved_ms(keys, x, inner: int, repeats: int, warmup: int, dev) -> list[dict]:
    """Median ms per outer step of each model, the models taking turns within every repeat,
    so a change in the machine's load during the run hits all of them alike (timing one model
    after the other let a shared CPU's load swing the ratio from 3.3x to 4.8x)."""
    steps = [outer_step(k, x, inner, dev) for k in keys]
    times: list[list[float]] = [[] for _ in keys]
    for r in range(warmup + repeats):
        for (step, _), t in zip(steps, times):
            ms = elapsed_ms(step)
            if r >= warmup:
                t.append(ms)
    return [{**row, "ms": statistics.median(t), "ms_all": t}
            for (_, row), t in zip(steps, times)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--inner", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--models", default="asmr,siren5", help=f"comma-separated of {list(MODELS)}")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    dev = device()
    x = images(args.batch).to(dev)
    rows = interleaved_ms(args.models.split(","), x, args.inner, args.repeats, args.warmup, dev)
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if args.json:
        print(json.dumps({"machine": machine(), "batch": args.batch, "inner": args.inner,
                          "rows": rows, "peak_rss_gib": peak_gib}))
        return
    print(f"one outer step: batch {args.batch} of 32x32 RGB, {args.inner} inner steps, "
          f"second order; {machine()}")
    base = {r["model"]: r["ms"] for r in rows}
    for r in rows:
        line = (f"  {r['model']:8s} {r['ms'] / 1e3:8.2f} s/step   MACs/pixel "
                f"{r['macs_per_pixel']:>11,.0f}   params {r['params']:>11,}")
        if "asmr" in base and r["model"] != "asmr":
            line += f"   ASMR is {r['ms'] / base['asmr']:.1f}x faster"
        print(line)
    print(f"  peak RSS {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
