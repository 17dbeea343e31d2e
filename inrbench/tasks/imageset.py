"""What the data-set tasks (``meta``, ``hypernet``) share: the image batches a run trains on
and the test images it scores (:func:`image_set_data`), COIN++'s PSNR, the reconstruction
grid's picture and the small pieces of their evaluation passes (their timings wait for
the device with :func:`inrbench.profiling.sync_device`)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from inrbench.data.images import ImageSetDataModule
from inrbench.errors import ConfigError
from inrbench.io import write_png
from inrbench.metrics import psnr_from_mse
from inrbench.tasks.evalset import resolve_eval_images
from inrbench.tasks.stepimages import StepImages, resolve_step_images


def mse_to_psnr(mse: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """COIN++'s PSNR: the MSE floored at 1e-12 (a perfect image: 120 dB at R = 1, not inf)."""
    return psnr_from_mse(mse, data_range, eps=1e-12)


def eval_batch(step: StepImages | None, data: ImageSetDataModule) -> int:
    """Test images per evaluation pass without ``image_chunk``: the asked batch, so a short
    run's smaller training batch does not split the evaluation into more passes."""
    return step.asked_batch if step is not None else data.batch_size


def npz_bytes(**arrays) -> bytes:
    """Arrays -> the bytes of a compressed ``.npz`` (written atomically by the caller)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def grid_image(rows: list[torch.Tensor], scale: int = 4, gap: int = 2) -> np.ndarray:
    """Rows of images ``(n, H, W, C)`` in [0, 1] -> one uint8 picture (nearest upscaling)."""
    n = max(len(r) for r in rows)
    h, w, c = rows[0].shape[1:]
    H, W = h * scale, w * scale
    canvas = np.full((len(rows) * (H + gap) - gap, n * (W + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, im in enumerate(row):
            arr = (im.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            arr = np.repeat(np.repeat(arr, scale, 0), scale, 1)
            if c == 1:
                arr = np.repeat(arr, 3, -1)
            canvas[i * (H + gap):i * (H + gap) + H, j * (W + gap):j * (W + gap) + W] = arr
    return canvas


def save_grid(path: Path, originals: torch.Tensor, recon: torch.Tensor) -> None:
    """Originals on top, reconstructions after k inner steps below (Figure 5's layout)."""
    write_png(path, grid_image([originals, recon]))


def image_set_data(datamodule, spec, data_name: str, task: str, seed: int,
                   eval_images, steps: int, step_images="auto", accumulate: int = 1
                   ) -> tuple[ImageSetDataModule, StepImages]:
    """The batches of images a data-set task trains on and the test images it scores.
    Images per step: ``data.batch_size`` (64 when the data module gives none) x
    ``accumulate`` asked, ``step_images`` (auto, all/null or N) deciding what a run of
    ``steps`` uses (``inrbench.tasks.stepimages``); test images: ``eval_images`` (an integer,
    null/all or auto: ``inrbench.tasks.evalset.resolve_eval_images``)."""
    if not hasattr(datamodule, "image_set"):
        raise ConfigError(f"--task {task} needs a data set of images; data {data_name!r} is "
                          f"one signal. Use --data cifar10, celeba or images data.path=DIR")
    if spec.modality != "image" or len(spec.shape) != 2:
        raise ConfigError(f"--task {task} learns images; data {data_name!r} is {spec.modality}")
    asked = int(getattr(datamodule, "batch_size", None) or 64)
    step = resolve_step_images(step_images, steps, asked, accumulate)
    image_set = datamodule.image_set()
    if image_set.spec.shape != tuple(spec.shape) or image_set.spec.channels != spec.channels:
        raise ConfigError(f"{data_name}: the image set is {image_set.spec} but the model was "
                          f"built for {spec}")
    n_eval = resolve_eval_images(eval_images, steps, len(image_set.test))
    return ImageSetDataModule(image_set, batch_size=step.batch_size, seed=int(seed),
                              eval_images=n_eval), step
