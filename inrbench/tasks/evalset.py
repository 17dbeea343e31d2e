"""What the data-set tasks (``meta``, ``hypernet``) evaluate, and in which pieces.

**How many test images** (``task.eval_images``): an integer scores the first N test images;
``null`` (or ``all``) the whole test split; ``auto`` (the default) decides by the run's
length::

    auto -> the whole test split  if task.steps >= FULL_EVAL_STEPS (1,000)
            the first SHORT_EVAL_IMAGES (8) test images otherwise

Every paper row trains for many thousands of steps, so its figure is over the whole test set;
a run of a few steps is a try whose scores only show that the pipeline works, and scoring 10,000
CIFAR-10 images after 3 steps would cost more than the training. By the same rule a shorter
run renders ``SHORT_SR_IMAGES`` of the grid at super-resolution (``hypernet``), not all of
it. ``metrics.json`` says which:
``eval_images`` (images the scores are over), ``test_images`` (the size of the split) and
``eval_full_test_set``.

**Chunks** (``task.image_chunk``): images pass through the networks ``image_chunk`` at a time,
in training and in evaluation, so peak memory is set by the chunk, not by the batch or the
test set. A training step's loss is the batch mean of per-image losses, and each image's loss
depends on the shared weights and on that image alone (no statistic crosses images), so

    grad (1/B) sum_i l_i = sum_chunks grad (1/B) sum_{i in chunk} l_i

exactly (up to the order of float additions): :func:`chunked_mean` takes each chunk's
gradient with ``torch.autograd.grad`` and frees its graph before the next chunk.
"""

from __future__ import annotations

import sys
import time

import torch

from inrbench.errors import ConfigError

#: runs at least this long score the whole test split under ``eval_images: auto``
FULL_EVAL_STEPS = 1000
#: test images a shorter run scores under ``eval_images: auto`` (the reconstruction grid's 8)
SHORT_EVAL_IMAGES = 8
#: grid images a shorter run also renders at super-resolution (each costs sr_scale^2 test images)
SHORT_SR_IMAGES = 2
#: seconds between two progress lines of one evaluation
PROGRESS_EVERY_S = 2.0


def resolve_eval_images(value, steps: int, n_test: int) -> int:
    """``task.eval_images`` (an integer >= 1, null/``all`` or ``auto``) -> images scored."""
    if value is None or value == "all":
        return n_test
    if value == "auto":
        return n_test if int(steps) >= FULL_EVAL_STEPS else min(SHORT_EVAL_IMAGES, n_test)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"task.eval_images must be auto, all (null) or an integer >= 1 "
                          f"(test images scored), got {value!r}")
    return min(value, n_test)


def resolve_sr_images(steps: int, grid_images: int) -> int:
    """Grid images the ``hypernet`` task renders at super-resolution: all ``grid_images`` for
    a run of at least ``FULL_EVAL_STEPS`` steps, else ``SHORT_SR_IMAGES`` (a 2x render of a
    128 x 128 ANR image costs what four test images do; a try only shows that it works)."""
    return int(grid_images) if int(steps) >= FULL_EVAL_STEPS else min(SHORT_SR_IMAGES,
                                                                         int(grid_images))


def resolve_curve_steps(value, steps: int, inner_steps: int) -> int:
    """``task.curve_steps`` (an integer >= 1 or ``auto``): ``auto`` is 10 (COIN++'s curve)
    for a run of at least ``FULL_EVAL_STEPS`` steps, else the run's own ``inner_steps``."""
    if value == "auto":
        return 10 if int(steps) >= FULL_EVAL_STEPS else int(inner_steps)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"task.curve_steps must be auto or a positive integer, got {value!r}")
    return value


def check_chunk(value) -> int | None:
    """``task.image_chunk``: a positive integer, or null (the whole batch at once)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"task.image_chunk must be a positive integer (images through the "
                          f"networks at once) or null (whole batches), got {value!r}")
    return value


def eval_record(scored: int, n_test: int, requested) -> dict:
    """The ``metrics.json`` fields that say what the test scores are over."""
    return {"eval_images": int(scored), "test_images": int(n_test),
            "eval_full_test_set": int(scored) == int(n_test),
            "eval_images_setting": "all" if requested is None else requested}


def split(x: torch.Tensor, chunk: int | None) -> tuple[torch.Tensor, ...]:
    return (x,) if chunk is None or len(x) <= chunk else x.split(chunk)


def chunked_mean(per_image, images: torch.Tensor, chunk: int | None,
                 params: list[torch.nn.Parameter]) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch mean of ``per_image(x) -> (n,)`` losses, as a tensor whose backward gives the
    whole batch's gradient, and the detached per-image losses. With ``chunk`` smaller than the
    batch, each chunk's gradient is taken at once and its graph freed (module docstring); the
    returned loss then carries them as ``sum_p <p, g_p>`` (value: the batch mean)."""
    pieces = split(images, chunk)
    if len(pieces) == 1:
        losses = per_image(images)
        return losses.mean(), losses.detach()
    params = [p for p in params if p.requires_grad]
    grads: list[torch.Tensor | None] = [None] * len(params)  # the first chunk's, then summed
    losses = []
    for x in pieces:
        loss = per_image(x)
        parts = torch.autograd.grad(loss.sum() / len(images), params, allow_unused=True)
        for i, g in enumerate(parts):
            if g is not None:
                grads[i] = g if grads[i] is None else grads[i].add_(g)
        losses.append(loss.detach())
        del loss, parts
    losses_t = torch.cat(losses)
    carrier = sum((p * g).sum() for p, g in zip(params, grads) if g is not None)
    return carrier - carrier.detach() + losses_t.mean(), losses_t


class Progress:
    """One line to stderr every ``PROGRESS_EVERY_S`` seconds and at the end, so a long
    evaluation is visibly not a hang (silent when it ends within the first interval)."""

    def __init__(self, what: str, total: int, stream=None):
        self.what, self.total, self.done = what, int(total), 0
        self.stream = stream if stream is not None else sys.stderr
        self.start = self.last = time.perf_counter()
        self.shown = False

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S or (self.shown and self.done >= self.total):
            self.last, self.shown = now, True
            print(f"inrbench: {self.what}: {self.done}/{self.total} test images, "
                  f"{now - self.start:.0f} s", file=self.stream, flush=True)
