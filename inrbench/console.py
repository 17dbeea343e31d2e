"""What a run shows on the console: a progress bar in the run's optimizer steps with the time
left and the latest loss/PSNR, one line per evaluation, the results path; Lightning's
banners ("GPU available...", "💡 Tip...") and advice warnings only with ``--verbose``."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

_LOGGERS = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
            "lightning_fabric")


def quiet_libraries(verbose: bool = False) -> None:
    """Library chatter off (info lines, advice warnings) unless ``verbose``."""
    level = logging.INFO if verbose else logging.WARNING
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(level)
    if verbose:
        return
    from lightning.fabric.utilities.warnings import PossibleUserWarning

    # advice for other workloads (dataloader workers, logging intervals of 1-batch epochs)
    warnings.filterwarnings("ignore", category=PossibleUserWarning)
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")
    # deprecations inside the libraries themselves: nothing the user can act on
    warnings.filterwarnings("ignore", message=r".*treespec.*deprecated.*")
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"lightning\..*")
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"lightning\..*")


def _fmt(value) -> str:
    try:
        return f"{float(value):.4g}"
    except (TypeError, ValueError):
        return str(value)


class StepProgressBar(ProgressBar):
    """One bar over the run's ``max_steps`` optimizer steps, starting at the resumed step, with
    tqdm's time left; with random or block sampling, whose epochs sample every sample once,
    also the epoch (``epoch=3/500``, of whichever of the step and epoch bounds ends first)."""

    def __init__(self, refresh: int = 10):
        super().__init__()
        self.refresh, self.bar, self.enabled = max(1, refresh), None, True

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    @property
    def is_enabled(self) -> bool:
        return self.enabled

    def on_train_start(self, trainer, pl_module):
        if not (self.enabled and trainer.is_global_zero):
            return
        from tqdm.auto import tqdm

        total = trainer.estimated_stepping_batches  # the first of the step and epoch bounds
        total = int(trainer.max_steps) if total == float("inf") else int(total)
        self.bar = tqdm(total=total, initial=int(trainer.global_step),
                        desc="training", unit="step", dynamic_ncols=True, file=sys.stderr,
                        smoothing=0.1, bar_format="{desc}: {percentage:3.0f}%|{bar}| "
                        "{n_fmt}/{total_fmt} steps [{elapsed}<{remaining}, {rate_fmt}]"
                        "{postfix}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.bar is None:
            return
        step = int(trainer.global_step)
        if step - self.bar.n >= self.refresh or step >= self.bar.total:
            # the loss and PSNR are tensors on the device: read them at the logging
            # interval only, so the bar adds no host synchronisation between logging steps
            if step % max(int(trainer.log_every_n_steps), 1) == 0 or step >= self.bar.total:
                metrics = trainer.progress_bar_metrics
                post = {k.split("/")[-1] if k.startswith("train/") else k: _fmt(v)
                        for k, v in metrics.items() if k in ("train/loss", "train/psnr")}
                epochs = _epochs(trainer)
                if epochs:
                    post["epoch"] = f"{min(int(trainer.current_epoch) + 1, epochs)}/{epochs}"
                self.bar.set_postfix(post, refresh=False)
            self.bar.update(step - self.bar.n)

    def on_validation_end(self, trainer, pl_module):
        if self.bar is None or trainer.sanity_checking:
            return
        m = trainer.callback_metrics
        parts = [f"{k[4:].upper()} {_fmt(v)}" for k, v in m.items() if k.startswith("val/")]
        if parts:
            self.bar.write(f"step {int(trainer.global_step)}/{int(self.bar.total)}: "
                           + ", ".join(parts), file=sys.stderr)

    def on_train_end(self, trainer, pl_module):
        if self.bar is not None:
            self.bar.update(int(trainer.global_step) - self.bar.n)
            self.bar.close()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception):
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _epochs(trainer) -> int | None:
    """The run's epochs when its data's epochs sample every sample once (the data module's
    ``epochs_cover_samples``: random or block sampling), else None."""
    per_epoch = trainer.num_training_batches
    if not getattr(getattr(trainer, "datamodule", None), "epochs_cover_samples", False) or \
            not per_epoch or per_epoch == float("inf"):
        return None
    accumulate = max(1, int(trainer.accumulate_grad_batches))
    by_steps = -(-int(trainer.max_steps) * accumulate // int(per_epoch))
    return min(by_steps, trainer.max_epochs) if (trainer.max_epochs or -1) > 0 else by_steps


def note(message: str) -> None:
    """An informational line for the user (stdout: stderr holds only the error, one line)."""
    print(f"inrbench: {message}", flush=True)


@contextlib.contextmanager
def held_warnings():
    """Warnings raised inside are held back instead of printed, as lines ``FILE:LINE:
    Category: message`` in the yielded list: checks that may end in a one-line refusal run
    inside, and the caller writes what was held to its folder's log once it has one."""
    held: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        yield held
    held += [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught]
