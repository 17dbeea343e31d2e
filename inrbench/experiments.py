"""Paper experiments beside the paper: each row profiled (params, MACs, bpp against the printed
figures, with a status) and trained into ``OUT/<row id>/``, or, over a data set's signals
and several seeds (the paper's mean ± std row), into ``OUT/<row id>/<signal>/seed<N>/``.
The experiment files and their schema are :mod:`inrbench.config.experiment`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import json
import math
import re
import statistics
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
from inrbench.config.files import load_yaml
from inrbench.config.signals import signals, vary_key
from inrbench.config.validation import check_buildable, to_plain
from inrbench.data.base import SignalSpec
from inrbench.data.registry import DATAMODULES
from inrbench.errors import ConfigError, DataError, InrbenchError
from inrbench.io import atomic_write_json, flatten
from inrbench.profiling import macs_counts, profile
from inrbench.run import default_out as _default_out
from inrbench.run import run
from inrbench.run.folder import holds_results
from inrbench.run.stacked import train_runs


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


def _train_members(cfgs: list[DictConfig], resume: bool, stack: bool = True,
                   max_members: int | None = None) -> list[dict | Exception]:
    """Train the members of one row (its run configs over signals and seeds, or the row's
    one run): each result is that run's summary, or the exception that stopped it, while
    the others still train. ``resume``: every member continues from its last checkpoint.
    With ``stack``, members that can train as one stacked model do
    (:func:`inrbench.run.stacked.train_runs`; the same records)."""
    if stack and len(cfgs) > 1:
        results = train_runs(cfgs, resume=[resume] * len(cfgs), max_members=max_members)
        for e in results:
            if isinstance(e, Exception) and not isinstance(e, InrbenchError):
                traceback.print_exception(e)
        return results
    results: list[dict | Exception] = []
    for cfg in cfgs:
        try:
            results.append(run(cfg, resume=resume))
        except Exception as e:  # recorded as this member's failure; the next one trains
            if not isinstance(e, InrbenchError):
                traceback.print_exc()
            results.append(e)
    return results


def _record(out: Path, exp: Experiment, results: list[dict]) -> None:
    """``out/experiment.json``: the rows of this invocation and those an earlier one
    recorded there (read again at each write: another invocation may have added rows since
    this one started), in the table's order."""
    order = {row_id: i for i, row_id in enumerate(exp.row_ids)}
    kept = _earlier_rows(out / "experiment.json", exp, {e["id"] for e in results})
    listed = sorted(kept + results, key=lambda e: order.get(e["id"], len(order)))
    atomic_write_json(out / "experiment.json",
                      {"experiment": exp.name, "title": exp.title, "source": exp.source,
                       "rows": listed})


def run_experiment(exp: Experiment, rows: list[dict], out: Path, overrides: list[str] = (),
                   extra: dict | None = None, resume: bool = False,
                   on_done=None) -> list[dict]:
    """Train ``rows`` one after another into ``out/<row id>/``; a failing row is reported and
    the next one runs. ``out/experiment.json`` lists every row's status, summary and the
    paper's printed figures. Returns that list."""
    out = Path(out)
    _earlier_rows(out / "experiment.json", exp, set())  # a foreign or corrupt file stops us now
    results: list[dict] = []
    for row in rows:
        entry = {"id": row["id"], "label": row.get("label", row["id"]),
                 "out": str(out / row["id"]), "paper": row.get("paper") or {}}
        try:
            cfg = row_config(exp, row, overrides,
                             {**(extra or {}), "trainer.out": str(out / row["id"])},
                             served=True)
            [result] = _train_members([cfg], resume)
        except Exception as e:  # a row that does not compose: reported like a failed run
            if not isinstance(e, InrbenchError):
                traceback.print_exc()
            result = e
        if isinstance(result, Exception):
            entry.update(status="failed", error=f"{type(result).__name__}: {result}")
            print(f"inrbench: row {row['id']} of {exp.name} failed: {result}", file=sys.stderr)
        else:
            entry.update(status="ok", summary=result)
        results.append(entry)
        _record(out, exp, results)
        if on_done is not None:
            on_done(entry)
    return results


# -- a row over a data set's signals and seeds ---------------------------------------------

