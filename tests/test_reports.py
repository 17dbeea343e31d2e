"""``inrbench report`` and ``inrbench compare`` on real (very short) runs of paper rows.

Two seeds of Table 2's ASMR (3) row and one of KiloNeRF (3), 2 steps each on the real
512x512 Cameraman, plus a run of the same ASMR with another learning rate (which no row
describes). Expected figures are read from the runs' metrics.json and the experiment loader,
never typed in.
"""

import base64
import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from inrbench.cli import main
from inrbench.config.experiment import get_row, load_experiment


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    from inrbench.config import row_config
    from inrbench.run import run

    root = tmp_path_factory.mktemp("results")
    exp = load_experiment("table2")
    quick = ["trainer.latency_repeats=1", "trainer.latency_warmup=0", "task.eval_every=2",
             "trainer.progress_bar=false"]
    for row_id, seed, extra in (("asmr3", 0, []), ("asmr3", 1, []), ("kilonerf3", 0, []),
                                ("asmr3", 0, ["task.lr=3e-4"])):
        name = f"{row_id}-lr" if extra else row_id
        cfg = row_config(exp, get_row(exp, row_id), [*quick, *extra],
                         {"task.steps": 2, "trainer.seed": seed, "trainer.logger": "none",
                          "trainer.out": str(root / f"seed{seed}" / name)})
        run(cfg)
    return root


def _summary(path: Path) -> dict:
    return json.loads((path / "metrics.json").read_text())


def _as_full_length(results: Path, root: Path) -> Path:
    """A copy of the results whose Table 2 runs say they trained the paper's 10,000 steps
    (their metrics.json edited; the figures are read back, not recomputed), so that they
    fill the paper's column: shorter runs are shown apart (tests/test_report_rules.py)."""
    import shutil

    shutil.copytree(results, root)
    steps = load_experiment("table2").common["task"]["steps"]
    for path in root.rglob("metrics.json"):
        summary = json.loads(path.read_text())
        summary["steps"] = int(steps)
        path.write_text(json.dumps(summary))
    return root


