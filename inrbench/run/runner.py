"""One run: config -> data + model -> task -> Trainer -> results folder.

The folder holds ``config.yaml`` (resolved), ``metrics.csv`` (one row per step, evaluations
merged in), ``metrics.json`` (the summary), the reconstruction and ``checkpoints/``. Every file
is written atomically; ``resume=True`` continues from ``checkpoints/last.ckpt``. This is the only
place that makes a Trainer or writes a results folder.

SIGTERM (a scheduler stopping the job) or SIGINT (Ctrl+C) during training ends the current
optimizer step, writes ``last.ckpt`` at it and raises :class:`inrbench.errors.Interrupted`
(the command line prints how to resume and exits 128 + the signal, so a scheduler requeues
the job). A file that cannot be written (full disk) raises a StorageError naming the newest
checkpoint a resume starts from.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
from lightning.fabric.utilities.rank_zero import rank_zero_only
from omegaconf import DictConfig, OmegaConf, open_dict

from inrbench.blocks import configure_blocks
from inrbench.build import build_datamodule, build_model, build_task, check_output_shape
from inrbench.checkpoint import SafeCheckpointIO, checkpoints_newest_first, resume_checkpoint
from inrbench.config.machine import check_machine
from inrbench.console import StepProgressBar, note, quiet_libraries
from inrbench.data.base import SignalSpec
from inrbench.data.provenance import check_same_data, data_record
from inrbench.errors import ConfigError, StorageError
from inrbench.io import atomic_write_json, atomic_write_text
from inrbench.profiling.memory import PeakMemory
from inrbench.run.callbacks import (
    Budget,
    FiniteLoss,
    GlobalLoss,
    KeepCheckpoints,
    LatencyCallback,
    NoProfiler,
    ProfileCallback,
    ReplanSchedule,
    WallClock,
)
from inrbench.run.folder import RunLock, holds_results, remove_unfinished, snapshot
from inrbench.run.records import (
    default_out,
    evaluate_fit,
    make_logger,
    summary,
    time_to_targets,
    write_metrics_csv,
)
from inrbench.run.stopping import StopOnSignal, close_process_group
from inrbench.sysinfo import git_sha
from inrbench.tasks import TASKS  # noqa: F401  (importing the package registers the tasks)


def run(cfg: DictConfig, resume: bool = False, callbacks: list | None = None) -> dict:
    """Train ``cfg`` into its results folder and return the summary written to metrics.json.

    The folder is locked for the run's life (a second run there raises ConfigError); a run
    that fails before its first checkpoint removes what it wrote (:mod:`inrbench.run.folder`)."""
    out = Path(cfg.trainer.out) if cfg.trainer.out else default_out(
        f"{cfg.model.name}-{cfg.data.name}")
    cfg.trainer.out = str(out)
    quiet_libraries(bool(cfg.trainer.get("verbose", False)))
    check_machine(cfg)  # strategy, accelerator and GPUs, before the folder is made
    if rank_zero_only.rank != 0:  # multi-process: rank 0 holds the lock and writes
        return _run(cfg, resume, callbacks)
    made = [p for p in [out, *out.parents] if not p.exists()]  # folders this run creates
    before = None if made or resume else snapshot(out)  # what a failure leaves as it was
    with RunLock(out):
        try:
            if not resume and holds_results(out):
                raise ConfigError(f"{out} already holds a run; pass --resume to continue it "
                                  f"or choose another --out")
            return _run(cfg, resume, callbacks)
        except StorageError as e:
            if not resume:
                remove_unfinished(out, bool(made), made[1:], before)
            found = checkpoints_newest_first(out / "checkpoints")
            then = (f"; then continue from {found[0]} with --out {out} --resume" if found
                    else "; no checkpoint was written, so the run starts again")
            raise StorageError(f"{e}{then}") from None
        except BaseException:
            if not resume:
                remove_unfinished(out, bool(made), made[1:], before)
            raise


@dataclass
class _Start:
    """Where training starts: the checkpoint (None: from scratch), its step and the step its
    cosine schedule ends at."""

    path: Path | None = None
    step: int = 0
    planned: int | None = None


def _starting_point(ckpt_dir: Path, resume: bool, steps: int) -> _Start:
    found = resume_checkpoint(ckpt_dir) if resume else None
    if resume and found is None:
        note(f"no checkpoint in {ckpt_dir}; starting from scratch")
    if found is None:
        return _Start()
    start = _Start(*found)
    if start.step > steps:
        raise ConfigError(f"--resume: the checkpoint {start.path.name} is at step {start.step}, "
                          f"past task.steps={steps}; give --steps {start.step} or more")
    return start


def _parallel(cfg: DictConfig) -> tuple[int, str]:
    """``trainer.devices`` (per machine), ``trainer.num_nodes`` and ``trainer.strategy``,
    checked before any process starts; returns the devices per machine and the strategy."""
    devices = int(cfg.trainer.get("devices") or 1)
    nodes = int(cfg.trainer.get("num_nodes") or 1)
    strategy = str(cfg.trainer.get("strategy") or "auto")
    if devices < 1 or nodes < 1:
        raise ConfigError(f"trainer.devices and trainer.num_nodes must be >= 1, got {devices} "
                          f"and {nodes}")
    if devices * nodes == 1:
        return devices, strategy
    if strategy == "auto":
        strategy = "ddp"
    if strategy.startswith(("ddp_spawn", "ddp_fork", "ddp_notebook")):
        raise ConfigError(f"--strategy {strategy} trains in child processes whose history "
                          f"never reaches the results folder; use --strategy ddp")
    if cfg.data.get("sampling", "full") == "full":  # "auto" is checked once resolved
        raise ConfigError(f"{_processes(devices, nodes)} needs data.sampling=random (or tile): "
                          f"full-signal training renders the whole grid in one pass and stays "
                          f"single-process")
    return devices, strategy


def _processes(devices: int, nodes: int) -> str:
    return f"--devices {devices}" + (f" on {nodes} nodes" if nodes > 1 else "")


def _build(cfg: DictConfig, resume: bool, devices: int):
    """Data, model and task, every check that can reject the config done before the results
    folder is created; ``cfg`` gains what the run really used (data files, derived bases)."""
    L.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg)
    spec = dm.spec()
    # which files the run reads, paper data set or stand-in; a resumed run must read the same
    record = data_record(dm)
    check_same_data(cfg.get("data_record") if resume else None, record)
    with open_dict(cfg):
        cfg.data_record = record
    model = build_model(cfg, spec)
    check_output_shape(model, spec, str(cfg.model.name))  # before a step trains on a broadcast
    if "bases" in cfg.model and cfg.model.bases is None and hasattr(model, "bases"):
        cfg.model.bases = model.bases  # config.yaml records the bases the run really used
    if "paper_row" in cfg and rank_zero_only.rank == 0:
        print(f"inrbench: {cfg.paper_row.note}", file=sys.stderr)
    blocks = configure_blocks(dm, model, spec)  # data.sampling: blocks/auto
    nodes = int(cfg.trainer.get("num_nodes") or 1)
    if devices * nodes > 1 and getattr(dm, "sampling", None) == "full":
        raise ConfigError(f"{_processes(devices, nodes)} needs data.sampling=random, tile or "
                          f"blocks: "
                          f"full-signal training renders the whole grid in one pass and stays "
                          f"single-process")
    return dm, spec, model, build_task(cfg, model, dm, spec), blocks


def _trainer(cfg: DictConfig, task, out: Path, spec: SignalSpec, steps: int, devices: int,
             strategy: str, results: dict, clock: WallClock, extra: list,
             stacked=None) -> L.Trainer:
    """The run's Trainer; ``stacked`` (a stack's checkpoint IO, :mod:`inrbench.run.stacked`)
    replaces the checkpoint IO, the logger and the profile and latency callbacks, which the
    stack runs per member."""
    every, epochs = int(cfg.task.eval_every), cfg.trainer.get("max_epochs")
    per_run = [] if stacked is not None else [
        ProfileCallback(spec.shape, results),
        LatencyCallback(spec.shape, results, int(cfg.trainer.latency_repeats),
                        int(cfg.trainer.latency_warmup),
                        float(cfg.trainer.get("latency_budget_s", 60.0)), clock)]
    # the task's micro-batches per step: a data-set task's short run may use fewer than
    # task.accumulate (inrbench.tasks.stepimages)
    accumulate = int(getattr(task, "accumulate", None) or cfg.task.accumulate)
    return L.Trainer(
        max_steps=steps, max_epochs=-1 if epochs is None else int(epochs),
        accelerator=cfg.trainer.accelerator, devices=devices,
        num_nodes=int(cfg.trainer.get("num_nodes") or 1),  # SLURM/torchrun set the ranks
        strategy=strategy, use_distributed_sampler=False,  # data modules shard (data/base.py)
        logger=make_logger(cfg, out) if stacked is None else False,
        callbacks=[
            KeepCheckpoints(out / "checkpoints", int(cfg.trainer.checkpoint_every),
                            int(cfg.trainer.get("keep_checkpoints", 3))),
            *per_run, clock, GlobalLoss(), FiniteLoss(out / "checkpoints"),
            *([StepProgressBar(refresh=10)] if cfg.trainer.progress_bar else []),
            *extra,
        ],
        plugins=[stacked if stacked is not None else SafeCheckpointIO()],
        profiler=NoProfiler(),
        # eval_every counts optimizer steps; Lightning's interval counts (micro-)batches
        accumulate_grad_batches=accumulate,
        val_check_interval=min(every, steps) * accumulate,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0, log_every_n_steps=min(50, steps),
        enable_progress_bar=bool(cfg.trainer.progress_bar), enable_model_summary=False,
        default_root_dir=str(out),
    )


def _final_scores(task, model, dm, spec: SignalSpec, out: Path, steps: int) -> dict:
    """The task's own summary (a data-set task scores its test split), else the fitting
    task's full-signal evaluation with the best PSNR seen."""
    model.eval()
    if hasattr(task, "summary"):
        return task.summary(dm, out)
    final = evaluate_fit(model, dm, spec, out)
    task.best = max(task.best, {"psnr": final["psnr"], "step": steps}, key=lambda b: b["psnr"])
    return {**final, "best_psnr": task.best["psnr"], "best_step": task.best["step"]}


