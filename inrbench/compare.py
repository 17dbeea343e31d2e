"""``inrbench compare RUN [RUN ...]``: runs side by side.

Each RUN is a results folder or a folder holding several (searched recursively). Runs that
differ only in seed, folder or logger (the ``trainer`` section) are repeats of one
configuration and become one line with mean ± sample std over their seeds.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from inrbench.errors import InrbenchError
from inrbench.reports.runs import Run, find_runs, fmt_mean_std, group_runs, mean_std

#: ``macs``: the paper's convention (empty for a model without one: measured only);
#: ``macs_measured``: the matmul MACs a render runs, the same rule for every model
COLUMNS = ("run", "model", "data", "params", "macs", "macs_measured", "psnr", "best_psnr",
           "ssim", "iou", "latency_ms", "wall_s", "steps", "backend", "seeds", "n")
DECIMALS = {"params": 0, "macs": 1, "macs_measured": 1, "psnr": 2, "best_psnr": 2, "ssim": 4,
            "iou": 4, "latency_ms": 1, "wall_s": 1, "steps": 0}


def _label(group: list[Run]) -> str:
    """The run's folder, or the seeds' common folder with each one's rest in braces."""
    if len(group) == 1:
        return str(group[0].path)
    common = Path(*_common_parts([r.path for r in group]))
    rest = [str(r.path.relative_to(common)) for r in group]
    return f"{common}/{{{','.join(rest)}}}"


def _common_parts(paths: list[Path]) -> list[str]:
    parts = [p.parts for p in paths]
    out = []
    for items in zip(*parts):
        if len(set(items)) != 1:
            break
        out.append(items[0])
    return out or ["."]


def summarise(groups: list[list[Run]]) -> list[dict]:
    """One record per configuration: numbers as {mean, std, n}, the rest as strings."""
    records = []
    for group in groups:
        rec = {"run": _label(group), "paths": [str(r.path) for r in group],
               "model": group[0].model, "data": group[0].data,
               "backend": ",".join(sorted({str(r.summary.get("backend", "?")) for r in group})),
               "seeds": [r.seed for r in group], "n": len(group)}
        for key in DECIMALS:
            mean, std, n = mean_std([r.value(key) for r in group])
            rec[key] = {"mean": mean, "std": std, "n": n}
        records.append(rec)
    return records


def _text(rec: dict, key: str) -> str:
    value = rec[key]
    if isinstance(value, dict):
        return fmt_mean_std(value["mean"], value["std"], DECIMALS[key])
    if key == "seeds":
        return ",".join("?" if s is None else str(s) for s in value)
    return str(value)


def format_table(records: list[dict], fmt: str = "text") -> str:
    cols = [c for c in COLUMNS
            if any(not isinstance(r[c], dict) or r[c]["mean"] is not None for r in records)]
    rows = [[_text(r, c) for c in cols] for r in records]
    if fmt == "md":
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    if fmt == "csv":
        import csv

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(cols)
        writer.writerows(rows)
        return buf.getvalue().rstrip("\n")
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) if i < 3 else v.rjust(w)
                        for i, (v, w) in enumerate(zip(row, widths))) for row in rows]
    return "\n".join(lines)


def compare(paths: list[str], fmt: str = "text") -> str:
    runs = find_runs(*[Path(p) for p in paths])
    if not runs:
        raise InrbenchError(f"no run results (metrics.json) under {', '.join(paths)}")
    records = summarise(group_runs(runs))
    if fmt == "json":
        return json.dumps(records, indent=1)
    return format_table(records, fmt)
