"""How many images a data-set task (``meta``, ``hypernet``) trains on per optimizer step.

The papers' settings (COIN++ / ASMR Figure 5: 64 CIFAR-10 images per outer step; ANR: 6 x 3
accumulated CelebA images) are for runs of thousands of steps. At those sizes one step of the
default networks costs trillions of FLOP (ANR's 52.5 M-parameter hyper-network: ~80 GFLOP per
image forward and backward; SIREN 10 x 512 through a second-order inner loop: as much), so a
3-step try would take as long as a real run's first hour. The network is never made smaller;
what scales with the run is the work that scales with the data, the images per step
(``task.step_images``)::

    n    = data.batch_size x task.accumulate          (asked: the paper's images per step)
    auto -> n                                       if task.steps >= FULL_STEPS (1,000)
            max(1, ceil(n x task.steps / FULL_STEPS))  otherwise
    all  -> n;   N (an integer >= 1) -> N

so the images per step grow linearly with the run's length and reach the paper's at 1,000
steps (the length from which ``task.eval_images: auto`` scores the whole test split too): a
3-step run trains on 1 image per step, 100 steps of the 64-image setting on 7, 500 on 32. An
explicit value always wins (``task.step_images=all`` keeps the asked batch in a short run).

A step of fewer images than asked is one micro-batch (``task.accumulate`` 1): accumulation is
a memory device, and ``task.image_chunk`` bounds the memory of any batch with the same
gradient (:mod:`inrbench.tasks.evalset`). ``metrics.json`` records ``step_images`` (used),
``step_images_asked``, ``step_images_setting``, ``batch_size``, ``accumulate`` and
``accumulate_asked``; a run that trains on fewer images than asked says so in one line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from inrbench.console import note
from inrbench.errors import ConfigError
from inrbench.tasks.evalset import FULL_EVAL_STEPS

#: runs at least this long train on the asked images per step under ``step_images: auto``
#: (the length from which ``eval_images: auto`` scores the whole test split)
FULL_STEPS = FULL_EVAL_STEPS


@dataclass(frozen=True)
class StepImages:
    """Images per optimizer step: what was asked, the setting, and what the run uses."""

    batch_size: int         # images per micro-batch, used
    accumulate: int         # micro-batches per optimizer step, used
    asked_batch: int
    asked_accumulate: int
    setting: object         # task.step_images as given

    @property
    def used(self) -> int:
        return self.batch_size * self.accumulate

    @property
    def asked(self) -> int:
        return self.asked_batch * self.asked_accumulate

    def record(self) -> dict:
        """The ``metrics.json`` fields."""
        return {"step_images": self.used, "step_images_asked": self.asked,
                "step_images_setting": self.setting, "batch_size": self.batch_size,
                "accumulate": self.accumulate, "accumulate_asked": self.asked_accumulate}

    def note(self, steps: int) -> str | None:
        """The line a run prints when it trains on fewer (or more) images than asked."""
        if self.used == self.asked:
            return None
        why = (f"task.step_images: auto scales them with the run, the asked {self.asked} from "
               f"{FULL_STEPS:,} steps on" if self.setting == "auto"
               else f"task.step_images={self.setting}")
        return (f"a {steps}-step run trains on {self.used} image(s) per step, not the "
                f"asked {self.asked} ({why}; task.step_images=all keeps the asked batch)")


    def announce(self, steps: int) -> None:
        """Print :meth:`note` when there is one (a builder calls it after all its checks, so
        a refused run prints only its error)."""
        message = self.note(steps)
        if message:
            note(message)


def resolve_step_images(value, steps: int, batch_size: int, accumulate: int) -> StepImages:
    """``task.step_images`` (auto, all/null or an integer >= 1) -> the images per step
    (module docstring); ``batch_size`` x ``accumulate`` is the asked setting."""
    batch, acc = int(batch_size), int(accumulate)
    if batch < 1 or acc < 1:
        raise ConfigError(f"data.batch_size and task.accumulate must be >= 1, got {batch} and "
                          f"{acc}")
    asked = batch * acc
    if value is None or value == "all":
        used = asked
    elif value == "auto":
        used = asked if int(steps) >= FULL_STEPS else \
            max(1, min(asked, math.ceil(asked * int(steps) / FULL_STEPS)))
    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"task.step_images must be auto, all (null) or an integer >= 1 "
                          f"(images per optimizer step), got {value!r}")
    else:
        used = value
    setting = "all" if value is None else value
    if used == asked:
        return StepImages(batch, acc, batch, acc, setting)
    return StepImages(used, 1, batch, acc, setting)


__all__ = ["FULL_STEPS", "StepImages", "resolve_step_images"]
