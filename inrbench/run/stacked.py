"""Runs that share a model config, signal shape, task and step budget, trained in one process
as one stacked model (:mod:`inrbench.models.stack`), each into its own results folder.

A member's folder is an ordinary run's: ``config.yaml``, ``metrics.csv``, ``metrics.json``,
the reconstruction and ``checkpoints/`` (a fit-task checkpoint of that member alone, so it
resumes stacked or by itself). Its final scores come from its own model, unstacked, through
the code a separate run uses. ``metrics.json`` adds ``stack``: member ``i`` of ``n``, the
other members' folders and the stack's clock and memory readings; the member's own
``wall_s``/``train_s``/``peak_rss_mb`` are None (it trained while the others did, so no
time or memory is its alone), its ``latency_ms`` is one member's render.

Stacking is an execution detail: a stack that cannot train (a model ``vmap`` cannot batch, a
member diverging) trains its members one by one instead (:func:`train_runs`), from the
checkpoints they have.
"""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from inrbench.build import build_datamodule
from inrbench.config.machine import check_machine
from inrbench.console import note, quiet_libraries
from inrbench.data.stacked import StackedData
from inrbench.errors import Interrupted
from inrbench.io import atomic_write_json, atomic_write_text
from inrbench.models.stack import NotStackable, StackedModel, stack_refusal
from inrbench.profiling import latency_budget, macs_counts, profile, render_latency_ms
from inrbench.profiling.memory import PeakMemory
from inrbench.run.callbacks import Budget, ReplanSchedule, WallClock
from inrbench.run.folder import RunLock, holds_results, remove_unfinished, snapshot
from inrbench.run.records import make_logger, summary, time_to_targets, write_metrics_csv
from inrbench.run.runner import _build, _final_scores, _starting_point, _trainer, run
from inrbench.run.stack_checkpoints import MemberCheckpoints
from inrbench.run.stopping import StopOnSignal
from inrbench.sysinfo import git_sha
from inrbench.tasks.fit import FitTask
from inrbench.tasks.stacked import StackedFitTask

#: data keys that shape a member's batches: members of one stack agree on them
BATCH_KEYS = ("name", "sampling", "batch_size", "tile", "block", "block_cost", "block_cells",
              "steps_per_epoch")


def stack_key(cfg: DictConfig) -> str | None:
    """What the members of one stack share: the config without the seed, the folder and the
    data keys that choose the signal. None for a run that trains alone: a task other than
    fit, a wall-clock budget (members would share the clock), several processes."""
    if (cfg.task.get("name") or "fit") != "fit" or cfg.trainer.get("max_time") is not None:
        return None
    if int(cfg.trainer.get("devices") or 1) * int(cfg.trainer.get("num_nodes") or 1) > 1:
        return None
    c = OmegaConf.to_container(cfg, resolve=True)
    c["trainer"] = {k: v for k, v in c["trainer"].items() if k not in ("seed", "out")}
    c["data"] = {k: v for k, v in c["data"].items() if k in BATCH_KEYS}
    c.pop("data_record", None)
    return OmegaConf.to_yaml(OmegaConf.create(c))


def _as_member(record: dict, i: int, outs: list[Path]) -> dict:
    """A stacked member's metrics.json: the clock and memory readings belong to the whole
    stack, not to one run, so they move under ``stack`` and the run's own fields say None
    (a report then ranks no stacked run by training time or memory); the member's final
    evaluation memory, steps and time-to-target steps are its own."""
    memory = record.get("memory") or {}
    hits = record.get("time_to_targets")
    record["stack"] = {"member": i, "of": len(outs), "runs": [str(o) for o in outs],
                       **{k: record.get(k) for k in ("wall_s", "train_s", "eval_s")},
                       "memory": memory.get("train"),
                       "time_to_targets": hits}
    record.update(wall_s=None, train_s=None, eval_s=None, peak_rss_mb=None,
                  memory={"train": None, "eval_render": memory.get("eval_render")})
    if hits is not None:
        record["time_to_targets"] = [{**h, "train_s": None} for h in hits]
    return record


