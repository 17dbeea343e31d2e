"""One run: config -> data + model -> task -> Trainer -> results folder.

The folder holds ``config.yaml`` (resolved), ``metrics.csv`` (one row per step, evaluations
merged in), ``metrics.json`` (the summary), ``reconstruction.png`` and ``checkpoints/``.
Every file is written atomically; ``resume=True`` continues from ``checkpoints/last.ckpt``.
"""

from __future__ import annotations

import io
import os
import platform
import subprocess
import time
from datetime import datetime
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import torch
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

import inrbench
from inrbench.blocks import configure_blocks
from inrbench.callbacks import LatencyCallback, ProfileCallback
from inrbench.config import rowdefaults
from inrbench.console import StepProgressBar, quiet_libraries
from inrbench.data import create_datamodule
from inrbench.data.base import SignalSpec
from inrbench.data.export import save_reconstruction
from inrbench.data.provenance import check_same_data, data_record, summary_fields
from inrbench.data.registry import DATAMODULES
from inrbench.errors import ConfigError
from inrbench.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from inrbench.metrics import evaluate, headline_metric
from inrbench.models import create_model
from inrbench.models.base import EVAL_CHUNK
from inrbench.models.registry import MODELS
from inrbench.profiling.machine import machine
from inrbench.registry import accepted_kwargs
from inrbench.rundir import (
    KeepCheckpoints,
    ReplanSchedule,
    RunLock,
    SafeCheckpointIO,
    holds_results,
    note,
    remove_unfinished,
    resume_checkpoint,
)
from inrbench.tasks import FitTask, create_task

AtomicCheckpointIO = SafeCheckpointIO  # checkpoints: atomic, plain types (inrbench/rundir.py)


def build_datamodule(cfg: DictConfig):
    kwargs = OmegaConf.to_container(cfg.data, resolve=True)
    name = kwargs.pop("name")
    if "seed" not in kwargs and "seed" in (accepted_kwargs(DATAMODULES.get(name)) or []):
        kwargs["seed"] = int(cfg.trainer.seed)
    return create_datamodule(name, **kwargs)


def model_kwargs(cfg: DictConfig, spec: SignalSpec) -> dict:
    """``cfg.model`` with ``name`` and the signal-dependent arguments the model accepts
    (``in_features``, ``out_features``, ``signal_shape``) filled from the data's spec."""
    kwargs = OmegaConf.to_container(cfg.model, resolve=True)
    valid = accepted_kwargs(MODELS.get(kwargs["name"])) or []
    derived = {"in_features": len(spec.shape), "out_features": spec.channels,
               "signal_shape": list(spec.shape)}
    for key, value in derived.items():
        if key in valid and kwargs.get(key) is None:
            kwargs[key] = value
    return kwargs


def build_model(cfg: DictConfig, spec: SignalSpec):
    """Instantiate ``cfg.model``; signal-dependent arguments come from the data's spec."""
    kwargs = model_kwargs(cfg, spec)
    name = kwargs.pop("name")
    if kwargs.get("out_features", spec.channels) != spec.channels:
        raise ConfigError(f"model.out_features={kwargs['out_features']} but the data has "
                          f"{spec.channels} channel(s); drop the override")
    return create_model(name, **kwargs)


def git_sha() -> str | None:
    """The checkout's commit, with ``-dirty`` when tracked files differ from it."""
    def git(*args):
        return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5,
                              cwd=Path(inrbench.__file__).parent)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    import lightning
    import torchmetrics

    return {"python": platform.python_version(), "torch": torch.__version__,
            "lightning": lightning.__version__, "torchmetrics": torchmetrics.__version__,
            "numpy": np.__version__, "inrbench": inrbench.__version__}


def make_logger(cfg: DictConfig, out: Path):
    kind = cfg.trainer.logger
    if kind == "none":
        return False
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save_dir=str(out), name="logs", version="")
    if kind == "wandb":
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_SILENT", "true")
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(project=cfg.trainer.wandb_project, save_dir=str(out),
                           name=out.name, offline=os.environ["WANDB_MODE"] != "online",
                           config=OmegaConf.to_container(cfg, resolve=True))
    raise ConfigError(f"trainer.logger must be wandb, csv or none, got {kind!r}")


def default_out(cfg: DictConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{cfg.model.name}-{cfg.data.name}-{stamp}"


def save_image(path: Path, pred: torch.Tensor) -> None:
    from PIL import Image

    arr = (pred.detach().clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8)
    im = Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())


def write_metrics_csv(path: Path, task: FitTask) -> None:
    steps = pd.DataFrame(task.history)
    if len(steps):  # micro-batches of one optimizer step (task.accumulate > 1) -> their mean
        steps = steps.groupby("step", as_index=False).mean()
    evals = pd.DataFrame(task.evals)
    if len(evals):
        steps = steps.merge(evals, on="step", how="outer") if len(steps) else evals
    atomic_write_text(path, steps.sort_values("step").to_csv(index=False) if len(steps) else "")


