"""Which data a run saw: the record written into ``metrics.json`` and ``config.yaml``.

A run's figures mean something only next to the data they were measured on, so every run
records, before training starts:

* ``source``: ``"paper"`` (the data set the paper used, e.g. LibriSpeech test-clean or
  scikit-image's Cameraman), ``"stand-in"`` (a shipped sample of the same modality used
  because the paper's data set was not there: its figures are *not* comparable with the
  paper's) or ``"user"`` (the user's own file, ``--data image data.path=...``);
* ``files``: every file the signal was read from, as ``{"path", "bytes", "sha256"}``;
* ``dataset`` (the data set the module stands for), ``stands_in_for`` (a stand-in's paper
  data set), ``reason`` (why a stand-in was used) and ``description`` (what was loaded).

Reports read ``data_source`` from ``metrics.json`` (or ``data_record.source`` from
``config.yaml``) and never put a stand-in run in a paper table's column
(``inrbench/reports/tables.py``). A resumed run recomputes the record and refuses to continue
on different files (:func:`check_same_data`).
"""

from __future__ import annotations

from pathlib import Path

from inrbench.data.base import files_of
from inrbench.data.download import sha256
from inrbench.data.fetch import PaperDataModule
from inrbench.errors import DataError

PAPER, STAND_IN, USER = "paper", "stand-in", "user"
SOURCES = (PAPER, STAND_IN, USER)


def file_entry(path: Path) -> dict:
    """``{"path", "bytes", "sha256"}`` of one file read."""
    path = Path(path).resolve()
    return {"path": str(path), "bytes": path.stat().st_size, "sha256": sha256(path)}


def data_record(dm) -> dict:
    """The provenance of ``dm``'s signal (see the module docstring); decides the paper data
    set / stand-in question once (``PaperDataModule.resolve``) and hashes the files."""
    stands_in_for = reason = None
    if isinstance(dm, PaperDataModule):
        resolution = dm.resolve()
        dataset = dm.dataset
        if resolution.source == "paper":
            source = PAPER
        elif resolution.source == "file":  # the user's own file in place of the data set
            source = USER
        else:
            source, stands_in_for, reason = STAND_IN, dm.dataset, resolution.reason or None
    else:
        source = getattr(dm, "data_source", USER)
        dataset = getattr(dm, "dataset", None)
    files = files_of(dm)
    return {"source": source, "dataset": dataset, "stands_in_for": stands_in_for,
            "reason": reason, "description": dm.describe(),
            "files": [file_entry(f) for f in files if Path(f).is_file()]}


def summary_fields(record: dict) -> dict:
    """The record as flat ``metrics.json`` keys."""
    return {"data_source": record["source"], "data_dataset": record.get("dataset"),
            "data_stands_in_for": record.get("stands_in_for"),
            "data_reason": record.get("reason"),
            "data_description": record.get("description"), "data_files": record["files"]}


def check_same_data(saved: dict | None, record: dict) -> None:
    """A resumed run must see the files it started on (same source, same SHA-256s)."""
    if not saved:
        return
    before = [(f.get("path"), f.get("sha256")) for f in saved.get("files") or []]
    now = [(f["path"], f["sha256"]) for f in record["files"]]
    if saved.get("source") != record["source"] or [s for _, s in before] != [s for _, s in now]:
        raise DataError(f"--resume: the run started on {saved.get('source')} data {before} but "
                        f"now reads {record['source']} data {now}; restore the original files "
                        f"(or data.* settings) or start a new run in another --out")


def run_source(summary: dict, config: dict | None = None) -> str | None:
    """A results folder's data source: ``metrics.json`` ``data_source``, else
    ``config.yaml`` ``data_record.source``; None when neither names it."""
    source = summary.get("data_source")
    if source is None and config:
        source = (config.get("data_record") or {}).get("source")
    return source
