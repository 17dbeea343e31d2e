"""Generating INRs in one forward pass (``--task hypernet``): ANR (Zhang et al., ECCV 2024,
arXiv 2407.15355) and its linear baseline, trained end to end over a data set of images.

For an image I of the batch, the hyper-network (``inrbench.models.hypernet``) emits raw tokens,
the decoder (``--model anr`` or ``transinr``, ``inrbench.models.anr``) turns them into the
instance and renders coordinates x on the pixel-centre grid::

    R = H_psi(I),   theta_I = represent(R),   loss = mean_x (f(x + eps; theta_I) - (2 I(x) - 1))^2

The target is the image in [-1, 1] (official ``ModelManager``), so PSNR = 10 log10(4 / MSE),
the [0, 1] PSNR. ``eps`` are the *variational coordinates* of training
(``model_manager.hypo_pred``, ``task.coord_noise``): eps = clip(0.3 / max(H, W) * N(0, 1),
+-0.5 / max(H, W)), a quarter-pixel jitter against aliasing when rendered denser; none at
evaluation. Adam(lr, betas (0.9, 0.99)) on every shared weight (hyper-network and decoder),
gradient norm clipped to ``task.grad_clip``, and an exponential moving average of the weights
(``ema_pytorch.EMA(beta=task.ema_decay, update_every=task.ema_every)`` as the official
``script/train_inr.py`` builds it, 0.995 every 10 steps) that all evaluation uses. As that
library does by default, the copy follows the weights for the first 100 steps and its decay
then warms up as ``min(beta, 1 - (1 + t)^(-2/3))``, t the steps after the 101st, so a short
run is not scored on weights that still remember their initialisation.

Evaluation on the test split: PSNR per image (mean and std), seconds per image to encode (one
forward pass of the hyper-network and ``represent``) and to decode (one render), MACs per pixel
of the decoder, of the per-instance set-up (ANR's keys and values) and of the hyper-network,
the size of the per-instance representation, a reconstruction grid and a super-resolution
render at ``task.sr_scale`` x the training resolution. How many test images
(``task.eval_images``, ``auto``: the whole split for runs of 1,000 steps or more, else 8) and
the images per forward pass (``task.image_chunk``, in training and evaluation alike, so peak
memory follows the chunk): ``inrbench.tasks.evalset``. Images per optimizer step
(``task.step_images``, ``auto``: the asked ``data.batch_size`` x ``task.accumulate`` from
1,000 steps on, proportionally fewer for a shorter run, the networks always the asked ones):
``inrbench.tasks.stepimages``.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import lightning as L
import torch
from torch import nn

from inrbench.data.base import SignalSpec
from inrbench.data.images import ImageSetDataModule
from inrbench.errors import ConfigError
from inrbench.io import atomic_write_bytes, atomic_write_json, write_png
from inrbench.models.anr import GeneratedINR, pixel_grid
from inrbench.models.base import model_label
from inrbench.models.hypernet import HyperNetwork, n_params
from inrbench.profiling import sync_device
from inrbench.registry import register_task
from inrbench.tasks.evalset import (
    Progress,
    check_chunk,
    chunked_mean,
    eval_record,
    resolve_sr_images,
    split,
)
from inrbench.tasks.fit import RunHistory
from inrbench.tasks.imageset import (
    eval_batch,
    grid_image,
    image_set_data,
    mse_to_psnr,
    npz_bytes,
    save_grid,
)
from inrbench.tasks.optim import adam
from inrbench.tasks.stepimages import StepImages

#: the hyper-network's keys (``task.*``) and their defaults: the official CelebA-128 setting
#: (configs/Celeba128_anr_d5.yaml, script/train_inr.py)
#: ema_pytorch's update_after_step: the EMA copies the weights until then
EMA_AFTER = 100

def variational_coords(grid: torch.Tensor, shape) -> torch.Tensor:
    """The official training jitter: N(0, (0.3 / max(H, W))^2) clipped to +-0.5 / max(H, W)."""
    size = max(shape)
    noise = (torch.randn_like(grid) * 0.3 / size).clamp(-0.5 / size, 0.5 / size)
    return grid + noise


class HypernetTask(RunHistory, L.LightningModule):
    """A decoder (``model``) and its hyper-network trained together over a set of images."""

    def __init__(self, model: GeneratedINR, spec: SignalSpec, hyper: HyperNetwork,
                 lr: float = 5e-5, betas=(0.9, 0.99), ema_decay: float | None = 0.995,
                 ema_every: int = 10, grad_clip: float | None = 1.0, coord_noise: bool = True,
                 scheduler: str = "none", lr_min: float = 0.0, steps: int = 1,
                 grid_images: int = 8, sr_scale: int = 2, image_chunk: int | None = None):
        super().__init__()
        self.model, self.spec, self.hyper = model, spec, hyper
        self.lr, self.betas = float(lr), tuple(float(b) for b in betas)
        self.ema_decay, self.ema_every = ema_decay, int(ema_every)
        self.grad_clip, self.coord_noise = grad_clip, bool(coord_noise)
        self.scheduler_name, self.lr_min, self.steps = scheduler, float(lr_min), int(steps)
        self.grid_images, self.sr_scale = int(grid_images), int(sr_scale)
        self.image_chunk = check_chunk(image_chunk)
        self.eval_setting = None  # task.eval_images as given, for the record
        self.ema = None
        if ema_decay:  # a weight copy, saved in every checkpoint with the rest of the state
            self.ema = copy.deepcopy(self._nets()).requires_grad_(False)
        self.best = {"psnr": -math.inf, "step": -1}
        self.history: list[dict] = []
        self.evals: list[dict] = []
        self._val: list[torch.Tensor] = []
        self.train_data: ImageSetDataModule | None = None
        self.step: StepImages | None = None  # images per step (build_hypernet)

    def _nets(self) -> nn.ModuleDict:
        return nn.ModuleDict({"model": self.model, "hyper": self.hyper})

    def _eval_nets(self) -> tuple[GeneratedINR, HyperNetwork]:
        nets = self.ema if self.ema is not None else self._nets()
        return nets["model"], nets["hyper"]

    def trainable(self) -> list[nn.Parameter]:
        """The shared weights: the hyper-network and the decoder, not the decoder's own
        instance (used only when it fits one signal alone) nor the EMA copy."""
        skip = {id(p) for p in self.model.instance.parameters()}
        return [p for p in self._nets().parameters() if id(p) not in skip]

    # -- the model of a batch -----------------------------------------------------------------
    @staticmethod
    def encode(model: GeneratedINR, hyper: HyperNetwork, images: torch.Tensor) -> dict:
        """Images ``(B, H, W, C)`` in [0, 1] -> the instances (one forward pass)."""
        return model.represent(hyper(images))

    def render(self, images: torch.Tensor, shape=None, ema: bool = True) -> torch.Tensor:
        """Images in [0, 1] -> their INRs rendered at ``shape`` (default: their own size; a
        larger shape is super-resolution), ``(B, *shape, C)`` in [0, 1]."""
        model, hyper = self._eval_nets() if ema else (self.model, self.hyper)
        rep = self.encode(model, hyper, images)
        return (model.render_batch(rep, shape or images.shape[1:3]) + 1) / 2

    # -- Lightning ----------------------------------------------------------------------------
    def configure_optimizers(self):
        return adam(self.trainable(), self.lr, self.scheduler_name, self.steps, self.lr_min,
                    self.betas)

    def train_mse(self, images: torch.Tensor) -> torch.Tensor:
        """Per-image training MSE against the [-1, 1] target, on (jittered) pixel centres."""
        shape = images.shape[1:3]
        rep = self.encode(self.model, self.hyper, images)
        grid = pixel_grid(shape, device=images.device, dtype=images.dtype)
        coords = grid.reshape(1, -1, 2).expand(len(images), -1, -1)
        if self.coord_noise:
            coords = variational_coords(coords, shape)
        pred = self.model.decode_chunked(rep, coords)
        return (pred - (images.flatten(1, 2) * 2 - 1)).pow(2).flatten(1).mean(1)

    def training_step(self, batch, batch_idx):
        loss, mse = chunked_mean(self.train_mse, batch["images"], self.image_chunk,
                                 self.trainable())
        opt = self.optimizers()
        lr = opt.param_groups[0]["lr"] if hasattr(opt, "param_groups") else self.lr
        # on the device until the logging interval (RunHistory.flush_history): no host read
        # per step
        self.history.append({"step": int(self.global_step), "loss": loss.detach(),
                             "psnr": mse_to_psnr(mse, 2.0).mean().detach(), "lr": lr})
        self.log_step(loss=loss)
        return loss

    def on_before_optimizer_step(self, optimizer):
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.trainable(), self.grad_clip)

    def ema_decay_at(self, step: int) -> float:
        """ema_pytorch's schedule: 0 (copy) up to step 101, then 1 - (1 + t)^(-2/3) capped
        at ``ema_decay``."""
        t = step - EMA_AFTER - 1
        return 0.0 if t <= 0 else min(self.ema_decay, 1.0 - (1.0 + t) ** (-2.0 / 3.0))

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # here, after the update and before any callback can checkpoint this step, the
        # global step is this update's 0-based index
        self._update_ema(int(self.global_step))

    @torch.no_grad()
    def _update_ema(self, step: int) -> None:
        if self.ema is not None and step % self.ema_every == 0:
            decay = self.ema_decay_at(step)
            for e, p in zip(self.ema.parameters(), self._nets().parameters()):
                e.lerp_(p, 1.0 - decay)

    def validation_step(self, batch, batch_idx):
        if self.skip_final_validation():
            return
        for images in split(batch["images"], self.image_chunk):
            pred = self.render(images)
            self._val.append(mse_to_psnr((pred - images).pow(2).flatten(1).mean(1)).cpu())
            self._progress.update(len(images))

    def on_validation_epoch_start(self):
        self._progress = Progress("validation", self.train_data.eval_images)

    def on_validation_epoch_end(self):
        row = self.close_val_epoch()
        if row is None:
            return
        self.log_dict({"val/psnr": row["val_psnr"]}, prog_bar=True)

    # -- final evaluation (the runner merges it into metrics.json) ----------------------------
    @torch.no_grad()
    def evaluate_set(self, images: torch.Tensor, chunk: int | None,
                     sr_shape: tuple[int, ...] | None = None, sr_images: int = 0) -> dict:
        """PSNR per image, timings and the grid's reconstructions, ``chunk`` images at a time
        (all at once: None), with a progress line while it runs; with ``sr_shape``, also the
        first ``sr_images`` grid images rendered at that shape from the same instances
        (outside the timings)."""
        self.eval()
        device = next(self.parameters()).device
        model, hyper = self._eval_nets()
        psnr, recon, sr, enc_s, dec_s = [], [], [], 0.0, 0.0
        progress = Progress("hypernet evaluation", len(images))
        for x in split(images, chunk):
            x = x.to(device)
            sync_device(device)
            t0 = time.perf_counter()
            rep = self.encode(model, hyper, x)
            sync_device(device)
            t1 = time.perf_counter()
            pred = (model.render_batch(rep, x.shape[1:3]) + 1) / 2
            sync_device(device)
            enc_s, dec_s = enc_s + t1 - t0, dec_s + time.perf_counter() - t1
            psnr.append(mse_to_psnr((pred - x).pow(2).flatten(1).mean(1)).cpu())
            need = self.grid_images - sum(len(r) for r in recon)
            if need > 0:
                recon.append(pred[:need].cpu())
                sr_need = min(need, sr_images - sum(len(r) for r in sr))
                if sr_shape is not None and sr_need > 0:
                    grid_rep = {k: v[:sr_need] for k, v in rep.items()}
                    sr.append(((model.render_batch(grid_rep, sr_shape) + 1) / 2).cpu())
            progress.update(len(x))
        psnr_t, n = torch.cat(psnr), len(images)
        return {"psnr": float(psnr_t.mean()), "psnr_std": float(psnr_t.std(unbiased=False)),
                "psnr_per_image": psnr_t, "encode_s_per_image": enc_s / n,
                "decode_s_per_image": dec_s / n, "eval_images": n,
                "reconstructions": torch.cat(recon),
                **({"super_resolution": torch.cat(sr)} if sr else {})}

    def summary(self, datamodule, out: Path) -> dict:
        data: ImageSetDataModule = self.train_data
        test = data.test_images()
        sr_shape = tuple(self.sr_scale * n for n in self.spec.shape)
        # one encoding per test image serves the scores, the grid and the super-resolution
        result = self.evaluate_set(test, self.image_chunk or eval_batch(self.step, data),
                                   sr_shape, resolve_sr_images(self.steps, self.grid_images))
        result.update(eval_record(len(test), len(data.set.test), self.eval_setting))
        recon, per_image = result.pop("reconstructions"), result.pop("psnr_per_image")
        sr = result.pop("super_resolution")
        self.record_final_validation(per_image)
        originals = test[: len(recon)]
        save_grid(out / "reconstruction.png", originals, recon)
        atomic_write_bytes(out / "reconstructions.npz", npz_bytes(
            originals=originals.numpy(), reconstructions=recon.clamp(0, 1).numpy(),
            psnr=per_image.numpy()))
        _save_sr(out / "super_resolution.png", originals[: len(sr)], sr, self.sr_scale)
        atomic_write_json(out / "super_resolution.json", {
            "scale": self.sr_scale, "shape": list(sr_shape), "images": len(sr),
            "note": "rendered from the same instances on a denser pixel-centre grid; no "
                    "high-resolution ground truth, so no PSNR"})
        if self.best["psnr"] < result["psnr"]:
            self.best = {"psnr": result["psnr"], "step": int(self.global_step)}
        npix = math.prod(self.spec.shape)
        model, hyper = self.model, self.hyper
        hyper_macs = hyper.macs_per_image()
        return {
            **result, "decode_ms": result["decode_s_per_image"] * 1e3,
            "best_psnr": self.best["psnr"], "best_step": self.best["step"],
            "amortized": "hypernet", "decoder": type(model).__name__,
            "macs_per_pixel": float(model.macs_per_sample()),
            "instance_macs_per_pixel": model.instance_macs() / npix,
            "hyper_macs_per_image": hyper_macs, "hyper_macs_per_pixel": hyper_macs / npix,
            "instance_floats": model.instance_floats(), "instance_params": model.instance_params(),
            "hyper_params": n_params(hyper),
            "decoder_params": n_params(model) - n_params(model.instance),
            "lr": self.lr, "betas": list(self.betas), "ema_decay": self.ema_decay,
            "ema_every": self.ema_every, "grad_clip": self.grad_clip,
            "coord_noise": self.coord_noise, "coords": "pixel-centre", "sr_scale": self.sr_scale,
            "sr_images": len(sr),
            "batch_size": data.batch_size, **(self.step.record() if self.step else {}),
            "image_chunk": self.image_chunk,
            "epochs": int(self.global_step) / data.steps_per_epoch,
            "steps_per_epoch": data.steps_per_epoch, **data.set.record(),
        }


def _save_sr(path: Path, originals: torch.Tensor, sr: torch.Tensor, scale: int) -> None:
    """Originals (nearest-upscaled to the render's size) on top, the denser render below."""
    up = originals.repeat_interleave(scale, 1).repeat_interleave(scale, 2)
    write_png(path, grid_image([up, sr], scale=max(1, 4 // scale)))


@register_task("hypernet")
def build_hypernet(model, spec, datamodule, seed: int, data_name: str, lr: float = 1e-4,
                   lr_min: float = 1e-6, scheduler: str = "cosine", steps: int = 10_000,
                   eval_every: int = 1000, accumulate: int = 1, hyper_dim: int = 512,
                   patch_size: int = 10, patch_padding: int = 1, enc_depth: int = 6,
                   dec_depth: int = 6, n_heads: int = 6, head_dim: int = 64, ff_dim: int = 3072,
                   betas: list[float] = (0.9, 0.99), ema_decay: float | None = 0.995,
                   ema_every: int = 10, grad_clip: float | None = 1.0, coord_noise: bool = True,
                   sr_scale: int = 2, eval_images: int | str | None = "auto",
                   grid_images: int = 8, image_chunk: int | None = 8,
                   step_images: int | str | None = "auto"):
    """``--task hypernet --model anr|transinr --data cifar10|celeba|images``: the keys of
    ``conf/task/hypernet.yaml``, the hyper-network's shape (``hyper_dim`` ... ``ff_dim``) and its
    training (defaults: the official CelebA-128 configuration; null ``ema_decay`` or
    ``grad_clip`` turns the EMA or the clipping off); ``eval_images`` and ``image_chunk``:
    ``inrbench.tasks.evalset``; ``step_images``: ``inrbench.tasks.stepimages``."""
    if not isinstance(model, GeneratedINR):
        raise ConfigError(f"--task hypernet generates the instance of a decoder; model "
                          f"{model_label(model)!r} has none. Use --model anr or --model transinr")
    train_data, step = image_set_data(datamodule, spec, data_name, "hypernet", seed,
                                      eval_images, steps, step_images, accumulate)
    if any((n + 2 * patch_padding) // patch_size < 1 for n in spec.shape):
        raise ConfigError(f"task.patch_size={patch_size} is larger than the image "
                          f"{tuple(spec.shape)} (+ padding); choose a smaller patch")
    if len(betas) != 2:
        raise ConfigError(f"task.betas must be two numbers in [0, 1], got {list(betas)}")
    hyper = HyperNetwork(spec.shape, spec.channels, model.token_groups, dim=hyper_dim,
                         patch_size=patch_size, padding=patch_padding, enc_depth=enc_depth,
                         dec_depth=dec_depth, n_heads=n_heads, head_dim=head_dim, ff_dim=ff_dim)
    task = HypernetTask(model, spec, hyper, lr=float(lr), betas=list(betas),
                        ema_decay=ema_decay, ema_every=ema_every, grad_clip=grad_clip,
                        coord_noise=coord_noise, scheduler=scheduler, lr_min=float(lr_min),
                        steps=steps, grid_images=grid_images, sr_scale=sr_scale,
                        image_chunk=image_chunk)
    task.eval_setting = eval_images
    task.eval_every, task.accumulate = eval_every, step.accumulate
    task.train_data, task.step = train_data, step
    step.announce(steps)
    return task


__all__ = ["HypernetTask", "build_hypernet", "variational_coords"]
