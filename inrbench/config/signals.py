"""The signals a campaign fits: ``--data D1,D2`` and ``--vary data.KEY=V1,V2`` (``1-24`` a
range), each a data module, the overrides that pick the signal and the folder name it gets.
``inrbench bench`` and ``inrbench run --experiment`` name their folders by these labels, so
one signal has one folder name in both."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from inrbench.errors import ConfigError
from inrbench.io import safe_name


@dataclass
class Signal:
    """One signal: a data module and the overrides that pick it; ``label`` names its folder."""

    data: str
    overrides: list[str] = field(default_factory=list)
    label: str = ""


def safe(name: str) -> str:
    return safe_name(name).strip("_") or "x"


def _values(text: str) -> list[str]:
    """``1-3,7`` -> 1,2,3,7; anything else split on commas outside brackets (so
    ``[0,0],[64,96]`` is two values)."""
    out = []
    for part in (p.strip() for p in re.split(r",(?![^\[]*\])", text)):
        m = re.fullmatch(r"(\d+)-(\d+)", part)
        out += [str(i) for i in range(int(m[1]), int(m[2]) + 1)] if m else [part] if part else []
    return out


def vary_key(vary: str) -> tuple[str, list[str]]:
    """``data.KEY=V1,V2`` -> ``("data.KEY", [V1, V2])``; anything else is refused in one line."""
    key, sep, rest = vary.partition("=")
    if not sep or not key.startswith("data.") or len(key) <= 5 or not _values(rest):
        raise ConfigError(f"--vary takes data.KEY=V1,V2,... (e.g. data.image=1-24 or "
                          f"data.path=a.png,b.png), got {vary!r}")
    return key, _values(rest)


def signals(data: str, vary: str | None = None) -> list[Signal]:
    """The signals of ``--data D1,D2`` and ``--vary data.KEY=V1,V2`` (every data module with
    every value; ``1-24`` is a range): each one run per model and seed."""
    names = [d.strip() for d in data.split(",") if d.strip()]
    if not names:
        raise ConfigError("--data needs a data module name, e.g. --data cameraman")
    if not vary:
        return [Signal(n, [], safe(n)) for n in names]
    key, values = vary_key(vary)
    return [Signal(n, [f"{key}={v}"], safe(f"{n}-{Path(v).stem if '/' in v or '.' in v else v}"))
            for n in names for v in values]