def _replay_logs(cfg: DictConfig, out: Path, task, stats: dict, results: dict,
                 every: int) -> None:
    """The member's logger (W&B offline, CSV) given what a separate run logs: the profile,
    the training loss and PSNR every ``every`` steps, each evaluation, the latency."""
    logger = make_logger(cfg, out)
    if not logger:
        return
    # the profile's numbers, as ProfileCallback logs them when a run starts
    logger.log_metrics({f"model/{k}": v for k, v in stats.items()
                        if isinstance(v, (int, float))}, step=0)
    for row in task.history:
        if (row["step"] + 1) % every == 0:
            logger.log_metrics({f"train/{k}": row[k] for k in ("loss", "psnr") if k in row},
                               step=row["step"])
    for row in task.evals:
        logger.log_metrics({f"val/{k[4:]}": v for k, v in row.items()
                            if k.startswith("val_") and isinstance(v, (int, float))},
                           step=row["step"])
    if results.get("latency_ms") is not None:
        last = task.history[-1]["step"] + 1 if task.history else 0
        logger.log_metrics({"model/latency_ms": results["latency_ms"]}, step=last)
    logger.save()
    logger.finalize("success")
    if cfg.trainer.logger == "wandb":
        logger.experiment.finish()


def run_stack(cfgs: list[DictConfig], resume: bool = False,
              callbacks: list | None = None) -> list[dict]:
    """Train ``cfgs`` (one :func:`stack_key`) as one stacked model, each into its
    ``trainer.out``; returns each member's metrics.json. Raises :class:`NotStackable` before
    anything is written when they cannot stack."""
    outs = [Path(c.trainer.out) for c in cfgs]
    if len(set(outs)) != len(outs):
        raise NotStackable("two members share a results folder")
    for cfg in cfgs:
        quiet_libraries(bool(cfg.trainer.get("verbose", False)))
        check_machine(cfg)
    made = [[p for p in [o, *o.parents] if not p.exists()] for o in outs]
    before = [None if m or resume else snapshot(o) for m, o in zip(made, outs)]
    with ExitStack() as locks:
        for out in outs:
            locks.enter_context(RunLock(out))
        try:
            return _run_stack(cfgs, outs, resume, callbacks or [])
        except BaseException:
            if not resume:
                for out, m, b in zip(outs, made, before):
                    remove_unfinished(out, bool(m), m[1:], b)
            raise


def _members(cfgs, outs, resume: bool):
    """Each member built as a separate run builds it (so its initialisation is that run's),
    checked to stack; returns ``(start, built)``."""
    steps = int(cfgs[0].task.steps)
    starts = [_starting_point(o / "checkpoints", resume, steps) for o in outs]
    at = {(s.step, s.path.name if s.path else None, s.planned) for s in starts}
    if len(at) > 1:
        raise NotStackable("the members' checkpoints are at different steps")
    built = [_build(cfg, resume, 1) for cfg in cfgs]
    model = built[0][2]
    why = stack_refusal(model)
    if why:
        raise NotStackable(why)
    if any(type(b[3]) is not FitTask for b in built):
        raise NotStackable("only the fitting task stacks")
    specs = {(tuple(b[1].shape), b[1].channels, b[1].modality) for b in built}
    if len(specs) > 1:
        raise NotStackable("the members' signals differ in shape")
    return starts[0], built


