"""Report rules: only runs on the paper's data at the paper's length fill a paper column and
get a Δ; stand-in and short runs are shown apart, labelled; Figure 3's labels do not overlap
and the paper's points are drawn beside ours; MACs of a row's count come from the record, else
the row's profile; the reports package only reads results, its imports pointing one way.

Run folders here are records written the way the runner writes them (config.yaml from the
row's composed config, metrics.json with the fields the report reads); no training."""

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from inrbench.cli import main
from inrbench.config import row_config
from inrbench.config.experiment import get_row, load_experiment
from inrbench.reports.figures import _figure3_axes, _overlap, figure3_paper_points
from inrbench.reports.runs import find_runs
from inrbench.reports.tables import build_table, run_macs

EXP = "table2"


def write_record(folder, row_id, steps, best_psnr, seed=0, source="paper", legacy=False):
    """A results folder for ``row_id`` of Table 2; ``legacy``: no data fields (old record)."""
    exp = load_experiment(EXP)
    cfg = OmegaConf.to_container(row_config(exp, get_row(exp, row_id)), resolve=True)
    summary = {"model": cfg["model"]["name"], "data": cfg["data"]["name"], "steps": steps,
               "seed": seed, "best_psnr": best_psnr, "psnr": best_psnr, "params": 67841,
               "macs": 1289.5, "signal_shape": [512, 512], "channels": 1,
               "metric": "psnr"}
    if not legacy:
        summary["data_source"] = source
        summary["data_description"] = ("cameraman (skimage.data.camera)" if source == "paper"
                                        else "some shipped photo")
        cfg["data_record"] = {"source": source, "files": []}
        if source == "stand-in":  # an absolute path of the machine that ran it
            summary["data_stands_in_for"] = "Cameraman"
            summary["data_files"] = [{"path": "/home/someone/samples/photo.png", "bytes": 9,
                                      "sha256": "0" * 64}]
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    (folder / "metrics.json").write_text(json.dumps(summary))
    return folder


def row_result(root, row_id):
    table = build_table(load_experiment(EXP), find_runs(root))
    return next(r for r in table.rows if r.id == row_id), table


def test_full_length_paper_run_fills_the_column(tmp_path):
    write_record(tmp_path / "a", "asmr3", 10_000, 31.5)
    res, _ = row_result(tmp_path, "asmr3")
    assert [r.path.name for r in res.runs] == ["a"] and res.apart == []
    assert res.ours["psnr"][0] == pytest.approx(31.5)


def test_stand_in_run_never_fills_the_paper_column(tmp_path):
    write_record(tmp_path / "standin", "asmr3", 10_000, 40.0, source="stand-in")
    res, table = row_result(tmp_path, "asmr3")
    assert res.runs == [] and res.ours["psnr"][0] is None
    ((run, why),) = res.apart
    assert run.path.name == "standin" and "stand-in" in why


