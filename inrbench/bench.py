"""``inrbench bench``: several models trained under one budget on one or more signals, one
run at a time, into one folder, then the quality-cost frontier of
:mod:`inrbench.reports.frontier`.

The folder holds ``ROOT/<signal>/<model>/seed<N>/`` (one results folder each, written by
:func:`inrbench.run.run`) and ``bench.json`` (the plan); a paper table's rows
(``experiment=``, ``rows=``) go to ``ROOT/<data>/seed<N>/<row id>/`` instead, each row a point
of the frontier under its id. Runs go one after another in this
process, so no two share the CPU or the GPU. Every run's config is composed and checked
(names, keys, values) before the first one trains. ``bench.json`` records the plan (budget,
models, signals, seeds, overrides); a rerun into the same folder with the same plan skips
every finished run (its ``metrics.json`` exists) and resumes an interrupted one from its
last checkpoint, and a rerun with another plan is refused, naming the difference
(:mod:`inrbench.config.campaign`); ``new=True`` starts in ``ROOT-2`` instead.

Runs of one config that differ in seed, signal or ladder rung train as one stacked model
(:mod:`inrbench.bench_stacks`) under a step budget; ``--no-stack`` trains each alone.

Each run is a child process (``inrbench run``) by default, so its peak memory is its own
(what earlier runs left resident does not count) and one crash stops only that run;
``isolate=False`` trains in this process instead (models registered only here, e.g. by a
test, are then visible).

The budget is the same for every model: ``trainer.max_time`` seconds of training
(evaluations excluded; the cosine schedule is planned over the time) or ``task.steps``
optimizer steps, or both (the first reached ends the run; ``metrics.json`` says which).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from omegaconf import OmegaConf

from inrbench.bench_stacks import outcome, run_group, stack_groups, stack_size
from inrbench.config import compose, row_config
from inrbench.config.campaign import campaign_folder
from inrbench.config.experiment import load_experiment, select_rows
from inrbench.config.files import load_yaml
from inrbench.config.resume import resume_config
from inrbench.config.signals import Signal, safe, signals  # noqa: F401 (part of bench's API)
from inrbench.config.validation import check_buildable, parse_duration
from inrbench.console import held_warnings, note
from inrbench.errors import ConfigError, InrbenchError
from inrbench.io import append_lines, atomic_write_json
from inrbench.ladder import budget_label, choose, signal_spec
from inrbench.reports.frontier import write_report
from inrbench.run import run
from inrbench.run.folder import holds_results

#: ``task.steps`` of a run bounded by time alone: never the bound that ends it
UNBOUNDED_STEPS = 10**9


def budget_extra(budget: str | None, steps: int | None) -> dict:
    """The config keys of a budget: ``trainer.max_time`` and/or ``task.steps``."""
    if budget is None and steps is None:
        raise ConfigError("give --budget TIME (e.g. 90s, 10m) or --steps N, or both")
    seconds = None
    if budget is not None:
        seconds = parse_duration(budget)
        if seconds is None:
            raise ConfigError(f"--budget must be a duration > 0 (seconds, or e.g. 90s, 10m, "
                              f"1h30m), got {budget!r}")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be an integer >= 1, got {steps}")
    return {"trainer.max_time": seconds,
            "task.steps": steps if steps is not None else UNBOUNDED_STEPS}


def _rungs(model: str, sig: Signal, overrides: list[str], extra: dict, ladder, sized: dict):
    """``[(folder part, extra keys)]``: one rung per ladder budget, the knob value chosen by
    :func:`inrbench.ladder.choose` (cached in ``sized`` by model, signal shape and budget);
    without a ladder one rung at the model's own size."""
    if ladder is None:
        return [((), {})]
    axis, budgets = ladder
    cfg = compose(model=model, data=sig.data, overrides=[*sig.overrides, *overrides],
                  extra=extra)
    if ("spec", sig.label) not in sized:  # reading the signal once per signal, not per model
        sized[("spec", sig.label)] = signal_spec(cfg)
    spec = sized[("spec", sig.label)]
    rungs = []
    for budget in budgets:
        key = (model, tuple(spec.shape), spec.channels, axis, budget)
        if key not in sized:
            sized[key] = choose(cfg, spec, axis, budget)
        got = sized[key]
        keys = {f"ladder.{k}": got[k] for k in ("axis", "budget", "knob", "value", "count",
                                                 "within")}
        if got["knob"] is not None:
            keys[f"model.{got['knob']}"] = got["value"]
        rungs.append(((budget_label(axis, budget),), keys))
    return rungs


