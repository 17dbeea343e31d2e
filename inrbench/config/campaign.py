"""The plan of a campaign folder (a bench or a local sweep): what a rerun must agree with.

A command that runs many things (``inrbench bench``, ``inrbench sweep --local``) records its
plan (budget, models, signals, seeds, overrides, the sweep file) in its folder before the
first run. A rerun into the same folder continues that campaign only when it plans the same
thing: finished runs are kept, the rest resume. A rerun that plans something else is refused
in one line naming the first difference, so no folder ever mixes two budgets; ``--new``
starts the campaign in a fresh folder beside it (``ROOT-2``, ``ROOT-3``, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

from inrbench.errors import ConfigError
from inrbench.io import flatten


def plan_difference(recorded: dict, planned: dict) -> str | None:
    """The first key whose value differs, as ``KEY: OLD in the folder's plan, NEW now``;
    None when they agree. Nested values (a sweep file) are compared key by key; a key the
    recorded plan does not hold at all (a folder written by an older version) is not
    compared."""
    old, new = flatten(recorded), flatten(planned)
    tops = list(recorded)
    for key in dict.fromkeys([*new, *old]):
        if not any(key == t or key.startswith(f"{t}.") for t in tops):
            continue
        if old.get(key, _MISSING) != new.get(key, _MISSING):
            return f"{key}: {_show(old, key)} in the folder's plan, {_show(new, key)} now"
    return None


_MISSING = object()


def _show(flat: dict, key: str) -> str:
    if key not in flat:
        return "absent"
    return "none" if flat[key] is None else json.dumps(flat[key], default=str)


def next_free(root: Path) -> Path:
    """``ROOT-2``, ``ROOT-3``, ...: the first that does not exist."""
    n = 2
    while (root.parent / f"{root.name}-{n}").exists():
        n += 1
    return root.parent / f"{root.name}-{n}"


def read_plan(path: Path) -> dict | None:
    """The ``plan`` recorded in ``path`` (bench.json, sweep.json); None without the file."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e}); move it away or add --new to "
                          f"start in {next_free(path.parent)}") from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path} is not a campaign record; move it away or add --new")
    if isinstance(record.get("plan"), dict):
        return record["plan"]
    # written before plans were recorded: what it holds of one
    return {k: record[k] for k in _LEGACY if k in record}


#: keys of a bench.json or sweep.json written before the plan was recorded as ``plan``
_LEGACY = ("models", "seeds", "overrides", "experiment", "sweep")


def campaign_folder(root: Path, record: str, plan: dict, new: bool = False,
                    what: str = "campaign") -> tuple[Path, bool]:
    """Where this campaign goes and whether it continues one: ``(root, True)`` when ``root``
    holds the same plan, ``(root, False)`` when it is empty or absent, ``next_free(root)``
    with ``new``; refused in one line when ``root`` holds another plan or files of
    something else."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"{root} is a file, not a folder; choose another --out")
    busy = root.is_dir() and any(root.iterdir())
    if new:
        return (next_free(root) if busy else root), False
    if not busy:
        return root, False
    recorded = read_plan(root / record)
    if recorded is None:
        raise ConfigError(f"{root} holds files but no {record}, so it is not a {what} folder; "
                          f"choose another --out or add --new to start in {next_free(root)}")
    diff = plan_difference(recorded, plan)
    if diff:
        raise ConfigError(f"{root} holds another {what}: {diff}; rerun with the folder's "
                          f"arguments to continue it, or add --new to start in "
                          f"{next_free(root)}")
    return root, True
