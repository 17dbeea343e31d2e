"""Trainer settings against this machine: the strategy is one Lightning knows, the
accelerator is present and there are as many GPUs as ``trainer.devices`` asks for.

Checked before a results folder is made, so a typo'd ``--strategy`` or a GPU run on a machine
without one ends in one line naming the fix instead of a Lightning traceback from inside
``Trainer``. Lightning and torch are imported when called: composing a config stays cheap.
"""

from __future__ import annotations

import difflib
import importlib.util

from omegaconf import DictConfig

from inrbench.errors import ConfigError

# accelerator names as Lightning spells them ("gpu" is its alias of cuda here)
_GPU = ("gpu", "cuda")


def strategies() -> list[str]:
    """The strategy names ``L.Trainer(strategy=...)`` accepts: ``auto`` and its registry."""
    from lightning.pytorch.strategies import StrategyRegistry

    return ["auto", *StrategyRegistry.available_strategies()]


def gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _mps() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps and mps.is_available())


def check_machine(cfg: DictConfig, here: bool = True) -> None:
    """ConfigError (one line, naming the fix) when ``cfg.trainer``'s strategy is not one
    Lightning knows or (``here``) its strategy or accelerator cannot run on this machine; a dry
    run checks the names only, as it may be run on another machine than the run."""
    trainer = cfg.trainer
    strategy = str(trainer.get("strategy") or "auto")
    accelerator = str(trainer.get("accelerator") or "auto")
    devices = int(trainer.get("devices") or 1)
    known = strategies()
    if strategy not in known:
        close = difflib.get_close_matches(strategy, known, n=1)
        hint = f"did you mean --strategy {close[0]}? " if close else ""
        main = [k for k in known if "_find_unused" not in k]  # the rest are ddp variants
        raise ConfigError(f"unknown strategy {strategy!r}: {hint}Lightning accepts "
                          f"{', '.join(main)} (and ddp*_find_unused_parameters_true/false)")
    if not here:
        return
    if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"--strategy {strategy} needs the deepspeed package, which is not "
                          f"installed; pip install deepspeed, or use --strategy ddp")
    have = gpus()
    if accelerator in _GPU and have == 0:
        raise ConfigError(f"trainer.accelerator={accelerator}: this machine has no CUDA GPU "
                          f"(torch.cuda.is_available() is False); use trainer.accelerator=cpu "
                          f"(or auto)")
    if accelerator == "mps" and not _mps():
        raise ConfigError("trainer.accelerator=mps: Apple's MPS is not available on this "
                          "machine; use trainer.accelerator=cpu (or auto)")
    if strategy.startswith(("xla", "single_xla", "single_tpu")) and \
            importlib.util.find_spec("torch_xla") is None:
        raise ConfigError(f"--strategy {strategy} needs a TPU (torch_xla), which this machine "
                          f"lacks; use --strategy ddp")
    gpu_run = accelerator in _GPU or (accelerator == "auto" and have > 0)
    if gpu_run and devices > have:
        raise ConfigError(f"--devices {devices} asks for {devices} GPUs; this machine has "
                          f"{have}; give --devices {have} or fewer (or trainer.accelerator=cpu "
                          f"for {devices} CPU processes)")
    if strategy.startswith("fsdp") and not gpu_run:
        raise ConfigError(f"--strategy {strategy} needs CUDA GPUs; on CPU use --strategy ddp")