def _run_stack(cfgs, outs: list[Path], resume: bool, callbacks: list) -> list[dict]:
    start, built = _members(cfgs, outs, resume)
    steps = int(cfgs[0].task.steps)
    dms, specs, models, tasks = ([b[k] for b in built] for k in range(4))
    stacked = StackedModel(models)
    if getattr(dms[0], "sampling", "full") == "full":
        stacked.verify(models, "render", tuple(specs[0].shape))
    else:  # coordinates (random samples, tiles; blocks check their per-sample path)
        dims = len(specs[0].shape)
        probe = torch.rand(16, int(getattr(models[0], "in_features", dims)),
                           generator=torch.Generator().manual_seed(0)) * 2 - 1
        stacked.verify(models, "forward", probe.to(next(stacked.parameters()).device))
    task = StackedFitTask(tasks, stacked)
    sha = git_sha()
    for cfg, out in zip(cfgs, outs):
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    stats = profile(models[0], specs[0].shape)
    results = {**stats, "macs_counts": macs_counts(models[0])}
    cfg = cfgs[0]
    clock = WallClock()
    epochs = cfg.trainer.get("max_epochs")
    budget = Budget(clock, None, None if epochs is None else int(epochs))
    replan = [ReplanSchedule(steps)] if start.planned not in (None, steps) else []
    last = outs[0] / "checkpoints" / "last.ckpt"
    stop = StopOnSignal(last)
    io = MemberCheckpoints(outs, stacked, set(tasks[0].state_dict()),
                           int(cfg.trainer.get("keep_checkpoints", 3)))
    if cfg.trainer.progress_bar:
        print(f"{cfg.model.name} on {cfg.data.name}, {len(cfgs)} runs stacked, {steps} steps "
              f"-> {outs[0].parent}", flush=True)
    trainer = _trainer(cfg, task, outs[0], specs[0], steps, 1, "auto", results, clock,
                       [*replan, budget, stop, *callbacks], stacked=io)
    memory = PeakMemory(trainer.strategy.root_device)
    memory.start()
    with stop:
        trainer.fit(task, datamodule=StackedData(dms),
                    ckpt_path=str(outs[0] / "checkpoints" / start.path.name) if start.path
                    else None, weights_only=True)
    for i, model in enumerate(models):
        stacked.load_member(i, model)
    fit_s = clock.elapsed()
    results.update(render_latency_ms(models[0], specs[0].shape, int(cfg.trainer.latency_repeats),
                                     int(cfg.trainer.latency_warmup), latency_budget(
                                         float(cfg.trainer.get("latency_budget_s", 60.0)),
                                         fit_s)))
    wall_s, train_s, eval_s = clock.elapsed(), clock.train_elapsed(), clock.eval_elapsed()
    train_memory = memory.stop()
    trainer.save_checkpoint(last, weights_only=False)
    done = []
    for i, (c, out, dm, spec, model, member) in enumerate(zip(cfgs, outs, dms, specs, models,
                                                               tasks)):
        memory.start()
        final = _final_scores(member, model, dm, spec, out, int(trainer.global_step))
        eval_memory = memory.stop()
        write_metrics_csv(out / "metrics.csv", member)
        info = {"blocks": built[i][4], "devices": 1, "strategy": "auto", "git_sha": sha,
                "wall_s": wall_s, "train_s": train_s, "eval_s": eval_s,
                "stopped_by": budget.stopped_by(trainer, steps), "max_time": None,
                "max_epochs": budget.max_epochs,
                "memory": {"train": train_memory, "eval_render": eval_memory},
                "time_to_targets": time_to_targets(member, final, spec,
                                                   int(trainer.global_step), train_s)}
        record = _as_member(summary(c, member, model, dm, spec, final, results, trainer,
                                    info), i, outs)
        atomic_write_json(out / "metrics.json", record)
        _replay_logs(c, out, member, stats, results, min(50, steps))
        done.append(record)
    return done


#: samples one stacked step may hold, all members together, unless ``max_members`` says
#: otherwise. On a GPU 2^18: 64 members of a 64x64 crop, 4 of 256x256, a 512x512 image
#: alone (its own step already fills the card). On a CPU 2^14 (4 crops of 64x64): a CPU
#: step is compute-bound, and larger stacks leave the caches (reports/stack-throughput-cpu,
#: idle machine: SIREN 64 ms a member in stacks of 4, 118 in stacks of 8, 62 alone)
STACK_SAMPLES = {"gpu": 2**18, "cpu": 2**14}


