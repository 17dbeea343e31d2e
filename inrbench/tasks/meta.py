"""Meta-learning one network over a data set of images with per-instance latent shift
modulations: COIN++ (Dupont et al. 2022), as the ASMR paper runs it (sec. 4.4, appendix I).

Each image i has a latent z_i in R^D, zeros at the start of every inner loop, mapped by one
linear layer to shifts phi_i = W_phi z_i + b_phi, one per hidden layer (hidden x (layers - 1)
values; ``inrbench.models.modulated``). The prediction is ``f_theta(x; phi_i) + 0.5`` (COIN++
adds 0.5 so a zero network starts at mid-grey for targets in [0, 1]).

Inner loop (encoding), k SGD steps on the latents only, on each image's own mean MSE:

    z_i <- z_i - inner_lr * grad_{z_i} mean_{x,c} (f_theta(x; phi(z_i)) - y_i)^2

Outer loop: Adam(outer_lr) on every shared weight (theta and the latent map) on the batch's
mean of the per-image MSE after the k inner steps, differentiated *through* the inner loop
(second order, as COIN++'s ``create_graph=True``): the inner gradient is ``torch.func.grad``,
whose result stays differentiable with respect to the shared weights.

Evaluation as COIN++ reports it: on test images, PSNR after k inner steps (mean and std over
images of -10 log10 of the per-image MSE; predictions not clamped, as COIN++), the encoding
curve (PSNR after 1..``curve_steps`` steps), seconds per image to encode (k steps) and to decode
(one render), MACs per pixel, and a reconstruction grid (originals, then after k steps).
How many test images (``task.eval_images``, ``auto``: the whole split for runs of 1,000 steps
or more, else 8), the curve's length (``task.curve_steps``, ``auto``: 10, or k for a shorter
run) and the images per forward pass (``task.image_chunk``, in training and evaluation alike):
``inrbench.tasks.evalset``. Images per outer step (``task.step_images``, ``auto``: the
asked ``data.batch_size`` from 1,000 steps on, proportionally fewer for a shorter run):
``inrbench.tasks.stepimages``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import lightning as L
import torch
from torch.func import grad

from inrbench.data.base import SignalSpec
from inrbench.data.images import ImageSetDataModule
from inrbench.errors import ConfigError
from inrbench.io import atomic_write_bytes, atomic_write_json
from inrbench.models.base import model_label
from inrbench.models.modulated import LatentToShift, check_shiftable, render_shifted, shift_layout
from inrbench.profiling import sync_device
from inrbench.registry import register_task
from inrbench.tasks.evalset import (
    Progress,
    check_chunk,
    chunked_mean,
    eval_record,
    resolve_curve_steps,
    split,
)
from inrbench.tasks.fit import RunHistory
from inrbench.tasks.imageset import (
    eval_batch,
    image_set_data,
    mse_to_psnr,
    npz_bytes,
    save_grid,
)
from inrbench.tasks.stepimages import StepImages

#: COIN++'s output offset (targets in [0, 1])
OUTPUT_OFFSET = 0.5


class MetaTask(RunHistory, L.LightningModule):
    """COIN++-style meta-learning of ``model`` (a SIREN, ASMR or Instant-NGP)."""

    def __init__(self, model: torch.nn.Module, spec: SignalSpec, latent_dim: int = 128,
                 inner_steps: int = 3, inner_lr: float = 1e-2, outer_lr: float = 3e-6,
                 curve_steps: int = 10, grid_images: int = 8, image_chunk: int | None = None):
        super().__init__()
        check_shiftable(model, model_label(model))
        for key, value in (("latent_dim", latent_dim), ("inner_steps", inner_steps),
                           ("curve_steps", curve_steps)):
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"task.{key} must be a positive integer, got {value!r}")
        for key, value in (("inner_lr", inner_lr), ("outer_lr", outer_lr)):
            if not value > 0:
                raise ConfigError(f"task.{key} must be a positive number, got {value!r}")
        self.model, self.spec = model, spec
        layers, width = shift_layout(model)
        self.latent_map = LatentToShift(latent_dim, layers, width)
        self.latent_dim, self.inner_steps, self.inner_lr = latent_dim, inner_steps, inner_lr
        self.outer_lr, self.curve_steps, self.grid_images = outer_lr, curve_steps, grid_images
        self.image_chunk = check_chunk(image_chunk)
        self.eval_setting = None  # task.eval_images as given, for the record
        self.best = {"psnr": -math.inf, "step": -1}
        self.history: list[dict] = []
        self.evals: list[dict] = []
        self._val: list[torch.Tensor] = []
        self.train_data: ImageSetDataModule | None = None
        self.step: StepImages | None = None  # images per step (build_meta)
        self.steps: int | None = None  # the run's length (build_meta)

    # -- the model of a batch ------------------------------------------------------------
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents ``(B, D)`` -> images ``(B, *shape, C)``."""
        return render_shifted(self.model, self.latent_map(latents), self.spec.shape) \
            + OUTPUT_OFFSET

    def per_image_mse(self, latents: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return (self.decode(latents) - images).pow(2).flatten(1).mean(1)

    def encode(self, images: torch.Tensor, steps: int | None = None,
               trace: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``steps`` inner SGD steps from zero latents. Returns the latents and, with
        ``trace``, the per-image MSE before each step (the loss the step descends).

        The sum of per-image MSEs makes each latent's gradient its own image's gradient,
        independent of the batch size (COIN++ multiplies its batch mean by the batch size)."""
        steps = self.inner_steps if steps is None else steps

        def inner(z):
            mse = self.per_image_mse(z, images)
            return mse.sum(), mse.detach()

        z = images.new_zeros(images.shape[0], self.latent_dim)
        losses = []
        for _ in range(steps):
            g, mse = grad(inner, has_aux=True)(z)
            if trace:
                losses.append(mse)
            z = z - self.inner_lr * g
        return z, losses

    # -- Lightning ----------------------------------------------------------------------
    def configure_optimizers(self):
        # all shared weights: the backbone and the latent -> shift map (COIN++ training.py)
        return torch.optim.Adam(self.parameters(), lr=self.outer_lr)

    def training_step(self, batch, batch_idx):
        images = batch["images"]
        loss, mse = chunked_mean(lambda x: self.per_image_mse(self.encode(x)[0], x), images,
                                 self.image_chunk, list(self.parameters()))
        psnr = mse_to_psnr(mse).mean()
        # on the device until the logging interval (RunHistory.flush_history): no host read
        # per step
        self.history.append({"step": int(self.global_step), "loss": loss.detach(),
                             "psnr": psnr.detach(), "lr": self.outer_lr})
        self.log_step(loss=loss, psnr=psnr)
        return loss

    def validation_step(self, batch, batch_idx):
        # Lightning validates in inference mode, which torch.func.grad cannot run in; under
        # no_grad the inner gradients are still computed (a function transform ignores an
        # outer no_grad) but no graph to the shared weights is kept (COIN++'s
        # create_graph=False at validation)
        if self.skip_final_validation():
            return
        with torch.inference_mode(False), torch.no_grad():
            for images in split(batch["images"].clone(), self.image_chunk):
                latents, _ = self.encode(images)
                self._val.append(mse_to_psnr(self.per_image_mse(latents, images)).cpu())
                self._progress.update(len(images))

    def on_validation_epoch_start(self):
        self._progress = Progress("validation", self.train_data.eval_images)

    def on_validation_epoch_end(self):
        row = self.close_val_epoch()
        if row is None:
            return
        self.log_dict({"val/psnr": row["val_psnr"], "val/psnr_std": row["val_psnr_std"]},
                      prog_bar=True)

    # -- final evaluation (the runner merges it into metrics.json) ------------------------
    def evaluate_set(self, images: torch.Tensor, chunk: int | None) -> dict:
        """Encoding curve, PSNR at k, timings; per-image arrays for the grid. ``chunk``
        images at a time (all at once: None); a progress line while it runs."""
        device = next(self.parameters()).device
        self.eval()
        steps = max(self.curve_steps, self.inner_steps)
        with torch.no_grad():  # inner gradients only, no graph to the weights (validation_step)
            return self._evaluate_set(images, chunk, steps, device)

    def _evaluate_set(self, images, chunk, steps, device) -> dict:
        curve, at_k, recon, enc_s, dec_s = [], [], [], 0.0, 0.0
        progress = Progress("meta-learning evaluation", len(images))
        for x in split(images, chunk):
            x = x.to(device)
            # PSNR after s steps = the loss before step s + 1, so one run of steps + 1 steps
            # traced gives the whole curve 1..steps (the extra step's update is not used)
            z, losses = self.encode(x, steps + 1, trace=True)
            curve.append(torch.stack([mse_to_psnr(m) for m in losses[1:]], dim=1).cpu())
            sync_device(device)
            t0 = time.perf_counter()
            zk, _ = self.encode(x)
            sync_device(device)
            enc_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            pred = self.decode(zk)
            sync_device(device)
            dec_s += time.perf_counter() - t0
            at_k.append(mse_to_psnr((pred - x).pow(2).flatten(1).mean(1)).cpu())
            if sum(len(r) for r in recon) < self.grid_images:
                recon.append(pred.detach().cpu())
            progress.update(len(x))
        curve_t, psnr_k = torch.cat(curve), torch.cat(at_k)
        n = len(images)
        return {
            "psnr": float(psnr_k.mean()), "psnr_std": float(psnr_k.std(unbiased=False)),
            "psnr_per_image": psnr_k, "inner_steps": self.inner_steps,
            "encoding_curve": [float(v) for v in curve_t.mean(0)],
            "encoding_curve_std": [float(v) for v in curve_t.std(0, unbiased=False)],
            "encode_s_per_image": enc_s / n, "decode_s_per_image": dec_s / n,
            "eval_images": n, "reconstructions": torch.cat(recon)[: self.grid_images],
        }

    def summary(self, datamodule, out: Path) -> dict:
        data: ImageSetDataModule = self.train_data
        test = data.test_images()
        result = self.evaluate_set(test, self.image_chunk or eval_batch(self.step, data))
        result.update(eval_record(len(test), len(data.set.test), self.eval_setting))
        recon = result.pop("reconstructions")
        per_image = result.pop("psnr_per_image")
        self.record_final_validation(per_image)
        originals = test[: len(recon)]
        save_grid(out / "reconstruction.png", originals, recon)
        buffer = npz_bytes(originals=originals.numpy(), reconstructions=recon.clamp(0, 1).numpy(),
                      psnr=per_image.numpy())
        atomic_write_bytes(out / "reconstructions.npz", buffer)
        atomic_write_json(out / "encoding_curve.json", {
            "steps": list(range(1, len(result["encoding_curve"]) + 1)),
            "psnr": result["encoding_curve"], "psnr_std": result["encoding_curve_std"]})
        npix = math.prod(self.spec.shape)
        if self.best["psnr"] < result["psnr"]:
            self.best = {"psnr": result["psnr"], "step": int(self.global_step)}
        return {
            **result, "best_psnr": self.best["psnr"], "best_step": self.best["step"],
            "lr": self.outer_lr, "outer_lr": self.outer_lr, "inner_lr": self.inner_lr,
            "latent_dim": self.latent_dim, "batch_size": data.batch_size,
            **(self.step.record() if self.step else {}),
            "image_chunk": self.image_chunk, "curve_steps": self.curve_steps,
            "n_shifts": self.latent_map.layers * self.latent_map.width,
            "macs_per_pixel": float(self.model.macs_per_sample()),
            # the latent -> shift map runs once per image; spread over its pixels
            "latent_map_macs_per_pixel": self.latent_dim * self.latent_map.layers
            * self.latent_map.width / npix,
            "epochs": int(self.global_step) / data.steps_per_epoch,
            "steps_per_epoch": data.steps_per_epoch,
            **data.set.record(),
        }


@register_task("meta")
def build_meta(model, spec, datamodule, seed: int, data_name: str, steps: int = 10_000,
               eval_every: int = 1000, accumulate: int = 1, latent_dim: int = 128,
               inner_steps: int = 3, inner_lr: float = 1e-2, outer_lr: float = 3e-6,
               eval_images: int | str | None = "auto", curve_steps: int | str = "auto",
               grid_images: int = 8, image_chunk: int | None = None,
               step_images: int | str | None = "auto"):
    """Meta-learning over a data set of images; the keys of ``conf/task/meta.yaml``
    (``eval_images``, ``curve_steps``, ``image_chunk``: ``inrbench.tasks.evalset``;
    ``step_images``: ``inrbench.tasks.stepimages``)."""
    train_data, step = image_set_data(datamodule, spec, data_name, "meta", seed, eval_images,
                                      steps, step_images, accumulate)
    task = MetaTask(model, spec, latent_dim=latent_dim, inner_steps=inner_steps,
                    inner_lr=inner_lr, outer_lr=outer_lr,
                    curve_steps=resolve_curve_steps(curve_steps, steps, inner_steps),
                    grid_images=grid_images, image_chunk=image_chunk)
    task.eval_setting = eval_images
    task.steps, task.eval_every, task.accumulate = steps, eval_every, step.accumulate
    task.train_data, task.step = train_data, step
    step.announce(steps)
    return task
