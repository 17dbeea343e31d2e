"""Hyperparameter sweeps in the W&B sweep format (``conf/sweep/*.yaml``).

A sweep file is a plain W&B sweep configuration: ``method`` (grid, random, bayes), ``metric``
(a key of ``metrics.json``, e.g. ``best_psnr``), and ``parameters`` whose names are inrbench
config keys (``task.lr``, ``model.bases``, ``trainer.seed``); constants (``{value: ...}``) fix
the rest (``model.name``, ``data.name``, ``task.steps``). Two special names select a paper
row instead: ``experiment`` (e.g. ``table12``) and ``row`` (its row id). Nested parameters
(``task: {parameters: {lr: ...}}``) address the same keys. ``program``/``command`` name the
entry point a W&B agent starts (``inrbench agent-run``), which reads ``wandb.config``.

* ``inrbench sweep FILE --local [--trials N] [--out DIR]``: no server. Each trial is drawn by
  W&B's own search engine (the ``sweeps`` package, ``sweeps.next_run``) from the trials so
  far, trained with :func:`inrbench.run.run` into ``DIR/trial-NNN/`` (a normal results
  folder), and recorded in ``DIR/sweep.csv`` and ``DIR/sweep.json``.
* ``inrbench sweep FILE``: creates the sweep on the W&B server (``wandb.sweep``; needs
  ``wandb login`` and network) and prints the ``wandb agent ENTITY/PROJECT/ID`` command.
* ``inrbench agent-run`` (or ``python -m inrbench.sweep``): what the agent runs for each
  trial; maps ``wandb.config`` to config overrides, trains, and writes the run's summary to
  the W&B run so the sweep sees its metric.
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
import traceback
from datetime import datetime
from numbers import Number
from pathlib import Path
from typing import Any

import yaml

from inrbench.config import compose, row_config
from inrbench.config.experiment import get_row, load_experiment
from inrbench.config.files import yaml_problem
from inrbench.errors import ConfigError, InrbenchError
from inrbench.io import atomic_write_json, atomic_write_text, flatten
from inrbench.run import run

SPECIAL = ("experiment", "row")
DEFAULT_COMMAND = ["inrbench", "agent-run"]
METHODS = ("grid", "random", "bayes")


# -- the sweep file --------------------------------------------------------------------------

def load_sweep(path) -> dict:
    """Read and validate a sweep file against W&B's sweep schema; fill in ``program`` and
    ``command`` (``inrbench agent-run``) when absent."""
    path = Path(path)
    if not path.is_file():
        sweeps_dir = Path(__file__).resolve().parent.parent / "conf" / "sweep"
        choices = sorted(p.name for p in sweeps_dir.glob("*.yaml"))
        raise ConfigError(f"sweep file {path} does not exist; choose one of conf/sweep/: "
                          f"{', '.join(choices) or '(none)'}")
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(yaml_problem(path, e)) from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} must be a W&B sweep config (method, metric, parameters)")
    cfg.setdefault("program", "inrbench")
    cfg.setdefault("command", list(DEFAULT_COMMAND))
    check_sweep(cfg, str(path))
    return cfg


def check_sweep(cfg: dict, where: str = "sweep") -> None:
    import sweeps

    if cfg.get("method") not in METHODS:
        raise ConfigError(f"{where}: method must be one of {', '.join(METHODS)}, got "
                          f"{cfg.get('method')!r}")
    if not isinstance(cfg.get("parameters"), dict) or not cfg["parameters"]:
        raise ConfigError(f"{where}: needs parameters, e.g. task.lr: {{values: [1e-4, 1e-3]}}")
    violations = sweeps.schema_violations_from_proposed_config(cfg)
    if violations:
        raise ConfigError(f"{where} is not a valid W&B sweep config: {'; '.join(violations)}")
    if cfg["method"] == "bayes" and not (cfg.get("metric") or {}).get("name"):
        raise ConfigError(f"{where}: method bayes needs metric: {{name: best_psnr, goal: "
                          f"maximize}}")
    _check_references(cfg["parameters"], where)


def _check_references(parameters: dict, where: str, prefix: str = "") -> None:
    """A ``module:Name`` model or data in a sweep file is refused before any trial: a file
    names only registered entries and installed plugins (``inrbench.registry``)."""
    from inrbench.plugins import FLAGS

    for key, spec in parameters.items():
        if not isinstance(spec, dict):
            continue
        if isinstance(spec.get("parameters"), dict):  # nested: model: {parameters: {...}}
            _check_references(spec["parameters"], where, f"{prefix}{key}.")
            continue
        flag = {"model.name": "model", "data.name": "data"}.get(f"{prefix}{key}")
        values = spec.get("values") if isinstance(spec.get("values"), list) else [
            spec.get("value")]
        for value in values if flag else []:
            if isinstance(value, str) and ":" in value and value not in FLAGS[flag]:
                raise ConfigError(f"{where}: {prefix}{key} {value!r} is a module:Name "
                                  f"reference, which a sweep file may not name (it would be "
                                  f"imported from a file); install it as a plugin and name "
                                  f"its entry point (docs/plugins.md)")


# -- W&B config -> inrbench config -------------------------------------------------------------

def _plain(value: Any) -> Any:
    """numpy scalars and tuples from the search engine as plain Python values."""
    if hasattr(value, "item") and not isinstance(value, (list, dict, str)):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _unwrap(config: dict) -> dict:
    """W&B's own keys (``_wandb``) dropped, ``{"value": v}`` wrappers unwrapped, numpy values
    made plain."""
    tree: dict = {}
    for key, value in config.items():
        if str(key).startswith("_"):
            continue
        if isinstance(value, dict) and set(value) == {"value"}:
            value = value["value"]
        tree[str(key)] = _unwrap(value) if isinstance(value, dict) else _plain(value)
    return tree


def trial_params(config: dict) -> dict:
    """``{"task": {"lr": 1e-3}}`` and ``{"task.lr": 1e-3}`` -> ``{"task.lr": 1e-3}``, as W&B
    hands a trial's configuration over."""
    return flatten(_unwrap(config))