def plan(models: list[str], sigs: list[Signal], seeds: list[int], root: Path,
         overrides: list[str], extra: dict, quality: float | None = None,
         ladder: tuple[str, list[float]] | None = None) -> list[dict]:
    """Every run's folder and config, composed (so bad names or keys stop here, before
    anything trains); ``quality`` joins ``task.targets`` so its time to quality is recorded.
    With ``ladder=(axis, budgets)`` every model is sized to every budget (its knob chosen on
    meta tensors) into ``ROOT/<signal>/<model>/<axis>-<budget>/seed<N>/``."""
    if not models:
        raise ConfigError("--models needs at least one model, e.g. --models asmr,siren")
    entries, sized = [], {}
    for sig in sigs:
        for model in models:
            for part, keys in _rungs(model, sig, overrides, extra, ladder, sized):
                for seed in seeds:
                    out = root.joinpath(sig.label, safe(model), *part, f"seed{seed}")
                    ex = {**extra, **keys, "trainer.seed": seed, "trainer.out": str(out)}
                    cfg = compose(model=model, data=sig.data, overrides=[*sig.overrides,
                                                                         *overrides], extra=ex)
                    check_buildable(cfg)
                    targets = [float(t) for t in cfg.task.get("targets") or []]
                    if quality is not None and "targets" in cfg.task and quality not in targets:
                        ex["task.targets"] = sorted([*targets, float(quality)])
                        cfg.task.targets = ex["task.targets"]
                    entries.append({"signal": sig.label, "data": sig.data, "model": model,
                                    "seed": seed, "out": out, "cfg": cfg, "extra": ex,
                                    "overrides": [*sig.overrides, *overrides]})
    return entries


def plan_rows(experiment: str, ids: list[str] | None, seeds: list[int], root: Path,
              overrides: list[str], extra: dict, quality: float | None = None) -> list[dict]:
    """The runs of a paper table's rows (``conf/experiment/<experiment>.yaml``), composed."""
    exp = load_experiment(experiment)
    entries = []
    for row in select_rows(exp, ids):
        for seed in seeds:
            out = root / "_" / f"seed{seed}" / row["id"]
            ex = {**extra, "trainer.seed": seed, "trainer.out": str(out)}
            cfg = row_config(exp, row, overrides, ex)
            check_buildable(cfg)
            sig = safe(str(cfg.data.name))
            out = root / sig / f"seed{seed}" / row["id"]
            ex["trainer.out"], cfg.trainer.out = str(out), str(out)
            targets = [float(t) for t in cfg.task.get("targets") or []]
            if quality is not None and "targets" in cfg.task and quality not in targets:
                ex["task.targets"] = sorted([*targets, float(quality)])
                cfg.task.targets = ex["task.targets"]
            entries.append({"signal": sig, "data": str(cfg.data.name), "model": row["id"],
                            "seed": seed, "out": out, "cfg": cfg, "extra": ex,
                            "overrides": list(overrides), "experiment": experiment})
    return entries


def _command(entry: dict, resume: bool) -> list[str]:
    extra = {k: v for k, v in entry["extra"].items() if v is not None}
    keys = [f"{k}={v}" for k, v in extra.items() if k not in ("trainer.seed", "trainer.out")]
    what = (["--experiment", entry["experiment"], "--rows", entry["model"], "--out",
             str(entry["out"].parent)] if entry.get("experiment") else
            ["--model", entry["model"], "--data", entry["data"], "--out", str(entry["out"])])
    return [sys.executable, "-m", "inrbench.cli", "run", *what, "--seed", str(entry["seed"]),
            *(["--resume"] if resume else []), *entry["overrides"], *keys]