def _table_lines(md: str, title: str) -> list[str]:
    section = md.split(f"## {title}", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ")]


def test_report_tables_figures_and_links(results, tmp_path):
    results = _as_full_length(results, tmp_path / "full")
    from inrbench.experiments import profile_experiment
    from inrbench.reports.build import make_report

    out = tmp_path / "report"
    # profiled: Figure 2, and KiloNeRF's weights+biases MACs its record does not carry
    done = make_report(results, out, tables=["table2", "table12"], profile=profile_experiment)
    assert done["errors"] == []
    md = (out / "report.md").read_text()
    exp = load_experiment("table2")
    lines = _table_lines(md, exp.title)
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in lines[1:]}
    col = {name: i for i, name in enumerate(header)}

    # ASMR (3): two seeds -> mean ± std of best PSNR, linked to a run folder
    asmr = get_row(exp, "asmr3")
    cells = rows[asmr["label"]]
    psnrs = [_summary(results / f"seed{s}" / "asmr3")["best_psnr"] for s in (0, 1)]
    mean = sum(psnrs) / 2
    std = abs(psnrs[0] - psnrs[1]) / 2 ** 0.5
    ours = cells[col["psnr (dB) ours"]]
    # ± the seeds' std, unless it rounds to 0 at the printed precision
    assert (" ± " in ours) == (f"{std:.2f}" != "0.00")
    shown = re.match(r"\[([-\d.,]+)(?: ± ([\d.]+))?\]\(([^)]+)\)", ours)
    assert shown and Decimal(shown.group(1)) == Decimal(f"{mean:.2f}")
    assert shown.group(2) in (None, f"{std:.2f}")
    assert (out / shown.group(3)).resolve() == (results / "seed0" / "asmr3").resolve()
    assert cells[col["psnr (dB) paper"]] == asmr["paper"]["psnr"]
    delta = re.match(r"\[([-+\d.,]+)\]", cells[col["psnr Δ"]]).group(1)
    assert Decimal(delta) == Decimal(f"{mean:.2f}") - Decimal(asmr["paper"]["psnr"])
    assert cells[col["steps"]].startswith("[10,000]")
    assert cells[col["seeds"]].startswith("[0, 1]")
    # params and MACs are the run's, in the table's units and printed precision
    params = _summary(results / "seed0" / "asmr3")["params"]
    assert cells[col["params (K) ours"]].startswith(f"[{Decimal(params) / 1000:.1f}]")

    # KiloNeRF (3): MACs in the row's convention (weights+biases), here the paper's figure
    kilo = get_row(exp, "kilonerf3")
    cells = rows[kilo["label"]]
    assert cells[col["macs (K) ours"]].startswith(f"[{kilo['paper']['macs']}]")
    # rows without a run: a dash for every figure of ours, the paper's figures as printed
    siren = get_row(exp, "siren3")
    cells = rows[siren["label"]]
    assert cells[col["psnr (dB) ours"]] == "—" and cells[col["psnr Δ"]] == "—"
    assert cells[col["psnr (dB) paper"]] == siren["paper"]["psnr"]
    # the run with another learning rate matches no row of any table
    import pandas as pd

    listed = pd.read_csv(out / "runs.csv").fillna("")
    by_name = {Path(p).name: r for p, r in zip(listed["path"], listed["rows"])}
    assert by_name["asmr3-lr"] == "" and "table2/asmr3" in by_name["asmr3"].split("; ")

    # Table 12 has no run with its bases/lr... ASMR (3) is not one of its rows
    t12 = load_experiment("table12")
    assert "No run under the results folder matches a row of " in md
    assert t12.title.split(":")[0] in md.split("## Tables without runs")[1]

    for name in ("table2_curves.png", "table2_reconstructions.png", "figure2.png",
                 "figure3.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name})" in md
    # every link resolves, relative to the report
    for target in re.findall(r"\]\(([^)]+)\)", md):
        assert (out / target).exists(), target


def test_html_is_self_contained(results, tmp_path):
    out = tmp_path / "r"
    assert main(["report", str(results), "--out", str(out), "--format", "html",
                 "--tables", "2"]) == 0
    assert not (out / "report.md").exists() and not list(out.glob("*.png"))
    html = (out / "report.html").read_text()
    sources = re.findall(r"src='([^']*)'", html)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    for s in sources:
        assert base64.b64decode(s.split(",", 1)[1])[:4] == b"\x89PNG"
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html


def test_one_report_of_several_results_folders(results, tmp_path, capsys):
    folders = [results / "seed0", results / "seed1"]
    n = sum(len(list(f.rglob("metrics.json"))) for f in folders)
    assert n >= 2
    assert main(["report", *map(str, folders), "--out", str(tmp_path / "r"), "--format",
                 "md", "--tables", "2"]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    assert f"`inrbench report {folders[0]} {folders[1]}`" in text
    assert f"from {n} run folder(s)" in text


def test_report_of_a_folder_without_runs_exits_2(tmp_path, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no run results" in capsys.readouterr().err


def test_compare_averages_seeds_of_one_configuration(results, capsys):
    assert main(["compare", str(results), "--format", "json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 3  # asmr3 (2 seeds), asmr3 at another lr, kilonerf3
    asmr = next(r for r in records if r["n"] == 2)
    assert asmr["seeds"] == [0, 1]
    psnrs = [_summary(results / f"seed{s}" / "asmr3")["best_psnr"] for s in (0, 1)]
    assert asmr["best_psnr"]["mean"] == pytest.approx(sum(psnrs) / 2)
    assert asmr["best_psnr"]["std"] == pytest.approx(abs(psnrs[0] - psnrs[1]) / 2 ** 0.5)
    assert asmr["params"]["std"] == 0
    assert main(["compare", str(results / "seed0" / "kilonerf3"),
                 str(results / "seed0" / "asmr3")]) == 0
    text = capsys.readouterr().out
    assert "kilonerf" in text and "asmr" in text and "±" not in text


def test_run_seeds_writes_one_folder_per_seed_and_compares_them(tmp_path, small_png, capsys):
    out = tmp_path / "seeds"
    argv = ["run", "--model", "siren", "--data", "image", f"data.path={small_png}",
            "model.hidden_dim=16", "model.n_layers=2", "--steps", "3", "task.eval_every=3",
            "trainer.latency_repeats=1", "trainer.latency_warmup=0",
            "trainer.progress_bar=false", "--logger", "none", "--out", str(out)]
    assert main([*argv, "--seeds", "0,1"]) == 0
    summaries = [_summary(out / f"seed{s}") for s in (0, 1)]
    assert [s["seed"] for s in summaries] == [0, 1]
    assert summaries[0]["best_psnr"] != summaries[1]["best_psnr"]  # the seed took effect
    table = capsys.readouterr().out.split("2 seeds in", 1)[1]
    assert "±" in table and "0,1" in table
    assert main([*argv, "--seeds", "0,1", "--seed", "3"]) == 2
    assert main([*argv, "--seeds", "0,x"]) == 2


def test_seed_spread_is_shown_at_the_printed_precision(results, tmp_path):
    """Two seeds 1 dB apart (the second seed's metrics.json edited for the test) show
    mean ± sample std, 0.71 dB, at the paper's two decimals."""
    import shutil

    root = tmp_path / "runs"
    full = _as_full_length(results, tmp_path / "full")
    for seed in (0, 1):
        shutil.copytree(full / f"seed{seed}" / "asmr3", root / f"seed{seed}")
    path = root / "seed1" / "metrics.json"
    summary = json.loads(path.read_text())
    summary["best_psnr"] = _summary(root / "seed0")["best_psnr"] + 1.0
    path.write_text(json.dumps(summary))
    assert main(["report", str(root), "--out", str(tmp_path / "r"), "--tables", "2",
                 "--format", "md"]) == 0
    md = (tmp_path / "r" / "report.md").read_text()
    label = get_row(load_experiment("table2"), "asmr3")["label"]
    line = next(x for x in _table_lines(md, load_experiment("table2").title)
                if x.split("|")[1].strip() == label)
    assert " ± 0.71](" in line