#: the numbers of a member's ``metrics.json`` that its row averages (those it records)
HEADLINE = ("psnr", "best_psnr", "ssim", "lpips", "iou", "bpp", "params", "macs")
#: what a member's entry in experiment.json keeps of its summary, beside the headline
KEPT = ("metric", "steps", "seed", "data", "data_source", "wall_s")
STD = "sample standard deviation (ddof 1), as inrbench report and compare print it"


def plan_members(exp: Experiment, rows: list[dict], out: Path, overrides: list[str] = (),
                 extra: dict | None = None, vary: str | None = None,
                 seeds: list[int] | None = None) -> list[tuple[dict, list[dict]]]:
    """Every row's members, one per signal of ``vary`` (``data.KEY=V1,V2`` or a range
    ``1-24``, :func:`inrbench.config.signals.signals`) and seed, in
    ``out/<row id>/<signal>/seed<N>/``: ``[(row, [{signal, seed, folder, out, cfg}])]``.
    Every config is composed and checked here (names, keys, values, the signal's spec), so
    a typo or a value the data cannot take stops the command before anything trains or is
    written. Without ``seeds`` a row has one seed: ``extra``'s ``trainer.seed``, else the
    config's."""
    out, extra = Path(out), dict(extra or {})
    if vary is not None:
        key, _ = vary_key(vary)
        given = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") == key]
        if given:
            raise ConfigError(f"{key} is both varied (--vary {vary}) and set ({given[0]}); "
                              f"drop one of them")
    planned = []
    # a stand-in's note is printed when each member trains, not here once per member: a
    # refusal is the one line this prints
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        for row in rows:
            planned.append(_plan_row(exp, row, out, overrides, extra, vary, seeds))
    return planned


def _plan_row(exp: Experiment, row: dict, out: Path, overrides, extra: dict, vary, seeds
              ) -> tuple[dict, list[dict]]:
    first = row_config(exp, row, overrides, {**extra, "trainer.out": str(out / row["id"])},
                       served=True)
    row_seeds = list(seeds) if seeds else [int(first.trainer.seed)]
    members = []
    for sig in signals(str(first.data.name), vary):
        for seed in row_seeds:
            folder = Path(row["id"], sig.label, f"seed{seed}")
            cfg = row_config(exp, row, [*sig.overrides, *overrides],
                             {**extra, "trainer.seed": seed,
                              "trainer.out": str(out / folder)}, served=True)
            check_buildable(cfg)
            build_datamodule(cfg).spec()  # the data's own values (a crop, an index)
            members.append({"signal": sig.label, "seed": seed, "folder": folder.as_posix(),
                            "out": out / folder, "cfg": cfg})
    return row, members


def _check_member_folders(planned: list[tuple[dict, list[dict]]]) -> None:
    """A member folder that already holds a run (to be skipped or resumed) must hold the run
    planned now: a value of its config.yaml that the plan sets otherwise (another step count,
    learning rate, signal) is refused in one line, so that no row mixes two configurations."""
    for _, members in planned:
        for m in members:
            path = m["out"] / "config.yaml"
            if not holds_results(m["out"]) or not path.is_file():
                continue
            saved = flatten(to_plain(load_yaml(path)))
            want = flatten(to_plain(m["cfg"]))
            for key, value in want.items():
                if (key.split(".")[0] not in ("model", "data", "task")
                        and key not in ("trainer.seed", "trainer.max_time")):
                    continue
                if value is not None and key in saved and saved[key] != value:
                    raise ConfigError(f"{m['out']} holds a run with {key}={saved[key]!r}, this "
                                      f"command plans {value!r}; rerun with its arguments to "
                                      f"continue it, or choose another --out")


def _read_summary(out: Path) -> dict | Exception:
    try:
        return json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError) as e:
        return DataError(f"{out / 'metrics.json'} is not readable JSON ({e}); move the folder "
                         f"away to train it again")