def samples_per_step(cfg: DictConfig) -> int:
    """Samples one training step of ``cfg`` evaluates: the whole signal, a random batch, a
    tile."""
    data = cfg.data
    sampling = data.get("sampling", "full")
    if sampling in ("random", "blocks") and data.get("batch_size"):
        return int(data.batch_size)
    if sampling == "tile" and data.get("tile"):
        return math.prod(int(t) for t in data.tile)
    return math.prod(build_datamodule(cfg).spec().shape)


def stack_budget(cfg: DictConfig) -> int:
    """:data:`STACK_SAMPLES` of the device ``cfg`` trains on."""
    accelerator = str(cfg.trainer.get("accelerator") or "auto")
    gpu = accelerator in ("gpu", "cuda", "mps") or (
        accelerator == "auto" and (torch.cuda.is_available() or torch.backends.mps.is_available()))
    return STACK_SAMPLES["gpu" if gpu else "cpu"]


def _chunks(idx: list[int], cfg: DictConfig, max_members: int | None) -> list[list[int]]:
    if max_members is None:
        max_members = max(1, stack_budget(cfg) // max(samples_per_step(cfg), 1))
    size = max(1, int(max_members))
    return [idx[i:i + size] for i in range(0, len(idx), size)]


def train_runs(cfgs: list[DictConfig], stack: bool = True, resume: list[bool] | None = None,
               on_done=None, max_members: int | None = None) -> list[dict | Exception]:
    """Train every config into its ``trainer.out``: runs of one :func:`stack_key` (and the
    same resume state) together as a stack when ``stack``, the others one by one. A stack
    that cannot train stacked (:class:`NotStackable`, a member diverging) trains its
    members one by one from the checkpoints they have. A finished run (its metrics.json
    exists) is not trained again; an interrupted one resumes. Returns each run's metrics.json or
    the exception that stopped it, in the order of ``cfgs``; ``on_done(i, result)`` is
    called as each finishes. An interruption (SIGTERM/SIGINT) propagates. A stack holds at
    most ``max_members`` runs (default: as many as keep a step within the device's
    :data:`STACK_SAMPLES`)."""
    resume = list(resume) if resume is not None else [False] * len(cfgs)
    results: list = [None] * len(cfgs)
    groups: dict = {}
    for i, cfg in enumerate(cfgs):
        out = Path(cfg.trainer.out)
        if (out / "metrics.json").is_file():  # finished: its record stands
            results[i] = json.loads((out / "metrics.json").read_text())
            if on_done is not None:
                on_done(i, results[i])
            continue
        resume[i] = resume[i] or holds_results(out)  # interrupted after a checkpoint
        key = stack_key(cfg) if stack else None
        groups.setdefault((key, resume[i]) if key is not None else ("alone", i), []).append(i)

    def finish(i, result):
        results[i] = result
        if on_done is not None:
            on_done(i, result)

    batches = []
    for (key, _), idx in groups.items():
        alone = key == "alone" or len(idx) == 1
        batches += [(False, idx)] if alone else [
            (len(part) > 1, part) for part in _chunks(idx, cfgs[idx[0]], max_members)]
    for stacked, idx in batches:
        if stacked:
            try:
                for i, rec in zip(idx, run_stack([cfgs[i] for i in idx], resume[idx[0]])):
                    finish(i, rec)
                continue
            except Interrupted:
                raise
            except Exception as e:  # NotStackable, a member diverging, a folder in use...
                note(f"{len(idx)} runs of {cfgs[idx[0]].model.name} train one by one: {e}")
        for i in idx:
            try:
                # a stack that stopped may have left this member a checkpoint to go on from
                again = resume[i] or holds_results(Path(cfgs[i].trainer.out))
                finish(i, run(cfgs[i], resume=again))
            except Interrupted:
                raise
            except Exception as e:  # recorded; the next run goes on
                finish(i, e)
    return results