def _format(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"sweep value {value} is not a finite number")
    return json.dumps(value)


def to_overrides(config: dict) -> dict:
    """Map a W&B run config (``wandb.config`` or a trial of ``sweeps.next_run``) onto what
    :func:`inrbench.config.compose` takes: ``model``, ``data``, ``experiment``, ``row`` and
    ``key=value`` overrides (values JSON-encoded, which OmegaConf's dotlist parses back)."""
    flat = trial_params(config)
    out = {"model": flat.pop("model.name", None), "data": flat.pop("data.name", None),
           "experiment": flat.pop("experiment", None), "row": flat.pop("row", None)}
    if (out["experiment"] is None) != (out["row"] is None):
        raise ConfigError("a sweep selects a paper row with both 'experiment' and 'row' "
                          "(e.g. experiment: {value: table12}, row: {values: [b4448, b8444]})")
    if out["experiment"] and (out["model"] or out["data"]):
        raise ConfigError("a sweep gives either experiment/row or model.name/data.name")
    for key in flat:
        if "." not in key:
            raise ConfigError(f"sweep parameter {key!r} is not a config key; name one like "
                              f"task.lr, model.bases or trainer.seed (or experiment/row)")
    out["overrides"] = [f"{k}={_format(v)}" for k, v in flat.items()]
    return out


def compose_trial(config: dict, extra: dict | None = None, cli_overrides=()):
    """The run config of one trial: the trial's parameters over the base config (or the
    paper row they select), then the command line's overrides, then ``extra`` (the command
    line's flags such as ``--steps``, and ``trainer.out``), which win over the sweep file."""
    from omegaconf import OmegaConf

    m = to_overrides(config)
    overrides = [*m["overrides"], *cli_overrides]
    if m["experiment"]:
        exp = load_experiment(str(m["experiment"]))
        cfg = row_config(exp, get_row(exp, str(m["row"])), overrides)
    else:
        cfg = compose(model=m["model"], data=m["data"], overrides=overrides)
    for key, value in (extra or {}).items():
        if value is not None:
            OmegaConf.update(cfg, key, value)
    return cfg, m


