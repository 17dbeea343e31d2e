"""A bench's runs trained as stacked models where they can (:mod:`inrbench.run.stacked`): the
seeds, signals (``--vary``) and ladder rungs of one model config that share a signal shape
and a step budget go into one process and one stacked model, each still into its own
results folder, so the bench's records and report are those of one-by-one runs.

Runs bounded by wall time (``--budget``) or asked a time to quality (``--quality``) train one
by one: their results depend on the clock, which stacked members share. ``--no-stack``
trains every run alone.

A stack runs in a child process (``inrbench stack-runs PLAN``) unless the bench is
``--in-process``. The plan file lists each member as the bench planned it (model, data,
overrides, config keys); the child composes them again as ``inrbench run`` would. A
``module:Class`` model is imported only when the bench's command line named it, which the
child is given on its own command line.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from pathlib import Path

from inrbench.config import compose, row_config
from inrbench.config.experiment import load_experiment, select_rows
from inrbench.errors import ConfigError
from inrbench.io import atomic_write_json
from inrbench.run.folder import holds_results
from inrbench.run.stacked import stack_key, train_runs


def stack_groups(entries: list[dict], stack: bool = True,
                 quality: float | None = None) -> list[list[dict]]:
    """``entries`` in groups that may train as one stack (same :func:`stack_key` and the
    same resume state), in the plan's order of each group's first run; a finished run, a
    run that trains alone and every run under ``stack=False`` or a ``quality`` question
    form groups of one."""
    groups: dict = {}
    for e in entries:
        key = None
        if stack and quality is None and not (e["out"] / "metrics.json").is_file():
            key = stack_key(e["cfg"])
        k = (key, holds_results(e["out"])) if key is not None else ("alone", id(e))
        groups.setdefault(k, []).append(e)
    return list(groups.values())


def stack_size(out: Path) -> int:
    """How many runs the run in ``out`` trained with (its metrics.json ``stack``; 1 alone,
    or when it has no record)."""
    try:
        return int((json.loads((Path(out) / "metrics.json").read_text()).get("stack")
                    or {}).get("of", 1))
    except (OSError, ValueError, TypeError, AttributeError):
        return 1


def _plan_member(e: dict) -> dict:
    return {"model": e["model"], "data": e["data"], "overrides": list(e["overrides"]),
            "extra": {k: v for k, v in e["extra"].items()},
            "experiment": e.get("experiment")}


def member_config(m: dict):
    """The config of a planned member, composed as ``inrbench run`` composes it."""
    if m.get("experiment"):
        exp = load_experiment(m["experiment"])
        [row] = select_rows(exp, [m["model"]])
        return row_config(exp, row, m["overrides"], m["extra"])
    return compose(model=m["model"], data=m["data"], overrides=m["overrides"],
                   extra=m["extra"])


def outcome(result) -> tuple[str | None, str | None]:
    """``("failed", its first line)`` for an exception, ``(None, None)`` for a record."""
    if isinstance(result, Exception):
        text = str(result).strip()
        return "failed", text.splitlines()[0] if text else type(result).__name__
    return None, None


def run_group(group: list[dict], root: Path, isolate: bool = True,
              max_members: int | None = None) -> list[tuple[str, str | None]]:
    """Train ``group`` (one stack, or its members one by one where it cannot stack);
    ``(status, error)`` per member: ``trained``, ``resumed`` or ``failed``."""
    how = ["resumed" if holds_results(e["out"]) else "trained" for e in group]
    if not isolate:
        results = train_runs([e["cfg"] for e in group], max_members=max_members)
        return [outcome(r) if isinstance(r, Exception) else (h, None)
                for r, h in zip(results, how)]
    folder = root / ".stacks"
    name = uuid.uuid4().hex[:12]
    plan, result = folder / f"{name}.json", folder / f"{name}.result.json"
    atomic_write_json(plan, {"members": [_plan_member(e) for e in group]})
    model = group[0]["model"]
    cmd = [sys.executable, "-m", "inrbench.cli", "stack-runs", str(plan), "--result",
           str(result), *(["--model", model] if ":" in model else []),
           *(["--stack-size", str(max_members)] if max_members else [])]
    proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    got = json.loads(result.read_text())["results"] if result.is_file() else None
    plan.unlink(missing_ok=True)
    result.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # empty once no stack runs
    if got is None:  # the child died before it could write: a crash, a kill
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        error = lines[-1] if lines else f"exit status {proc.returncode}"
        return [(h, None) if (e["out"] / "metrics.json").is_file() else ("failed", error)
                for e, h in zip(group, how)]
    return [(h, None) if r.get("error") is None else ("failed", r["error"])
            for r, h in zip(got, how)]


def run_plan_file(plan: Path, result: Path, max_members: int | None = None) -> int:
    """``inrbench stack-runs PLAN --result FILE``: the plan's members trained (stacked where
    they can), each member's outcome written to ``result``; 0, or 1 when one failed."""
    try:
        members = json.loads(Path(plan).read_text())["members"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{plan} is not a stack plan written by inrbench bench ({e})") \
            from None
    cfgs = [member_config(m) for m in members]
    outcomes = [outcome(r) for r in train_runs(cfgs, max_members=max_members)]
    atomic_write_json(Path(result), {"results": [{"error": err} for _, err in outcomes]})
    return 1 if any(err for _, err in outcomes) else 0