def test_short_runs_are_shown_apart_without_delta(tmp_path):
    for seed, psnr in ((0, 28.0), (1, 29.0)):
        write_record(tmp_path / f"s{seed}", "asmr3", 2_000, psnr, seed=seed)
    write_record(tmp_path / "legacy", "asmr4", 10_000, 36.9, legacy=True)  # Cameraman
    write_record(tmp_path / "standin", "asmr3", 10_000, 45.0, source="stand-in")
    out = tmp_path / "report"
    assert main(["report", str(tmp_path), "--out", str(out), "--tables", "2",
                 "--format", "md,png"]) == 0
    md = (out / "report.md").read_text()
    exp = load_experiment(EXP)
    main_table = md.split(f"## {exp.title}", 1)[1].split("###", 1)[0]
    line = next(x for x in main_table.splitlines()
                if x.startswith(f"| {get_row(exp, 'asmr3')['label']} |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # psnr: ours and Δ empty (no comparable run), the paper's figure as printed
    assert cells[7] == "—" and cells[9] == "—"
    assert cells[8] == get_row(exp, "asmr3")["paper"]["psnr"]
    apart = md.split("runs shown apart", 1)[1]
    line = next(x for x in apart.splitlines() if "2,000 of the paper's 10,000 steps" in x)
    assert "28.50 ± 0.71" in line and "0, 1" in line
    line = next(x for x in apart.splitlines() if "stand-in data (photo.png for Cameraman)" in x)
    assert "45.00" in line and "/home/someone" not in md
    assert "| cameraman (stand-in) |" in md.split("## Runs", 1)[1]
    # a record older than data_source on Cameraman (no stand-in exists) still counts
    asmr4 = next(x for x in main_table.splitlines()
                 if x.startswith(f"| {get_row(exp, 'asmr4')['label']} |"))
    assert re.search(r"\[36\.90\]", asmr4) and "[-0.94]" in asmr4


def test_legacy_record_with_bases_null_matches_its_row(tmp_path):
    folder = write_record(tmp_path / "old", "asmr4", 10_000, 36.9, legacy=True)
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    cfg["model"]["bases"] = None  # recorded before run-time bases were written back
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    res, _ = row_result(tmp_path, "asmr4")
    assert [r.path.name for r in res.runs] == ["old"]


def test_figure3_labels_do_not_overlap_and_paper_points_are_drawn(tmp_path):
    # Table 2's crowded corner: ASMR(3), KiloNeRF(3), LoE(4) within 1-2K MACs and 0.2 dB
    ours = [
        {"family": "ASMR", "label": "ASMR (3)", "macs": 1289.5, "psnr": 31.48,
         "params": 67841, "steps": 10000},
        {"family": "ASMR", "label": "ASMR (4)", "macs": 1353.8, "psnr": 36.91,
         "params": 134145, "steps": 10000},
        {"family": "KiloNeRF", "label": "KiloNeRF (3)", "macs": 977.0, "psnr": 31.33,
         "params": 250112, "steps": 10000},
        {"family": "LoE", "label": "LoE (4)", "macs": 1992.0, "psnr": 31.40,
         "params": 126049, "steps": 10000},
    ]
    table = build_table(load_experiment(EXP), [])
    paper = figure3_paper_points(table.rows)
    assert {p["label"] for p in paper} == {r.label for r in table.rows}  # every printed row
    kilo = next(p for p in paper if p["label"] == "KiloNeRF (3)")
    assert kilo["macs"] == pytest.approx(980) and kilo["psnr"] == pytest.approx(34.35)
    fig, ax, boxes = _figure3_axes(ours, paper)
    assert len(boxes) == len(ours) + len(paper)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert _overlap(boxes[i], boxes[j]) == 0, (i, j)
    # ours filled circles, the paper's hollow squares
    labels = ax.get_legend_handles_labels()[1]
    assert "KiloNeRF (ours)" in labels and "KiloNeRF (paper)" in labels
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_time_per_step_is_never_averaged_across_machines(tmp_path):
    """A GPU's s/step and a CPU's are listed apart, each naming its machine; a record older
    than ``machine`` is named by its torch build."""
    for name, wall, machine, torch_version in (
            ("gpu", 180.0, {"device_name": "NVIDIA H200"}, "2.11.0+cu130"),
            ("cpu", 60_000.0, {"device_name": "Some CPU"}, "2.13.0+cpu"),
            ("old", 170.0, None, "2.11.0+cu130")):
        folder = write_record(tmp_path / name, "siren3", 10_000, 28.6)
        summary = json.loads((folder / "metrics.json").read_text())
        summary.update(wall_s=wall, versions={"torch": torch_version})
        if machine:
            summary["machine"] = machine
        (folder / "metrics.json").write_text(json.dumps(summary))
    from inrbench.experiments import profile_experiment
    from inrbench.reports.build import make_report

    out = tmp_path / "report"
    done = make_report(tmp_path, out, formats=("md",), tables=["table2"],
                       profile=profile_experiment)
    assert done["errors"] == []
    intro = (out / "report.md").read_text().split("## ", 1)[0]
    assert "siren 10,000 steps (1 run, 0.02 s/step on NVIDIA H200)" in intro
    assert "siren 10,000 steps (1 run, 6.00 s/step on Some CPU)" in intro
    assert "siren 10,000 steps (1 run, 0.02 s/step on a GPU (card not recorded))" in intro


def _kilonerf_record(tmp_path, macs_counts=None):
    """A full-length Table 2 KiloNeRF (3) run: its row counts MACs as weights+biases."""
    folder = write_record(tmp_path / "kilo", "kilonerf3", 10_000, 31.3)
    if macs_counts is not None:
        summary = json.loads((folder / "metrics.json").read_text())
        summary["macs_counts"] = macs_counts
        (folder / "metrics.json").write_text(json.dumps(summary))
    return folder


def test_macs_of_a_row_count_come_from_the_record_then_the_row_profile(tmp_path):
    counts = {"model": 1000.0, "weights": 950.0, "weights+biases": 980.0}
    _kilonerf_record(tmp_path / "recorded", counts)
    res, _ = row_result(tmp_path / "recorded", "kilonerf3")
    assert res.errors == [] and list(res.macs_by_run.values()) == [980.0]

    calls = []

    def profile(exp):
        calls.append(exp.name)
        return [{"id": row["id"], "macs_counts": {"model": 1.0, "weights": 2.0,
                                                  "weights+biases": 975.0}}
                for row in exp.rows]

    _kilonerf_record(tmp_path / "bare")
    runs = find_runs(tmp_path / "bare")
    table = build_table(load_experiment(EXP), runs, profile)
    res = next(r for r in table.rows if r.id == "kilonerf3")
    assert res.errors == [] and list(res.macs_by_run.values()) == [975.0]
    assert calls == ["table2"]  # profiled once, for the one row that needed it
    # a record with the count never profiles
    build_table(load_experiment(EXP), find_runs(tmp_path / "recorded"), profile)
    assert calls == ["table2"]

    # neither: None, the run and the reason named
    errors: list[str] = []
    assert run_macs(runs[0], "weights+biases", errors) is None
    assert str(runs[0].path) in errors[0] and "profiling was not run" in errors[0]
    errors = []
    failed = {"id": "kilonerf3", "macs_counts": None, "status": "error",
              "note": "cannot profile: RuntimeError: model rebuild failed"}
    assert run_macs(runs[0], "weights+biases", errors, lambda: failed) is None
    assert str(runs[0].path) in errors[0] and "model rebuild failed" in errors[0]


def test_report_without_profile_omits_figure_2_and_says_why(tmp_path):
    from inrbench.experiments import profile_experiment
    from inrbench.reports.build import make_report

    write_record(tmp_path / "runs" / "a", "asmr3", 10_000, 31.5)
    done = make_report(tmp_path / "runs", tmp_path / "bare", formats=("md", "png"),
                       tables=["table2"])
    md = (tmp_path / "bare" / "report.md").read_text()
    assert done["errors"] == [] and not (tmp_path / "bare" / "figure2.png").exists()
    assert "profiling was not run" in md.split("## Figures", 1)[1]
    make_report(tmp_path / "runs", tmp_path / "full", formats=("md", "png"),
                tables=["table2"], profile=profile_experiment)
    assert (tmp_path / "full" / "figure2.png").is_file()
    assert "profiling was not run" not in (tmp_path / "full" / "report.md").read_text()


REPORTS = Path(__file__).resolve().parents[1] / "inrbench" / "reports"
#: what builds or runs models: a report reads results and experiment files only
NOT_BELOW_REPORTS = ("inrbench.runner", "inrbench.build", "inrbench.run", "inrbench.tasks",
                     "inrbench.experiments", "inrbench.models", "inrbench.sweep",
                     "inrbench.compress", "inrbench.cli")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (inside functions too); ``from package
    import submodule`` counts as the submodule."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if (REPORTS / f"{a.name}.py").is_file()
                      and node.module == "inrbench.reports"}
    return found


def test_reports_import_one_way_and_nothing_that_builds_models():
    modules = {p.stem: _imports(p) for p in REPORTS.glob("*.py")}
    for name, imported in modules.items():
        bad = [m for m in imported for b in NOT_BELOW_REPORTS if m == b or
               m.startswith(b + ".")]
        assert not bad, f"inrbench.reports.{name} imports {bad}"
    # the package's own __init__ is every submodule's parent, not a dependency
    graph = {name: {m.rsplit(".", 1)[1] for m in imported
                    if m.startswith("inrbench.reports.")} - {name}
             for name, imported in modules.items() if name != "__init__"}
    done: set[str] = set()

    def visit(name, path):
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name not in done:
            for dep in sorted(graph[name]):
                visit(dep, [*path, name])
            done.add(name)

    for name in sorted(graph):
        visit(name, [])
    # and nothing below imports them indirectly either
    code = ("import importlib, pkgutil, sys, inrbench.reports as r\n"
            "for m in pkgutil.iter_modules(r.__path__):\n"
            "    importlib.import_module('inrbench.reports.' + m.name)\n"
            "print(' '.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    bad = [m for m in loaded for b in NOT_BELOW_REPORTS if m == b or m.startswith(b + ".")]
    assert not bad, f"importing inrbench.reports loads {bad}"