def run_one(entry: dict, isolate: bool = True) -> str:
    """Train one entry unless finished: ``done`` (skipped), ``resumed`` or ``trained``."""
    out: Path = entry["out"]
    if (out / "metrics.json").is_file():
        return "done"
    resume = holds_results(out)  # interrupted after a checkpoint: continue it
    if isolate:
        proc = subprocess.run(_command(entry, resume), stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            raise InrbenchError(lines[-1] if lines else f"exit status {proc.returncode}")
    elif entry.get("experiment"):
        run(entry["cfg"], resume=resume)
    elif resume:
        run(resume_config(out, entry["overrides"], entry["extra"], model=entry["model"],
                          data=entry["data"]), resume=True)
    else:
        run(entry["cfg"])
    return "resumed" if resume else "trained"


def _check_folders(entries: list[dict]) -> None:
    """A run folder already in the bench must hold the budget planned now: a folder from an
    older bench (without a recorded plan) or one trained by hand is refused, not mixed in."""
    for entry in entries:
        path = entry["out"] / "config.yaml"
        if not path.is_file():
            continue
        saved = load_yaml(path)
        for key in ("task.steps", "trainer.max_time"):
            have, want = OmegaConf.select(saved, key), OmegaConf.select(entry["cfg"], key)
            if have != want:
                raise ConfigError(f"{entry['out']} was trained with {key}={have}, this bench "
                                  f"plans {want}; rerun with that budget to continue it, or "
                                  f"add --new to start a new bench folder")


def bench_plan(models, sigs, seeds, extra: dict, overrides, experiment, rows,
               ladder=None) -> dict:
    """What ``bench.json`` records and a rerun into the folder must repeat (``--quality``
    may change: it is the report's question, asked again of the same runs)."""
    return {"task.steps": extra["task.steps"], "trainer.max_time": extra["trainer.max_time"],
            "models": list(models), "seeds": list(seeds), "overrides": list(overrides),
            "signals": [" ".join([s.data, *s.overrides]) for s in sigs],
            "experiment": experiment, "rows": list(rows) if rows else None,
            "ladder": {"axis": ladder[0], "budgets": list(ladder[1])} if ladder else None}


def _prepare(models, sigs, root: Path, budget, steps, seeds, overrides, quality, experiment,
             rows, new, ladder=None):
    """Every run planned and checked, the folder chosen (refused when it holds another
    plan) and the plan recorded in it: ``(root, entries)``."""
    extra = {**budget_extra(budget, steps), "trainer.logger": "none"}
    plan_args = (list(seeds), list(overrides), extra, quality, ladder)
    if experiment:
        if ladder is not None:
            raise ConfigError("--ladder sizes --models; a paper table's rows have their sizes")
        entries = plan_rows(experiment, rows, list(seeds), Path(root), list(overrides), extra,
                            quality)
        models = [e["model"] for e in entries if e["seed"] == seeds[0]]
        sigs = [Signal(d, [], d) for d in dict.fromkeys(e["signal"] for e in entries)]
    else:
        entries = plan(models, sigs, list(seeds), Path(root), list(overrides), extra, quality,
                       ladder)
    record = bench_plan(models, sigs, seeds, extra, overrides, experiment, rows, ladder)
    chosen, _ = campaign_folder(Path(root), "bench.json", record, new, what="bench")
    if chosen != Path(root):  # --new: the same runs, planned under the new folder
        note(f"{root} holds a bench; this one goes to {chosen}")
        root = chosen
        entries = (plan_rows(experiment, rows, plan_args[0], root, *plan_args[1:-1])
                   if experiment else plan(models, sigs, plan_args[0], root, *plan_args[1:]))
    _check_folders(entries)
    Path(root).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(root) / "bench.json", {
        "models": models, "signals": [s.__dict__ for s in sigs], "seeds": list(seeds),
        "budget": {"max_time": extra["trainer.max_time"], "steps": steps},
        "experiment": experiment, "overrides": list(overrides), "plan": record,
        "ladder": record["ladder"]})
    return Path(root), entries


def bench(models: list[str], sigs: list[Signal], root: Path, budget: str | None = None,
          steps: int | None = None, seeds: tuple[int, ...] = (0,), overrides=(),
          quality: float | None = None, on_run=None, isolate: bool = True,
          experiment: str | None = None, rows: list[str] | None = None,
          new: bool = False, ladder: tuple[str, list[float]] | None = None,
          stack: bool = True, max_members: int | None = None) -> dict:
    """Train every model on every signal under the budget, then write the frontier report
    into ``root``. Returns ``{"root", "runs": [...], "report": ...}``; a run that fails is
    recorded (``status: failed``, its error) and the others go on. With ``experiment`` the
    runs are that table's ``rows`` (default all) and ``models``/``sigs`` are unused. Every
    run is composed and checked first; a ``root`` holding another plan is refused, and
    ``new`` puts the bench in ``ROOT-2`` (``ROOT-3``...) when ``root`` is taken. ``ladder``
    (``(axis, budgets)``, :func:`inrbench.ladder.parse_ladder`) trains every model at every
    budget, sized by its knob. Runs that can train as one stacked model do
    (:mod:`inrbench.bench_stacks`; ``stack=False`` trains each alone, ``max_members``
    bounds a stack); their records are those of runs trained alone. ``seconds`` of a stacked
    run is its stack's, and ``stacked`` says how many runs the stack held."""
    with held_warnings() as held:  # a refusal is the one line printed; the rest is logged
        root, entries = _prepare(models, sigs, Path(root), budget, steps, seeds, overrides,
                                 quality, experiment, rows, new, ladder)
    append_lines(root / "warnings.log", held)
    done = []
    for group in stack_groups(entries, stack, quality):
        t0 = time.perf_counter()
        if len(group) > 1:
            outcomes = run_group(group, Path(root), isolate, max_members)
        else:
            try:
                outcomes = [(run_one(group[0], isolate), None)]
            except (InrbenchError, RuntimeError, ValueError) as e:
                outcomes = [outcome(e)]
        seconds = time.perf_counter() - t0
        for entry, (status, error) in zip(group, outcomes):
            rec = {k: entry[k] for k in ("signal", "model", "seed")}
            rec["budget"] = entry["extra"].get("ladder.budget")
            rec.update(out=str(entry["out"]), status=status, error=error, seconds=seconds,
                       stacked=stack_size(entry["out"]))
            done.append(rec)
            if on_run:
                on_run(rec)
    if not any(r["status"] != "failed" for r in done):
        raise InrbenchError(f"every run failed; first: {done[0]['error']}")
    stacked = sum(1 for r in done if r["stacked"] > 1 and r["status"] != "failed")
    if stacked:
        note(f"{stacked} runs trained in stacks: their training time and memory are their "
             f"stack's (metrics.json 'stack'), so the report ranks neither for them; "
             f"--no-stack times each run alone")
    return {"root": Path(root), "runs": done, "report": write_report(Path(root), quality)}
