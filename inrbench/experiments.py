"""Paper experiments beside the paper: each row profiled (params, MACs, bpp against the printed
figures, with a status) and trained into ``OUT/<row id>/``. The experiment files and their
schema are :mod:`inrbench.config.experiment`.
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import traceback
from pathlib import Path

from omegaconf import DictConfig

from inrbench.build import build_datamodule, build_model
from inrbench.compression.bpp import ani_bpp
from inrbench.config.compose import row_config
from inrbench.config.experiment import (
    COUNT_LABELS,
    Experiment,
    declared_signal,
    matches_printed,
    printed,
    row_units,
)
from inrbench.data.base import SignalSpec
from inrbench.data.registry import DATAMODULES
from inrbench.errors import ConfigError, DataError, InrbenchError
from inrbench.io import atomic_write_json
from inrbench.profiling import macs_counts, profile
from inrbench.run import default_out as _default_out
from inrbench.run import run


def row_signal(exp: Experiment, row: dict, cfg: DictConfig):
    """The row's signal spec. The experiment's ``signal`` (the paper's shape) is used when
    given; when the data module is registered too, the two must agree."""
    declared = declared_signal(exp, row)
    spec = None
    if cfg.data.name in DATAMODULES:
        try:
            dm = build_datamodule(cfg)
            # a paper data set's own shape, never the stand-in sample used when it is missing
            spec = dm.paper_spec() if hasattr(dm, "paper_spec") else dm.spec()
        except DataError:  # e.g. a user file's header: the declared signal still profiles
            if declared is None:
                raise
    if declared is None:
        if spec is None:
            raise ConfigError(f"experiment {exp.name} row {row['id']}: data module "
                              f"{cfg.data.name!r} is not registered; give signal: "
                              f"{{shape: [...], channels: N}} to profile without it")
        return spec
    shape, channels = tuple(declared["shape"]), int(declared["channels"])
    if spec is not None and (tuple(spec.shape), spec.channels) != (shape, channels):
        raise ConfigError(f"experiment {exp.name} row {row['id']}: data {cfg.data.name!r} gives "
                          f"a {tuple(spec.shape)}x{spec.channels} signal but the experiment "
                          f"declares {shape}x{channels}; configure the data to match")
    return spec if spec is not None else SignalSpec(shape, channels)


# -- profiling and comparison with the paper -----------------------------------------------

def _macs_doc(model, count: str) -> str:
    if count != "model":
        return COUNT_LABELS[count]
    doc = (inspect.getdoc(model.macs_per_sample) or "").replace("``", "")
    first = re.split(r"[.:;]\s|\n\n", doc, maxsplit=1)[0].replace("\n", " ").strip()
    return f"{type(model).__name__}.macs_per_sample(): {first}" if first else COUNT_LABELS[count]


def _bpp(exp: Experiment, row: dict, model, spec) -> tuple[float, str]:
    """ANI's bits per pixel of the row's ``quant: {bits, layers}`` network, and its note."""
    quant = row.get("quant") or {}
    bpp = ani_bpp(model, spec.shape, spec.channels, quant.get("bits"),
                  quant.get("layers", "hidden"), bool(quant.get("biases", False)))
    q = (f"{quant['bits']}-bit {quant.get('layers', 'hidden')} weights, the rest 32-bit"
         if quant else "every parameter 32-bit")
    return bpp, (f"bpp: ANI's count, bits/(H*W*C), {q}; truncated to the printed digits as "
                 f"ANI prints it")


def _compare(key: str, row: dict, paper: dict, ours: dict, alternatives: dict, units: dict,
             model, count: str, result: dict) -> tuple[str, str | None, str | None]:
    """One printed figure against ours: ``(figure status, note, flag)``, the flag ``bad`` for an
    undocumented or wrongly documented difference, ``documented`` for a documented one."""
    doc = (row.get("inconsistency") or {}).get(key)
    doc_note = doc.get("note") if isinstance(doc, dict) else doc
    explained_by = doc.get("explained_by") if isinstance(doc, dict) else None
    value = paper.get(key)
    if value is None:
        return "not printed", f"{key}: no printed figure ({doc_note.strip()})", "documented"
    if ours[key] is None:
        return ("no such count", f"{key}: {type(model).__name__} cannot give the {count!r} count",
                "bad")
    result["ours_printed"][key] = printed(ours[key], value, units[key], key)
    ok = matches_printed(ours[key], value, units[key], key)
    if ok and doc is None:
        return "match", None, None
    if ok:
        return ("documented but matches", f"{key}: documented as a paper inconsistency but ours "
                f"matches the printed {value}{units[key]}; remove the inconsistency note", "bad")
    if doc is None:
        return ("MISMATCH", f"{key}: ours {result['ours_printed'][key]}{units[key]} != printed "
                f"{value}{units[key]}", "bad")
    text = (f"{key}: paper inconsistency: printed {value}{units[key]}, ours "
            f"{result['ours_printed'][key]}{units[key]}: {doc_note.strip()}")
    flag = "documented"
    if explained_by is not None:
        alt = alternatives.get(explained_by)
        if matches_printed(alt, value, units[key], key):
            shown = printed(alt, value, units[key], key)
            text += f" (reproduced by our {explained_by}: {shown}{units[key]})"
        else:
            text += f" (NOT reproduced by our {explained_by})"
            flag = "bad"
    return "documented", text, flag


def profile_row(exp: Experiment, row: dict) -> dict:
    """Our params/MACs (and bpp) of one row beside the paper's printed figures, with a status."""
    units = row_units(exp, row)
    paper = row.get("paper") or {}
    count = row.get("macs_count", "model")
    result = {
        "experiment": exp.name, "id": row["id"], "label": row.get("label", row["id"]),
        "model": row["model"]["name"], "params": None, "macs": None, "macs_measured": None,
        "macs_count": count, "macs_counts": None,
        "paper_params": _number(paper.get("params")), "paper_macs": _number(paper.get("macs")),
        "paper": {k: v for k, v in paper.items() if v is not None},
        "units": {k: units[k] for k in exp.compared if k in units}, "bpp": None,
        "ours_printed": {}, "figures": {}, "match": None, "status": "error",
        "convention": row.get("convention"), "note": "",
    }
    try:
        cfg = row_config(exp, row)
        spec = row_signal(exp, row, cfg)
        model = build_model(cfg, spec)
        stats = profile(model, spec.shape)
        counts = macs_counts(model)
    except InrbenchError as e:
        result["note"] = f"cannot profile: {e}"
        return result
    except Exception as e:  # a model bug, not a config error: keep profiling the other rows
        result["note"] = f"cannot profile: {type(e).__name__}: {e}"
        return result
    result.update(params=int(stats["params"]), macs=counts[count],
                  macs_measured=stats["macs_measured"], macs_counts=counts,
                  signal=[*spec.shape, spec.channels])
    ours = {"params": float(stats["params"]), "macs": counts[count]}
    alternatives = {"params": float(stats["params"]),
                    **{f"macs:{c}": v for c, v in counts.items()}}
    notes = [f"MACs: {_macs_doc(model, count)}"]
    if row.get("convention"):
        notes.append(row["convention"].strip())
    if "bpp" in exp.compared:
        ours["bpp"], bpp_note = _bpp(exp, row, model, spec)
        result["bpp"] = alternatives["bpp"] = ours["bpp"]
        notes.append(bpp_note)
    bad = documented = False
    for key in exp.compared:
        figure, text, flag = _compare(key, row, paper, ours, alternatives, units, model, count,
                                      result)
        result["figures"][key] = figure
        if text:
            notes.append(text)
        bad |= flag == "bad"
        documented |= flag == "documented"
    result["match"] = all(v == "match" for v in result["figures"].values())
    result["status"] = "mismatch" if bad else "documented" if documented else "match"
    result["note"] = "; ".join(notes)
    return result


def _number(value: str | None) -> float | None:
    return None if value is None else float(value)


def profile_experiment(exp: Experiment) -> list[dict]:
    return [profile_row(exp, row) for row in exp.rows]


def _fmt_exact(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def format_profile(exp: Experiment, results: list[dict]) -> str:
    """A plain-text table: our figures (exact, and at the paper's precision) beside the
    paper's, then one note per row saying which convention each figure follows."""
    signal = declared_signal(exp, {}) or {}
    head = f"{exp.name}: {exp.title}"
    if signal:
        head += f"  [signal {'x'.join(map(str, signal['shape']))}x{signal['channels']}]"
    lines = [head, f"source: {exp.source}"]
    if exp.notes:
        lines.append(f"table notes: {' '.join(exp.notes.split())}")
    cols = ("id", "params (ours)", "= ours", "paper", "MACs/sample (ours)", "= ours", "paper",
            "measured", "status")
    table = [cols]
    for r in results:
        u = r["units"]
        table.append((
            r["id"], _fmt_exact(r["params"]),
            _with_unit(r["ours_printed"].get("params"), u.get("params")),
            _with_unit(r["paper"].get("params"), u.get("params")),
            _fmt_exact(r["macs"]), _with_unit(r["ours_printed"].get("macs"), u.get("macs")),
            _with_unit(r["paper"].get("macs"), u.get("macs")), _fmt_exact(r["macs_measured"]),
            r["status"].upper() if r["status"] in ("mismatch", "error") else r["status"]))
    if "bpp" in exp.compared:  # ANI's rates beside the paper's, before the status column
        table[0] = (*cols[:-1], "bpp (ours)", "= ours", "paper", cols[-1])
        for i, r in enumerate(results, start=1):
            bpp = "-" if r["bpp"] is None else f"{r['bpp']:.5f}"
            table[i] = (*table[i][:-1], bpp, _with_unit(r["ours_printed"].get("bpp"), ""),
                        _with_unit(r["paper"].get("bpp"), ""), table[i][-1])
        cols = table[0]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(cols))]
    for row in table:
        lines.append("  ".join(str(c).rjust(w) if 0 < i < len(cols) - 1 else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
    lines.append("notes:")
    for r in results:
        lines.append(f"  {r['id']} ({r['label']}): {r['note']}")
    n_bad = sum(r["status"] in ("mismatch", "error") for r in results)
    n_doc = sum(r["status"] == "documented" for r in results)
    lines.append(f"{len(results)} rows: {len(results) - n_bad - n_doc} match, {n_doc} differ "
                 f"only by documented paper inconsistencies, {n_bad} flagged")
    return "\n".join(lines)


def _with_unit(value: str | None, unit: str | None) -> str:
    return "-" if value is None else f"{value}{unit or ''}"


# -- running -------------------------------------------------------------------------------

def default_out(exp: Experiment) -> Path:
    """``runs/<experiment>-<timestamp>``: a new folder for the experiment's rows (the
    experiment's name is a plain name, checked by :func:`load_experiment`)."""
    return _default_out(exp.name)


def _earlier_rows(path: Path, exp: Experiment, rerun: set[str]) -> list[dict]:
    """Rows an earlier invocation recorded in the same folder and this one leaves alone: a
    second ``--rows`` call into one ``--out`` adds to its experiment.json instead of
    replacing it."""

    if not path.is_file():
        return []
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not readable JSON ({e}); move it away or pick another "
                          "--out") from None
    if earlier.get("experiment") != exp.name:
        raise ConfigError(f"{path} records experiment {earlier.get('experiment')!r}, not "
                          f"{exp.name!r}; pick another --out")
    return [r for r in earlier.get("rows", []) if r.get("id") not in rerun]


def run_experiment(exp: Experiment, rows: list[dict], out: Path, overrides: list[str] = (),
                   extra: dict | None = None, resume: bool = False,
                   on_done=None) -> list[dict]:
    """Train ``rows`` one after another into ``out/<row id>/``; a failing row is reported and
    the next one runs. ``out/experiment.json`` lists every row's status, summary and the
    paper's printed figures. Returns that list."""
    out = Path(out)
    rerun = {row["id"] for row in rows}
    _earlier_rows(out / "experiment.json", exp, rerun)  # a foreign or corrupt file stops us now
    order = {row_id: i for i, row_id in enumerate(exp.row_ids)}
    results: list[dict] = []
    for row in rows:
        entry = {"id": row["id"], "label": row.get("label", row["id"]),
                 "out": str(out / row["id"]), "paper": row.get("paper") or {}}
        try:
            cfg = row_config(exp, row, overrides,
                             {**(extra or {}), "trainer.out": str(out / row["id"])},
                             served=True)
            entry.update(status="ok", summary=run(cfg, resume=resume))
        except Exception as e:  # report and go on with the next row
            if not isinstance(e, InrbenchError):
                traceback.print_exc()
            entry.update(status="failed", error=f"{type(e).__name__}: {e}")
            print(f"inrbench: row {row['id']} of {exp.name} failed: {e}", file=sys.stderr)
        results.append(entry)
        # read again at each write: another invocation may have added rows since we started
        kept = _earlier_rows(out / "experiment.json", exp, {e["id"] for e in results})
        listed = sorted(kept + results, key=lambda e: order.get(e["id"], len(order)))
        atomic_write_json(out / "experiment.json",
                          {"experiment": exp.name, "title": exp.title, "source": exp.source,
                           "rows": listed})
        if on_done is not None:
            on_done(entry)
    return results