def command_line(m: dict) -> str:
    """The ``inrbench run`` command that trains the same configuration."""
    head = ["inrbench", "run"]
    if m["experiment"]:
        head += ["--experiment", str(m["experiment"]), "--rows", str(m["row"])]
    else:
        head += [f"--model {m['model']}"] if m["model"] else []
        head += [f"--data {m['data']}"] if m["data"] else []
    return " ".join(head + [f"'{o}'" if any(c in o for c in " []") else o
                            for o in m["overrides"]])


# -- local sweeps ----------------------------------------------------------------------------

def _metric_value(summary: dict | None, name: str | None) -> float | None:
    if not summary or not name:
        return None
    v = summary.get(name)
    return float(v) if isinstance(v, Number) and not isinstance(v, bool) else None


def _searched(cfg: dict) -> set[str]:
    """The parameters the sweep varies (not the constants), as flat config keys."""
    from sweeps.params import HyperParameterSet

    params = HyperParameterSet.from_config(cfg["parameters"])
    return {p.name.replace(HyperParameterSet.NESTING_DELIMITER, ".")
            for p in params.searchable_params}


def _grid_size(cfg: dict) -> int | None:
    from sweeps.params import HyperParameter, HyperParameterSet

    if cfg["method"] != "grid":
        return None
    params = HyperParameterSet.from_config(cfg["parameters"])
    n = 1
    for p in params:
        if p.type == HyperParameter.CATEGORICAL:
            n *= len(p.config["values"])
        elif p.type == HyperParameter.INT_UNIFORM:
            n *= p.config["max"] - p.config["min"] + 1
    return n


def run_local(path, trials: int | None = None, out=None, seed: int = 0,
              extra: dict | None = None, cli_overrides=(), on_trial=None) -> list[dict]:
    """Run the sweep in ``path`` on this machine: draw each trial from the ``sweeps``
    package given the trials so far, train it into ``out/trial-NNN/``, and keep
    ``out/sweep.csv`` / ``out/sweep.json`` up to date. Grid sweeps stop when the grid is
    exhausted (or after ``trials``); random and bayes sweeps need ``trials``."""
    import numpy as np
    import sweeps

    cfg = load_sweep(path)
    if cfg["method"] != "grid" and not trials:
        raise ConfigError(f"a {cfg['method']} sweep never runs out of trials; give --trials N")
    if trials is not None and trials < 1:
        raise ConfigError("--trials must be >= 1")
    name = cfg.get("name") or Path(path).stem
    out = Path(out) if out else Path("runs") / f"sweep-{name}-{datetime.now():%Y%m%d-%H%M%S}"
    metric = (cfg.get("metric") or {}).get("name")
    # the search engine draws with numpy's and Python's global generators
    np.random.seed(seed)
    random.seed(seed)
    history: list = []
    records: list[dict] = []
    limit = trials if trials is not None else _grid_size(cfg)
    searched = _searched(cfg)
    i = 0
    while limit is None or i < limit:
        suggestion = sweeps.next_run(cfg, history)
        if suggestion is None:  # grid exhausted
            break
        params = trial_params(suggestion.config)
        trial_dir = out / f"trial-{i:03d}"
        record = {"trial": i, "out": str(trial_dir), "params": params, "status": "failed",
                  "searched": {k: v for k, v in params.items() if k in searched},
                  "metric": metric, "value": None, "error": None, "command": None}
        summary = None
        try:
            run_cfg, m = compose_trial(suggestion.config,
                                       {**(extra or {}), "trainer.out": str(trial_dir)},
                                       cli_overrides)
            record["command"] = command_line(m) + f" --out {trial_dir}"
            summary = run(run_cfg)
            record.update(status="finished", value=_metric_value(summary, metric),
                          steps=summary.get("steps"),
                          summary={k: v for k, v in summary.items()
                                   if isinstance(v, (int, float, str)) or v is None})
        except Exception as e:  # a failed trial is recorded and the sweep goes on
            if not isinstance(e, InrbenchError):
                traceback.print_exc()
            record["error"] = f"{type(e).__name__}: {e}"
            print(f"inrbench: sweep trial {i} failed: {e}", file=sys.stderr)
        history.append(sweeps.SweepRun(
            name=f"trial-{i:03d}", config=suggestion.config,
            state="finished" if record["status"] == "finished" else "failed",
            summaryMetrics={metric: record["value"]} if metric and record["value"] is not None
            else {}))
        records.append(record)
        _write_summary(out, cfg, name, records, atomic_write_json, atomic_write_text)
        if on_trial is not None:
            on_trial(record)
        i += 1
    return records