class _GlobalLoss(L.Callback):
    """Multi-process training: each process computes the loss on its share of the batch;
    the recorded loss is their mean (the loss of the whole batch, as one process sees it)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.world_size > 1 and pl_module.history and isinstance(outputs, dict):
            loss = trainer.strategy.reduce(outputs["loss"].detach(), reduce_op="mean")
            pl_module.history[-1]["loss"] = float(loss)


def _parallel(cfg: DictConfig) -> tuple[int, str]:
    """``trainer.devices`` and ``trainer.strategy``, checked before any process starts."""
    devices = int(cfg.trainer.get("devices") or 1)
    strategy = str(cfg.trainer.get("strategy") or "auto")
    if devices < 1:
        raise ConfigError(f"trainer.devices must be >= 1, got {devices}")
    if devices == 1:
        return devices, strategy
    if strategy == "auto":
        strategy = "ddp"
    if strategy.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook")):
        raise ConfigError(f"--strategy {strategy} trains in child processes whose history "
                          f"never reaches the results folder; use --strategy ddp")
    if cfg.data.get("sampling", "full") == "full":  # "auto" is checked once resolved
        raise ConfigError(f"--devices {devices} needs data.sampling=random (or tile): "
                          f"full-signal training renders the whole grid in one pass and stays "
                          f"single-process")
    return devices, strategy


class _WallClock(L.Callback):
    """Training wall time, carried across resumes in the checkpoint."""

    def __init__(self):
        self.before, self.t0 = 0.0, time.perf_counter()

    def elapsed(self) -> float:
        return self.before + time.perf_counter() - self.t0

    def on_train_start(self, trainer, pl_module):
        self.t0 = time.perf_counter()

    def state_dict(self):
        return {"wall_s": self.elapsed()}

    def load_state_dict(self, state):
        self.before = state.get("wall_s", 0.0)


def _evaluate_fit(model, dm, spec: SignalSpec, out: Path) -> dict:
    """The fitting task's final score: the whole signal rendered once against ``dm.signal``,
    the reconstruction saved beside the metrics."""
    with torch.no_grad():
        pred = model.render(spec.shape, chunk=EVAL_CHUNK)
        final = evaluate(pred, dm.signal.to(pred.device), spec)
    if spec.modality == "image":
        save_image(out / "reconstruction.png", pred)
    else:  # WAV for audio, a few PNG frames for video, a PLY surface for 3D shapes
        save_reconstruction(out, pred, spec)
    return final


def run(cfg: DictConfig, resume: bool = False, callbacks: list | None = None) -> dict:
    """Train ``cfg`` into its results folder and return the summary written to metrics.json.

    The folder is locked for the run's life (a second run there raises ConfigError); a run
    that fails before its first checkpoint removes what it wrote (inrbench/rundir.py)."""
    out = Path(cfg.trainer.out) if cfg.trainer.out else default_out(cfg)
    cfg.trainer.out = str(out)
    quiet_libraries(bool(cfg.trainer.get("verbose", False)))
    if rank_zero_only.rank != 0:  # multi-process: rank 0 holds the lock and writes
        return _run(cfg, resume, callbacks)
    made = [p for p in [out, *out.parents] if not p.exists()]  # folders this run creates
    with RunLock(out):
        try:
            if not resume and holds_results(out):
                raise ConfigError(f"{out} already holds a run; pass --resume to continue it "
                                  f"or choose another --out")
            return _run(cfg, resume, callbacks)
        except BaseException:
            if not resume:
                remove_unfinished(out, created=bool(made), parents=made[1:])
            raise


def _run(cfg: DictConfig, resume: bool, callbacks: list | None) -> dict:
    out = Path(cfg.trainer.out)
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    steps = int(cfg.task.steps)
    start = resume_checkpoint(ckpt_dir) if resume else None
    if resume and start is None:
        note(f"no checkpoint in {ckpt_dir}; starting from scratch")
    if start is not None and start[1] > steps:
        raise ConfigError(f"--resume: the checkpoint {start[0].name} is at step {start[1]}, "
                          f"past task.steps={steps}; give --steps {start[1]} or more")
    devices, strategy = _parallel(cfg)
    # everything that can reject the config runs before the results folder is created
    L.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg)
    spec = dm.spec()
    # which files the run reads, paper data set or stand-in (inrbench/data/provenance.py);
    # a resumed run must read the same ones
    data_rec = data_record(dm)
    check_same_data(cfg.get("data_record") if resume else None, data_rec)
    with open_dict(cfg):
        cfg.data_record = data_rec
    model = build_model(cfg, spec)
    if "bases" in cfg.model and cfg.model.bases is None and hasattr(model, "bases"):
        cfg.model.bases = model.bases  # config.yaml records the bases the run really used
    rowdefaults.flush_notes()  # which paper row `--model M --data D` follows, if any
    blocks = configure_blocks(dm, model, spec)  # data.sampling: blocks/auto (inrbench/blocks.py)
    if devices > 1 and getattr(dm, "sampling", None) == "full":
        raise ConfigError(f"--devices {devices} needs data.sampling=random, tile or blocks: "
                          f"full-signal training renders the whole grid in one pass and stays "
                          f"single-process")
    # cfg.task.name picks the task (inrbench/tasks/registry.py); it may still reject the config
    task = create_task(cfg, model, dm, spec)
    sha = git_sha()  # the code this run starts with
    out.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:  # multi-process: the other processes write nothing
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    results: dict = {}
    clock = _WallClock()
    replan = []
    if start is not None and start[2] is not None and start[2] != steps:
        replan = [ReplanSchedule(steps)]  # --resume --steps N changed the run's length
    if cfg.trainer.progress_bar and rank_zero_only.rank == 0:
        print(f"{cfg.model.name} on {cfg.data.name}, {steps} steps -> {out}", flush=True)
    trainer = L.Trainer(
        max_steps=steps, max_epochs=-1, accelerator=cfg.trainer.accelerator, devices=devices,
        strategy=strategy, use_distributed_sampler=False,  # data modules shard (data/base.py)
        logger=make_logger(cfg, out),
        callbacks=[
            KeepCheckpoints(ckpt_dir, int(cfg.trainer.checkpoint_every),
                            int(cfg.trainer.get("keep_checkpoints", 3))),
            ProfileCallback(spec.shape, results),
            LatencyCallback(spec.shape, results, int(cfg.trainer.latency_repeats),
                            int(cfg.trainer.latency_warmup),
                            float(cfg.trainer.get("latency_budget_s", 60.0))),
            clock, _GlobalLoss(),
            *([StepProgressBar(refresh=10)] if cfg.trainer.progress_bar else []),
            *replan, *(callbacks or []),
        ],
        plugins=[SafeCheckpointIO()],
        # eval_every counts optimizer steps; Lightning's interval counts (micro-)batches
        accumulate_grad_batches=int(cfg.task.accumulate),
        val_check_interval=min(int(cfg.task.eval_every), steps) * int(cfg.task.accumulate),
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0, log_every_n_steps=min(50, steps),
        enable_progress_bar=bool(cfg.trainer.progress_bar), enable_model_summary=False,
        default_root_dir=str(out),
    )
    # a task may iterate other data than the run's module (meta-learning: batches of images)
    trainer.fit(task, datamodule=getattr(task, "train_data", None) or dm,
                ckpt_path=str(start[0]) if start else None, weights_only=True)
    wall_s = clock.elapsed()
    # the last checkpoint holds the final state, so a resume of a finished run is a no-op
    trainer.save_checkpoint(last, weights_only=False)
    if not trainer.is_global_zero:  # rank 0 evaluates and writes; the others get its summary
        summary = trainer.strategy.broadcast(None, src=0)
        _close_process_group()
        return summary

    model.eval()
    if hasattr(task, "summary"):  # the task scores itself (meta-learning: the test split)
        final = task.summary(dm, out)
    else:
        final = _evaluate_fit(model, dm, spec, out)
        task.best = max(task.best, {"psnr": final["psnr"], "step": steps},
                        key=lambda b: b["psnr"])
        final.update(best_psnr=task.best["psnr"], best_step=task.best["step"])
    write_metrics_csv(out / "metrics.csv", task)
    summary = {
        "model": cfg.model.name, "data": cfg.data.name, **summary_fields(data_rec),
        "task": cfg.task.get("name") or "fit",
        "modality": spec.modality, "signal_shape": list(spec.shape), "channels": spec.channels,
        "metric": headline_metric(spec), "lr": float(cfg.task.lr), **final,
        "params": results.get("params"), "macs": results.get("macs"),
        "macs_measured": results.get("macs_measured"),
        "latency_ms": results.get("latency_ms"), "latency_ms_all": results.get("latency_ms_all"),
        "latency_device": results.get("latency_device"),
        "backend": getattr(model, "backend", "torch"), "steps": int(trainer.global_step),
        "sampling": getattr(dm, "sampling", None), "blocks": blocks,
        "seed": int(cfg.trainer.seed), "wall_s": wall_s,
        "devices": devices, "strategy": strategy,
        "machine": machine(trainer.strategy.root_device),
        "versions": versions(), "git_sha": sha, "out": str(out),
        "finished_at": datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write_json(out / "metrics.json", summary)
    if trainer.world_size > 1:
        trainer.strategy.broadcast(summary, src=0)
        _close_process_group()
    return summary


def _close_process_group() -> None:
    """Shut gloo/NCCL down before the interpreter exits.

    Lightning leaves the process group open; its threads, torn down by interpreter exit
    instead, sometimes abort the process ("terminate called without an active exception",
    exit -6) after the results were written."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
