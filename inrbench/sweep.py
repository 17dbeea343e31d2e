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
from inrbench.config.campaign import campaign_folder
from inrbench.config.experiment import get_row, load_experiment
from inrbench.config.files import yaml_problem
from inrbench.config.validation import check_buildable
from inrbench.console import held_warnings, note
from inrbench.errors import ConfigError, InrbenchError
from inrbench.io import append_lines, atomic_write_json, atomic_write_text, flatten, safe_name
from inrbench.run import run
from inrbench.run.folder import holds_results

SPECIAL = ("experiment", "row")
DEFAULT_COMMAND = ["inrbench", "agent-run"]
METHODS = ("grid", "random", "bayes")


def _sweeps():
    """W&B's ``sweeps`` package (and its ``params``), imported without the pydantic v2
    deprecation warnings its class-based configs raise on import: they are about the
    package's source, nothing a user can act on, and they would precede every line."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"pydantic\..*",
                                message=r"Valid config keys have changed in V2")
        warnings.filterwarnings("ignore", message=r"Support for class-based `config` is "
                                r"deprecated", module=r"pydantic\..*|sweeps\..*")
        import sweeps
        import sweeps.params

    return sweeps


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
    sweeps = _sweeps()

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
    HyperParameterSet = _sweeps().params.HyperParameterSet
    params = HyperParameterSet.from_config(cfg["parameters"])
    return {p.name.replace(HyperParameterSet.NESTING_DELIMITER, ".")
            for p in params.searchable_params}


def _grid_size(cfg: dict) -> int | None:
    sp = _sweeps().params
    HyperParameter, HyperParameterSet = sp.HyperParameter, sp.HyperParameterSet
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


#: parameter types whose ``min``/``max`` are values a trial may take (the others are in log
#: space or unbounded: their ends are taken as the 0.1% and 99.9% quantiles)
_VALUE_BOUNDS = ("param_uniform", "param_int_uniform", "param_quniform",
                 "param_loguniform_v2", "param_qloguniform_v2", "param_inv_loguniform_v2")


def _next_run(cfg: dict, history: list):
    """The search engine's next trial, without the Gaussian process's convergence warnings
    (bayes): they are about the engine's fit, nothing a user can act on."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"sklearn\.gaussian_process\..*")
        return _sweeps().next_run(cfg, history)


def _ends(p) -> list:
    """The values that stand for one parameter in the check before the first trial: every
    value of a categorical one, the ends of a distribution."""
    if "values" in p.config:
        return list(p.config["values"])
    if "value" in p.config:
        return [p.config["value"]]
    if p.type in _VALUE_BOUNDS:
        return [p.config["min"], p.config["max"]]
    return [_plain(p.ppf(0.001)), _plain(p.ppf(0.999))]


def planned_configs(cfg: dict, limit: int | None) -> list[dict]:
    """W&B trial configs that together hold every value the sweep can give each parameter:
    every planned point of a grid; for random and bayes, one config per value of each
    categorical parameter and per end of each distribution (the others at their first)."""
    import numpy as np

    sweeps = _sweeps()
    if cfg["method"] == "grid":
        state = np.random.get_state(), random.getstate()
        found: list[dict] = []
        history: list = []
        while limit is None or len(found) < limit:
            suggestion = _next_run(cfg, history)
            if suggestion is None:
                break
            found.append(suggestion.config)
            history.append(sweeps.SweepRun(name=f"plan-{len(found)}", state="finished",
                                           config=suggestion.config))
        np.random.set_state(state[0])
        random.setstate(state[1])
        return found
    sp = sweeps.params
    ends = {p.name.replace(sp.HyperParameterSet.NESTING_DELIMITER, "."): _ends(p)
            for p in sp.HyperParameterSet.from_config(cfg["parameters"])}
    first = {k: v[0] for k, v in ends.items()}
    points = [first] + [{**first, k: v} for k, vs in ends.items() for v in vs[1:]]
    return [{k: {"value": v} for k, v in point.items()} for point in points]


def check_trials(path, cfg: dict, limit: int | None, extra: dict, cli_overrides) -> None:
    """Compose and check the config of every planned trial (every value of every parameter,
    :func:`planned_configs`) before the first one trains: a typo'd key, an unknown model or
    a bad value stops the sweep in one line, with nothing trained or written."""
    for config in planned_configs(cfg, limit):
        try:
            run_cfg, _ = compose_trial(config, extra, cli_overrides)
            check_buildable(run_cfg)
        except ConfigError as e:
            values = {k: v for k, v in trial_params(config).items() if k in _searched(cfg)}
            raise ConfigError(f"{path}: {e}" + (f" (trial {values})" if values else "")) \
                from None


def sweep_plan(cfg: dict, seed: int, extra: dict, cli_overrides) -> dict:
    """What ``sweep.json`` records and a rerun into the folder must repeat: the sweep file,
    the search seed, the command line's overrides and budget (``--trials`` may grow)."""
    return json.loads(json.dumps({
        "sweep": cfg, "seed": seed, "overrides": list(cli_overrides),
        **{k: v for k, v in extra.items() if k != "trainer.logger"}}, default=str))