def _member_entry(m: dict, status: str, result: dict | Exception) -> dict:
    entry = {"signal": m["signal"], "seed": m["seed"], "folder": m["folder"],
             "out": str(m["out"]), "status": status}
    if isinstance(result, Exception):
        entry.update(status="failed", error=f"{type(result).__name__}: {result}")
    else:
        metric = result.get("metric")
        keys = [*KEPT, *([metric] if metric else []), *HEADLINE]
        entry["summary"] = {k: result[k] for k in dict.fromkeys(keys) if k in result}
    return entry


def aggregate(members: list[dict]) -> dict:
    """Mean, sample standard deviation (ddof 1; None for one value) and count of every
    headline number the row's finished members record, and the members it is over
    (``over``, their folders; a figure some of them lack lists its own)."""
    done = [m for m in members if "summary" in m]
    metric = next((m["summary"].get("metric") for m in done if m["summary"].get("metric")),
                  None)
    figures = {}
    for key in dict.fromkeys([*([metric] if metric else []), *HEADLINE]):
        have = [(m["folder"], float(m["summary"][key])) for m in done
                if isinstance(m["summary"].get(key), (int, float))
                and not isinstance(m["summary"][key], bool)
                and not math.isnan(float(m["summary"][key]))]
        if not have:
            continue
        xs = [x for _, x in have]
        figures[key] = {"mean": statistics.fmean(xs),
                        "std": statistics.stdev(xs) if len(xs) > 1 else None, "n": len(xs)}
        if len(have) < len(done):
            figures[key]["over"] = [f for f, _ in have]
    return {"n": len(done), "of": len(members), "over": [m["folder"] for m in done],
            "std": STD, "metric": metric, "figures": figures}


def run_members(exp: Experiment, rows: list[dict], out: Path, overrides: list[str] = (),
                extra: dict | None = None, vary: str | None = None,
                seeds: list[int] | None = None, on_done=None, stack: bool = True,
                max_members: int | None = None) -> list[dict]:
    """Every row on every signal of ``vary`` and every seed (:func:`plan_members`), into
    ``out/<row id>/<signal>/seed<N>/``; every config is composed and checked before the
    first trains. A member that finished (its ``metrics.json`` exists) is kept, one
    interrupted after a checkpoint resumes, a failing one is recorded and the others go on.
    A row's entry in ``out/experiment.json`` lists its members (status, headline numbers)
    and their :func:`aggregate`, the paper table's mean ± std. A row's members train as
    stacked models where they can (``stack``; at most ``max_members`` a stack), each into
    its own folder as if alone. Returns the rows' entries."""
    out = Path(out)
    _earlier_rows(out / "experiment.json", exp, set())  # a foreign or corrupt file stops us now
    planned = plan_members(exp, rows, out, overrides, extra, vary, seeds)
    _check_member_folders(planned)
    key, values = vary_key(vary) if vary is not None else (None, None)
    results: list[dict] = []
    for row, members in planned:
        status = {id(m): ("done" if (m["out"] / "metrics.json").is_file() else
                          "resumed" if holds_results(m["out"]) else "trained") for m in members}
        result = {id(m): _read_summary(m["out"]) for m in members if status[id(m)] == "done"}
        for how, resume in (("trained", False), ("resumed", True)):
            group = [m for m in members if status[id(m)] == how]
            if group:
                result.update(zip(map(id, group),
                                  _train_members([m["cfg"] for m in group], resume,
                                                 stack, max_members)))
        entries = [_member_entry(m, status[id(m)], result[id(m)]) for m in members]
        failed = [e for e in entries if e["status"] == "failed"]
        for e in failed:
            print(f"inrbench: row {row['id']} of {exp.name}, {e['folder']} failed: "
                  f"{e['error']}", file=sys.stderr)
        entry = {"id": row["id"], "label": row.get("label", row["id"]),
                 "out": str(out / row["id"]), "paper": row.get("paper") or {},
                 "status": "failed" if failed else "ok",
                 "vary": None if key is None else {"key": key, "values": values},
                 "seeds": sorted({m["seed"] for m in members}),
                 "members": entries, "aggregate": aggregate(entries)}
        if failed:
            entry["error"] = (f"{len(failed)} of {len(entries)} members failed; first "
                              f"({failed[0]['folder']}): {failed[0]['error']}")
        results.append(entry)
        _record(out, exp, results)
        if on_done is not None:
            on_done(entry)
    return results