def _run(cfg: DictConfig, resume: bool, callbacks: list | None) -> dict:
    out = Path(cfg.trainer.out)
    last = out / "checkpoints" / "last.ckpt"
    steps = int(cfg.task.steps)
    start = _starting_point(out / "checkpoints", resume, steps)
    devices, strategy = _parallel(cfg)
    dm, spec, model, task, blocks = _build(cfg, resume, devices)
    sha = git_sha()  # the code this run starts with
    out.mkdir(parents=True, exist_ok=True)
    if rank_zero_only.rank == 0:  # multi-process: the other processes write nothing
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    results: dict = {}
    clock = WallClock()
    max_time, epochs = cfg.trainer.get("max_time"), cfg.trainer.get("max_epochs")
    budget = Budget(clock, None if max_time is None else float(max_time),
                    None if epochs is None else int(epochs))
    replan = [ReplanSchedule(steps)] if start.planned not in (None, steps) else []
    if cfg.trainer.progress_bar and rank_zero_only.rank == 0:
        print(f"{cfg.model.name} on {cfg.data.name}, {steps} steps -> {out}", flush=True)
    stop = StopOnSignal(last)
    trainer = _trainer(cfg, task, out, spec, steps, devices, strategy, results, clock,
                       [*replan, budget, stop, *(callbacks or [])])
    memory = PeakMemory(trainer.strategy.root_device)
    memory.start()
    with stop:  # SIGTERM/SIGINT: every process stops at one step (inrbench.run.stopping)
        # a task may iterate other data than the run's module (meta-learning: image batches)
        trainer.fit(task, datamodule=getattr(task, "train_data", None) or dm,
                    ckpt_path=str(start.path) if start.path else None, weights_only=True)
    wall_s, train_s, eval_s = clock.elapsed(), clock.train_elapsed(), clock.eval_elapsed()
    train_memory = memory.stop()  # training, its evaluations and the latency renders
    # the last checkpoint holds the final state, so a resume of a finished run is a no-op
    trainer.save_checkpoint(last, weights_only=False)
    if not trainer.is_global_zero:  # rank 0 evaluates and writes; the others get its summary
        done = trainer.strategy.broadcast(None, src=0)
        close_process_group()
        return done
    memory.start()
    final = _final_scores(task, model, dm, spec, out, int(trainer.global_step))
    eval_memory = memory.stop()
    write_metrics_csv(out / "metrics.csv", task)
    timing = {"wall_s": wall_s, "train_s": train_s, "eval_s": eval_s,
              "stopped_by": budget.stopped_by(trainer, steps), "max_time": budget.max_time,
              "max_epochs": budget.max_epochs,
              "memory": {"train": train_memory, "eval_render": eval_memory},
              "time_to_targets": time_to_targets(task, final, spec, int(trainer.global_step),
                                                 train_s)}
    done = summary(cfg, task, model, dm, spec, final, results, trainer,
                   {"blocks": blocks, "devices": devices, "strategy": strategy,
                    "git_sha": sha, **timing})
    atomic_write_json(out / "metrics.json", done)
    if trainer.world_size > 1:
        trainer.strategy.broadcast(done, src=0)
        close_process_group()
    return done