def sweep_folder(path, name: str, out) -> Path:
    """``--out``, or ``runs/sweep-<name>-<timestamp>`` with the file's ``name`` made one
    folder name (:func:`inrbench.io.safe_name`): a name such as ``x/../../escape`` can not
    place the sweep outside ``runs/``."""
    if out:
        return Path(out)
    label = safe_name(str(name)).strip("._") or safe_name(Path(path).stem) or "sweep"
    return Path("runs") / f"sweep-{label}-{datetime.now():%Y%m%d-%H%M%S}"


def _earlier_trials(out: Path) -> dict[int, dict]:
    record = json.loads((out / "sweep.json").read_text())
    return {int(r["trial"]): r for r in record.get("trials") or [] if "trial" in r}


def run_local(path, trials: int | None = None, out=None, seed: int = 0,
              extra: dict | None = None, cli_overrides=(), on_trial=None,
              new: bool = False) -> list[dict]:
    """Run the sweep in ``path`` on this machine: draw each trial from the ``sweeps``
    package given the trials so far, train it into ``out/trial-NNN/``, and keep
    ``out/sweep.csv`` / ``out/sweep.json`` up to date. Grid sweeps stop when the grid is
    exhausted (or after ``trials``); random and bayes sweeps need ``trials``.

    Every planned trial is composed and checked first. ``sweep.json`` records the plan; a
    rerun into the same ``out`` with the same plan keeps the finished trials (same ids and
    parameters, not retrained), resumes an interrupted one from its checkpoint and retries
    failed ones; another plan is refused naming the difference, and ``new`` starts in
    ``OUT-2`` instead."""
    import numpy as np

    sweeps = _sweeps()
    cfg = load_sweep(path)
    if cfg["method"] != "grid" and not trials:
        raise ConfigError(f"a {cfg['method']} sweep never runs out of trials; give --trials N")
    if trials is not None and trials < 1:
        raise ConfigError("--trials must be >= 1")
    name = cfg.get("name") or Path(path).stem
    extra = dict(extra or {})
    limit = trials if trials is not None else _grid_size(cfg)
    requested = sweep_folder(path, name, out)
    with held_warnings() as held:  # a refusal is the one line printed; the rest is logged
        check_trials(path, cfg, limit, extra, cli_overrides)
        plan = sweep_plan(cfg, seed, extra, cli_overrides)
        out, continuing = campaign_folder(requested, "sweep.json", plan, new, what="sweep")
    if out != requested:
        note(f"{requested} holds a sweep; this one goes to {out}")
    earlier = _earlier_trials(out) if continuing else {}
    metric = (cfg.get("metric") or {}).get("name")
    # the search engine draws with numpy's and Python's global generators
    np.random.seed(seed)
    random.seed(seed)
    history: list = []
    records: list[dict] = []
    searched = _searched(cfg)

    def write():  # the trials kept from earlier beyond this call's count stay listed
        kept = [r for i, r in sorted(earlier.items()) if i >= len(records)]
        _write_summary(out, cfg, name, records + kept, atomic_write_json, atomic_write_text,
                       plan)

    write()
    append_lines(out / "warnings.log", held)
    i = 0
    while limit is None or i < limit:
        suggestion = _next_run(cfg, history)
        if suggestion is None:  # grid exhausted
            break
        before = earlier.get(i, {})
        config = before.get("config") or _plain(suggestion.config)
        params = trial_params(config)
        trial_dir = out / f"trial-{i:03d}"
        if before.get("status") == "finished":  # kept as it is, not trained again
            record = before
        else:
            record = _train_trial(i, config, params, trial_dir, searched, metric, extra,
                                  cli_overrides, resume=holds_results(trial_dir))
        history.append(sweeps.SweepRun(
            name=f"trial-{i:03d}", config=config,
            state="finished" if record["status"] == "finished" else "failed",
            summaryMetrics={metric: record["value"]} if metric and record["value"] is not None
            else {}))
        records.append(record)
        write()
        if on_trial is not None:
            on_trial({**record, "kept": record is before})
        i += 1
    return records


def _train_trial(i: int, config: dict, params: dict, trial_dir: Path, searched: set,
                 metric: str | None, extra: dict, cli_overrides, resume: bool) -> dict:
    """Train one trial (``resume``: from its folder's checkpoint; a folder that already holds
    its metrics is read, not trained again) and return its record; a failure is recorded."""
    record = {"trial": i, "out": str(trial_dir), "params": params, "config": config,
              "status": "failed", "searched": {k: v for k, v in params.items() if k in searched},
              "metric": metric, "value": None, "error": None, "command": None}
    try:
        run_cfg, m = compose_trial(config, {**extra, "trainer.out": str(trial_dir)},
                                   cli_overrides)
        record["command"] = command_line(m) + f" --out {trial_dir}"
        finished = trial_dir / "metrics.json"
        summary = json.loads(finished.read_text()) if finished.is_file() else \
            run(run_cfg, resume=resume)
        record.update(status="finished", value=_metric_value(summary, metric),
                      steps=summary.get("steps"),
                      summary={k: v for k, v in summary.items()
                               if isinstance(v, (int, float, str)) or v is None})
    except Exception as e:  # a failed trial is recorded and the sweep goes on
        if not isinstance(e, InrbenchError):
            traceback.print_exc()
        record["error"] = f"{type(e).__name__}: {e}"
        print(f"inrbench: sweep trial {i} failed: {e}", file=sys.stderr)
    return record


def _write_summary(out: Path, cfg: dict, name: str, records: list[dict], write_json,
                   write_text, plan: dict | None = None) -> None:
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
                                    "trials": records, "plan": plan})
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
