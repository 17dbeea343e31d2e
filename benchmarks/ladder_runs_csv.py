"""One row per run of a ladder bench folder (``inrbench bench --ladder ...``): the knob value
each run was built with, its counted cost against the budget, and what it scored and cost.

    python benchmarks/ladder_runs_csv.py BENCH_FOLDER > runs.csv
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

COLUMNS = ["signal", "model", "budget", "knob", "value", "count", "within_5pct", "psnr", "macs",
           "macs_measured", "flops", "params", "train_s", "steps"]


def rows(root: Path):
    for path in sorted(root.glob("*/*/*/seed*/metrics.json")):
        m = json.loads(path.read_text())
        ladder = m.get("ladder") or {}
        signal = path.relative_to(root).parts[0]
        yield {"signal": signal, "model": m["model"], "budget": ladder.get("budget"),
               "knob": ladder.get("knob"), "value": ladder.get("value"),
               "count": ladder.get("count"), "within_5pct": ladder.get("within"),
               "psnr": round(m["psnr"], 3), **{k: m.get(k) for k in COLUMNS[8:]},
               "train_s": round(m["train_s"], 2)}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python benchmarks/ladder_runs_csv.py BENCH_FOLDER", file=sys.stderr)
        return 2
    out = csv.DictWriter(sys.stdout, COLUMNS, lineterminator="\n")
    out.writeheader()
    out.writerows(rows(Path(argv[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
