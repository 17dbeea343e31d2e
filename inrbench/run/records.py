"""What a run writes besides checkpoints: ``metrics.csv`` (one row per step, evaluations merged
in), ``metrics.json`` (the summary: what was trained, on which data and machine, with which code,
and how it scored), the reconstruction, and the logger's files."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

from inrbench.data.base import SignalSpec
from inrbench.data.export import save_reconstruction
from inrbench.data.provenance import summary_fields
from inrbench.errors import ConfigError
from inrbench.io import atomic_write_text, safe_name, write_png
from inrbench.metrics import METRIC_SPEC, evaluate, headline_metric
from inrbench.models.base import EVAL_CHUNK
from inrbench.profiling.machine import machine
from inrbench.sysinfo import versions


def default_out(name: str) -> Path:
    """``runs/<name>-<timestamp>``: a new results folder for a run or an experiment (a
    ``module:Class`` model names the folder by its class)."""
    return Path("runs") / f"{safe_name(name)}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


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


def write_metrics_csv(path: Path, task) -> None:
    steps = pd.DataFrame(task.history)
    if len(steps):  # micro-batches of one optimizer step (task.accumulate > 1) -> their mean
        steps = steps.groupby("step", as_index=False).mean()
    evals = pd.DataFrame(task.evals)
    if len(evals):
        steps = steps.merge(evals, on="step", how="outer") if len(steps) else evals
    atomic_write_text(path, steps.sort_values("step").to_csv(index=False) if len(steps) else "")


def evaluate_fit(model, dm, spec: SignalSpec, out: Path) -> dict:
    """The fitting task's final score: the whole signal rendered once against ``dm.signal``,
    the reconstruction saved beside the metrics."""
    with torch.no_grad():
        pred = model.render(spec.shape, chunk=EVAL_CHUNK)
        final = evaluate(pred, dm.signal.to(pred.device), spec)
    if spec.modality == "image":
        write_png(out / "reconstruction.png", pred)
    else:  # WAV for audio, a few PNG frames for video, a PLY surface for 3D shapes
        save_reconstruction(out, pred, spec)
    return final


def time_to_targets(task, final: dict, spec: SignalSpec, step: int, train_s: float) -> list | None:
    """For each of the task's ``targets`` (headline-metric thresholds), the first evaluation
    whose value reached it: ``{"target", "step", "train_s"}`` (training seconds, evaluations
    excluded), ``step``/``train_s`` None when no evaluation (the final one included) did.
    None for a task without targets."""
    targets = getattr(task, "targets", None)
    if not targets:
        return None
    metric = headline_metric(spec)
    points = [(r["step"], r.get("train_s"), r.get(f"val_{metric}"))
              for r in sorted(task.evals, key=lambda r: r["step"])]
    points.append((step, train_s, final.get(metric)))
    out = []
    for target in targets:
        hit = next(((s, t) for s, t, v in points if v is not None and v >= target), (None, None))
        out.append({"target": float(target), "metric": metric, "step": hit[0],
                    "train_s": hit[1]})
    return out


def _epoch_fields(dm, trainer) -> dict:
    """``steps_per_epoch`` (as resolved) and ``epochs`` trained, for data whose epochs sample
    every sample once (``epochs_cover_samples``: random and block sampling)."""
    if not getattr(dm, "epochs_cover_samples", False):
        return {}
    per_epoch = dm.steps_per_epoch
    return {"steps_per_epoch": per_epoch, "epochs": int(trainer.global_step) / per_epoch}


def summary(cfg: DictConfig, task, model, dm, spec: SignalSpec, final: dict, results: dict,
            trainer, run_info: dict) -> dict:
    """The ``metrics.json`` of a finished run."""
    lr = cfg.task.get("lr")
    return {
        "model": cfg.model.name, "data": cfg.data.name,
        **summary_fields(OmegaConf.to_container(cfg.data_record)),
        "task": cfg.task.get("name") or "fit",
        "modality": spec.modality, "signal_shape": list(spec.shape), "channels": spec.channels,
        "metric": headline_metric(spec), "lr": None if lr is None else float(lr), **final,
        "params": results.get("params"), "macs": results.get("macs"),
        "macs_measured": results.get("macs_measured"), "macs_counts": results.get("macs_counts"),
        "macs_source": results.get("macs_source"),
        "flops": results.get("flops"), "flops_by_class": results.get("flops_by_class"),
        "cost_rule": results.get("cost_rule"),
        "flops_unclassified": results.get("flops_unclassified"),
        "latency_ms": results.get("latency_ms"), "latency_ms_all": results.get("latency_ms_all"),
        "latency_device": results.get("latency_device"),
        **{k: results.get(k) for k in ("latency_repeats", "latency_warmup", "latency_budget_s")},
        "backend": getattr(model, "backend", "torch"), "steps": int(trainer.global_step),
        "sampling": getattr(dm, "sampling", None), "blocks": run_info["blocks"],
        "seed": int(cfg.trainer.seed), "wall_s": run_info["wall_s"],
        "train_s": run_info.get("train_s"), "eval_s": run_info.get("eval_s"),
        "stopped_by": run_info.get("stopped_by"), "max_time": run_info.get("max_time"),
        "max_epochs": run_info.get("max_epochs"),
        **_epoch_fields(dm, trainer),
        "time_to_targets": run_info.get("time_to_targets"),
        "memory": run_info.get("memory"),
        "peak_rss_mb": (run_info.get("memory") or {}).get("train", {}).get("rss_mb"),
        "metric_spec": METRIC_SPEC,
        "devices": run_info["devices"],
        "num_nodes": int(cfg.trainer.get("num_nodes") or 1), "strategy": run_info["strategy"],
        "paper_row": OmegaConf.to_container(cfg.paper_row) if "paper_row" in cfg else None,
        # the ladder budget the bench sized this run for (``inrbench bench --ladder``)
        "ladder": OmegaConf.to_container(cfg.ladder) if "ladder" in cfg else None,
        "machine": machine(trainer.strategy.root_device),
        "versions": versions(), "git_sha": run_info["git_sha"], "out": str(cfg.trainer.out),
        "finished_at": datetime.now().isoformat(timespec="seconds"),
    }
