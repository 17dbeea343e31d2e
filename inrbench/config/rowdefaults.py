"""Paper rows as defaults: ``inrbench run --model M --data D`` trains what the paper trained.

When data set D is the data of a paper table (``conf/experiment/tableN.yaml`` whose
``common.data.name`` is D; the lowest-numbered such table is D's table) and that table has a
row for model M, the row's model, data and training settings (its epochs turned into steps)
are merged over the model's and data's own config files, and one line names the row. When
several rows train M (SIREN(3) and SIREN(4)), the deepest is taken, the first on a tie (ASMR-1
before ASMR-2). When the data served is a stand-in of another shape than the paper's, the
row's shape-bound keys (ASMR's bases) are dropped so they are derived for the stand-in, and
epochs count the stand-in's samples. Every key can still be overridden on the command line.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from typing import Any

from inrbench.config.experiment import declared_signal, load_experiment, row_sections
from inrbench.config.files import list_experiments
from inrbench.data import served_spec
from inrbench.errors import InrbenchError

#: model keys that only fit the paper's signal shape
SHAPE_BOUND = ("bases",)
def _tables() -> list[str]:
    names = [n for n in list_experiments() if re.fullmatch(r"table\d+", n)]
    return sorted(names, key=lambda n: int(n[5:]))


def find_row(model: str, data: str):
    """``(experiment, row)`` of the paper row that trains ``model`` on ``data``, or None."""
    for name in _tables():
        exp = load_experiment(name)
        if exp.common.get("data", {}).get("name") != data:
            continue
        rows = [r for r in exp.rows
                if r.get("model", {}).get("name") == model
                and r.get("data", {}).get("name", data) == data]
        if not rows:
            return None  # D's table has no row for M
        return exp, max(rows, key=lambda r: (r["model"].get("n_layers", 0), -rows.index(r)))
    return None


def _served_shape(data: str, data_keys: dict) -> tuple[int, ...] | None:
    """The shape the data module will serve (a stand-in's when the paper data is missing)."""
    kwargs = {k: v for k, v in data_keys.items() if k != "name"}
    quiet = io.StringIO()  # the runner says which data it serves, once
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            return tuple(served_spec(data, **kwargs).shape)
    except (InrbenchError, TypeError, ValueError):
        return None  # the runner reports it with its own message


def row_defaults(model: str, data: str, data_keys: dict[str, Any],
                 cli_data: dict[str, Any] | None = None) -> tuple[dict, dict] | None:
    """``(sections, followed)``: the ``row=`` sections for :func:`inrbench.config.compose` and
    the record of the row they come from (``experiment``, ``id``, ``label``, ``note``: the line
    the runner prints), or None without a row. ``data_keys``: the data section of the data's
    own file; ``cli_data``: data keys given on the command line (they win over the row's)."""
    found = find_row(model, data)
    if found is None:
        return None
    exp, row = found
    sections = row_sections(exp, row)
    note = ""
    declared = declared_signal(exp, row)
    shape = _served_shape(data, {**data_keys, **sections.get("data", {}), **(cli_data or {})})
    if declared and shape is not None and tuple(declared["shape"]) != shape:
        dropped = [k for k in SHAPE_BOUND if k in sections.get("model", {})]
        for key in dropped:
            sections["model"][key] = None
        note = (f"; the data served is {shape}, not the paper's {tuple(declared['shape'])}"
                + (f": {', '.join('model.' + k for k in dropped)} derived for it" if dropped
                   else ""))
        if "epochs" in row and "batch_size" in sections.get("data", {}):
            sections["task"]["steps"] = int(row["epochs"]) * math.ceil(
                math.prod(shape) / int(sections["data"]["batch_size"]))
    steps = sections.get("task", {}).get("steps")
    length = (f"{row['epochs']} epochs = {steps:,} steps" if "epochs" in row and steps
              else f"{steps:,} steps" if steps else "")
    line = (f"--model {model} --data {data} follows {exp.title.split(':')[0]} row "
            f"'{row['id']}' ({row.get('label', row['id'])}" + (f", {length}" if length else "")
            + f"){note}; override any key with key=value")
    return sections, {"experiment": exp.name, "id": row["id"],
                      "label": row.get("label", row["id"]), "note": line}
