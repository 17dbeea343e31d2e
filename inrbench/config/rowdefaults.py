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

#: model keys that only fit the paper's signal shape (ASMR's bases, LoE's tiles)
SHAPE_BOUND = ("bases", "tiles")
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


def fit_to_served(exp, row, sections: dict, data: str, data_keys: dict,
                  cli_data: dict | None = None) -> tuple[str, dict]:
    """Fit a paper row's ``sections`` (:func:`row_sections`) to the data that will be served.

    When the served shape differs from the paper's (a stand-in), the row's shape-bound keys
    (:data:`SHAPE_BOUND`) are set to None, so the model derives them for the stand-in as it
    does for ``--model M --data D``, and ``epochs`` count the stand-in's samples. Returns
    ``(note, record)``: the clause the runner's line ends with ("" at the paper's shape) and
    what the run records of the fit (``paper_shape``, ``served_shape``, ``paper_keys``: the
    paper's values of the dropped keys; the derived ones are in the run's ``config.yaml``)."""
    declared = declared_signal(exp, row)
    shape = _served_shape(data, {**data_keys, **sections.get("data", {}), **(cli_data or {})})
    if not declared or shape is None or tuple(declared["shape"]) == shape:
        return "", {}
    dropped = [k for k in SHAPE_BOUND if sections.get("model", {}).get(k) is not None]
    paper_keys = {f"model.{k}": sections["model"][k] for k in dropped}
    for key in dropped:
        sections["model"][key] = None
    note = (f"; the data served is {shape}, not the paper's {tuple(declared['shape'])}"
            + (f": {', '.join(paper_keys)} derived for it (the paper's: "
               f"{'; '.join(str(v) for v in paper_keys.values())})" if dropped else ""))
    if "epochs" in row and "batch_size" in sections.get("data", {}):
        sections.setdefault("task", {})["steps"] = int(row["epochs"]) * math.ceil(
            math.prod(shape) / int(sections["data"]["batch_size"]))
    return note, {"paper_shape": list(declared["shape"]), "served_shape": list(shape),
                  "paper_keys": paper_keys}


def _length(row: dict, sections: dict) -> str:
    steps = sections.get("task", {}).get("steps")
    return (f"{row['epochs']} epochs = {steps:,} steps" if "epochs" in row and steps
            else f"{steps:,} steps" if steps else "")


def row_defaults(model: str, data: str, data_keys: dict[str, Any],
                 cli_data: dict[str, Any] | None = None) -> tuple[dict, dict] | None:
    """``(sections, followed)``: the ``row=`` sections for :func:`inrbench.config.compose` and
    the record of the row they come from (``experiment``, ``id``, ``label``, ``note``: the line
    the runner prints, and :func:`fit_to_served`'s record on a stand-in), or None without a
    row. ``data_keys``: the data section of the data's own file; ``cli_data``: data keys given
    on the command line (they win over the row's)."""
    found = find_row(model, data)
    if found is None:
        return None
    exp, row = found
    sections = row_sections(exp, row)
    note, fitted = fit_to_served(exp, row, sections, data, data_keys, cli_data)
    length = _length(row, sections)
    line = (f"--model {model} --data {data} follows {exp.title.split(':')[0]} row "
            f"'{row['id']}' ({row.get('label', row['id'])}" + (f", {length}" if length else "")
            + f"){note}; override any key with key=value")
    return sections, {"experiment": exp.name, "id": row["id"],
                      "label": row.get("label", row["id"]), "note": line, **fitted}


def experiment_row(exp, row, data_keys: dict[str, Any],
                   cli_data: dict[str, Any] | None = None) -> tuple[dict, dict | None]:
    """``(sections, record)`` of an experiment row about to be trained: its sections fitted to
    the served data by :func:`fit_to_served` (the same rule as ``--model M --data D``), and a
    record with the line the runner prints when the data is a stand-in (else None)."""
    sections = row_sections(exp, row)
    data = sections.get("data", {}).get("name")
    note, fitted = fit_to_served(exp, row, sections, data, data_keys, cli_data)
    if not fitted:
        return sections, None
    length = _length(row, sections)
    line = (f"{exp.name} row '{row['id']}' ({row.get('label', row['id'])}"
            + (f", {length}" if length else "") + f") runs on a stand-in{note}")
    return sections, {"experiment": exp.name, "id": row["id"],
                      "label": row.get("label", row["id"]), "note": line, **fitted}
