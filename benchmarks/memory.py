"""Peak resident memory of fitting a megapixel photo with ASMR on CPU.

The ASMR paper's megapixel setting (appendix E): 6 layers x 512 units, nonlinear modulators
(3-layer, 32-unit SIRENs), 2^18 random pixels per step. Signal: the 6028x3391 photo shipped
in ``datasets/samples/images`` (the offline stand-in for Pluto), cropped to 3375x6000 so both
sides factorise into small bases (3^3 5^3 and 2^4 3 5^3).

Every configuration runs in its own process (peak RSS = ``ru_maxrss``, never reset within a
process) through the real code path: the ``image`` data module with ``sampling: random``,
``FitTask`` and a Lightning ``Trainer``:

- ``micro=262144``: one autograd pass over the 2^18 pixels of a step. The per-sample forward
  keeps, per hidden layer, the sine's input and output for backward: 2 x 2^18 x 512 x 4 B =
  1 GiB per layer, ~5 GiB for the 5 hidden layers, so this cannot stay under 4 GiB.
- ``micro=32768`` (default): the same 2^18-pixel step as 8 micro-batches whose gradients are
  accumulated before the one optimizer step (``accumulate_grad_batches=8``). MSE is a mean
  over pixels, so the accumulated gradient is the 2^18-pixel gradient (up to float
  summation order); activations are 8x smaller.
- ``render``: one full activation-sharing render of the photo in ``EVAL_CHUNK`` pieces (what
  evaluation and the final reconstruction do).

    python benchmarks/memory.py                     # micro-batched fit, 3 steps (< 4 GiB)
    python benchmarks/memory.py --only single --only render   # the two that need more

Measured on the 2-core CPU box (Nov 2026, torch 2.13): micro-batched 2^18-pixel steps peak at
1.67 GiB RSS (0.68 GiB of it the photo as float32 plus the model); the single 2^18 pass at
7.37 GiB. One full render in one piece took 11.5 GiB (the last hidden level has 675x1200
cells x 512 units, and the fused output layer concatenates sin/cos of them); rendered in
2^20-sample pieces (``EVAL_CHUNK``, as evaluation now does) it peaks at 1.52 GiB (34 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

LIMIT_GIB = 4.0
BATCH = 2 ** 18
CROP = [3375, 6000]


def rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # KiB on Linux


def build(steps_per_epoch: int, micro: int):
    from inrbench.data import create_datamodule
    from inrbench.data.fetch import sample_file
    from inrbench.models import create_model

    dm = create_datamodule("image", path=str(sample_file("images/Kleiber_by_Lukas_Baubkus.jpg")),
                           crop=CROP, sampling="random", batch_size=micro,
                           steps_per_epoch=steps_per_epoch)
    spec = dm.spec()
    dm.setup()
    model = create_model("asmr", in_features=2, out_features=3, signal_shape=spec.shape,
                         hidden_dim=512, n_layers=6, modulator="nonlinear")
    return dm, spec, model


def worker_fit(steps: int, micro: int) -> dict:
    import lightning as L

    from inrbench.tasks import FitTask

    accumulate = BATCH // micro
    dm, spec, model = build(steps * accumulate, micro)
    after_setup = rss_gib()
    task = FitTask(model, spec, lr=1e-4, lr_min=1e-6, steps=steps)
    times = []

    class Timer(L.Callback):
        def on_train_batch_start(self, *a):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, *a):
            times.append(time.perf_counter() - self.t0)

    trainer = L.Trainer(max_steps=steps, max_epochs=-1, accumulate_grad_batches=accumulate,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, accelerator="cpu", callbacks=[Timer()])
    trainer.fit(task, datamodule=dm)
    losses = [row["loss"] for row in task.history]
    return {"mode": "fit", "micro_batch": micro, "accumulate": accumulate,
            "pixels_per_step": micro * accumulate, "optimizer_steps": int(trainer.global_step),
            "signal": list(spec.shape), "params": model.n_params, "bases": model.bases,
            "rss_after_data_and_model_gib": round(after_setup, 3),
            "peak_rss_gib": round(peak_gib(), 3),
            "seconds_per_step": round(sum(times) / max(int(trainer.global_step), 1), 1),
            "loss_first_last": [round(losses[0], 5), round(losses[-1], 5)]}


def worker_render() -> dict:
    import torch

    from inrbench.models.base import EVAL_CHUNK

    dm, spec, model = build(1, BATCH)
    after_setup = rss_gib()
    t0 = time.perf_counter()
    with torch.no_grad():
        pred = model.render(chunk=EVAL_CHUNK)
    seconds = time.perf_counter() - t0
    return {"mode": "render", "signal": list(spec.shape), "output": list(pred.shape),
            "rss_after_data_and_model_gib": round(after_setup, 3),
            "peak_rss_gib": round(peak_gib(), 3), "seconds": round(seconds, 1)}


def run_worker(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    for line in reversed(out.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (out.stderr or out.stdout).strip().splitlines()[-3:]
    return {"mode": " ".join(args), "error": f"exit {out.returncode}: {' | '.join(tail)}"}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=3, help="optimizer steps per fit (default 3)")
    p.add_argument("--micro", type=int, default=32768, help="micro-batch (divides 2^18)")
    p.add_argument("--only", choices=["micro", "single", "render"], action="append")
    p.add_argument("--timeout", type=float, default=3600)
    p.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker is not None:
        kind = a.worker[0]
        result = worker_render() if kind == "render" else worker_fit(int(a.worker[1]),
                                                                     int(a.worker[2]))
        print(json.dumps(result))
        return 0
    if BATCH % a.micro:
        p.error(f"--micro must divide 2^18 = {BATCH}")
    jobs = {"micro": ["fit", str(a.steps), str(a.micro)],
            "single": ["fit", str(a.steps), str(BATCH)], "render": ["render"]}
    failed = False
    for name in a.only or ["micro"]:
        result = run_worker(jobs[name], a.timeout)
        peak = result.get("peak_rss_gib")
        if peak is not None:
            result["under_4_gib"] = peak < LIMIT_GIB
        print(json.dumps(result), flush=True)
        failed |= name == "micro" and not result.get("under_4_gib", False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