def _write_summary(out: Path, cfg: dict, name: str, records: list[dict], write_json,
                   write_text) -> None:
    import io

    import pandas as pd

    metric = (cfg.get("metric") or {}).get("name")
    goal = (cfg.get("metric") or {}).get("goal", "maximize")
    done = [r for r in records if r["value"] is not None]
    best = None
    if done:
        best = (max if goal == "maximize" else min)(done, key=lambda r: r["value"])
    write_json(out / "sweep.json", {"name": name, "sweep": cfg, "metric": metric, "goal": goal,
                                    "best_trial": best["trial"] if best else None,
                                    "trials": records})
    rows = [{"trial": r["trial"], "status": r["status"], **{k: json.dumps(v) if isinstance(
        v, list) else v for k, v in r["params"].items()}, metric or "metric": r["value"],
        "steps": r.get("steps"), "out": r["out"], "error": r["error"]} for r in records]
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    write_text(out / "sweep.csv", buf.getvalue())


# -- W&B server sweeps -----------------------------------------------------------------------

def create_online(path, project: str | None = None, entity: str | None = None) -> dict:
    """Create the sweep on the W&B server and return ``{"id", "entity", "project",
    "command"}``; ``command`` is the ``wandb agent`` line to start workers with."""
    cfg = load_sweep(path)
    if os.environ.get("WANDB_MODE", "online") in ("offline", "disabled", "dryrun"):
        raise InrbenchError(f"creating a W&B sweep needs the W&B server, but WANDB_MODE="
                            f"{os.environ['WANDB_MODE']}; run 'wandb login' and set "
                            f"WANDB_MODE=online, or run it here with --local")
    import wandb

    project = project or cfg.get("project") or "inrbench"
    entity = entity or cfg.get("entity")
    sweep_id = wandb.sweep(cfg, entity=entity, project=project)
    if not entity:
        entity = wandb.Api().default_entity
    return {"id": sweep_id, "entity": entity, "project": project,
            "command": f"wandb agent {entity}/{project}/{sweep_id}"}


def agent_run(argv: list[str] | None = None) -> int:
    """One trial of a W&B sweep, started by ``wandb agent`` (the sweep's ``command``):
    ``wandb.init()`` loads the trial's parameters into ``wandb.config``; they are mapped to
    config overrides, the run is trained into ``--out``/<sweep>/<run id>/ with the W&B logger
    attached to this run, and the summary (``best_psnr`` ...) is written to the W&B run."""
    import argparse

    p = argparse.ArgumentParser(prog="inrbench agent-run",
                                description=agent_run.__doc__.split("\n")[0])
    p.add_argument("--out", default="runs/sweeps", help="parent folder of the trial folders")
    p.add_argument("overrides", nargs="*", help="extra config overrides key=value")
    args = p.parse_args(argv)
    if os.environ.get("WANDB_SWEEP_ID") and not os.environ.get("WANDB_MODE"):
        os.environ["WANDB_MODE"] = "online"  # started by an agent, which talks to the server
    os.environ.setdefault("WANDB_MODE", "offline")
    import wandb


    wrun = wandb.init(project=os.environ.get("WANDB_PROJECT") or "inrbench")
    try:
        config = dict(wrun.config)
        sweep = os.environ.get("WANDB_SWEEP_ID") or "no-sweep"
        out = Path(args.out) / sweep / wrun.id
        cfg, m = compose_trial(config, {"trainer.out": str(out), "trainer.logger": "wandb"},
                               args.overrides)
        print(f"inrbench agent-run: {command_line(m)} --out {out}")
        summary = run(cfg)
        wrun.summary.update({k: v for k, v in summary.items()
                             if isinstance(v, (int, float)) and not isinstance(v, bool)})
        wrun.summary.update({"out": str(out)})
        wandb.finish(exit_code=0)
    except InrbenchError as e:
        print(f"inrbench: error: {e}", file=sys.stderr)
        wandb.finish(exit_code=2)
        return 2
    except BaseException:
        wandb.finish(exit_code=1)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(agent_run())
