"""benchmarks/stack_throughput.py at a tiny size: its record names the machine and the budget,
times every variant, and its stacked members score what their one-at-a-time runs score."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "stack_throughput.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("stack_throughput", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_stack_throughput_records_every_variant_and_agreeing_psnrs(tmp_path):
    bench = load_bench()
    path = tmp_path / "rec" / "record.json"
    bench.main(["--models", "asmr", "--signals", "2", "--steps", "3", "--max-members", "0,1",
                "--variants", "alone,stack,procs", "--procs-signals", "1",
                "--keep", str(tmp_path / "runs"), "--record", str(path)])
    rec = json.loads(path.read_text())
    assert rec["steps"] == 3 and rec["signals"] == 2 and rec["torch"] and rec["git_sha"]
    assert rec["machine"]["cpu_count"] >= 1 and rec["threads"] == 1
    assert rec["order"] == ["alone", "stack0", "procs", "stack1"]  # interleaved
    rows = rec["models"]["asmr"]
    assert set(rows) == {"alone", "stack0", "procs", "stack1"}
    assert rows["procs"]["signals"] == 1 and len(rows["procs"]["psnr"]) == 1
    assert rows["stack0"]["stack_sizes"] == [2] and rows["stack1"]["stack_sizes"] == [1]
    for row in rows.values():
        assert row["wall_s"] > 0 and row["signals_per_s"] == pytest.approx(
            row["signals"] / row["wall_s"])
        assert 0 < row["train_s"] < row["wall_s"] and row["fixed_s_per_fit"] > 0
        assert len(row["load_before"]) == 3 and set(row["projected_signals_per_s"]) == {
            "200", "1000", "10000"}
    # two distinct crops, so two distinct fits
    assert rows["alone"]["psnr"][0] != rows["alone"]["psnr"][1]
    for name in ("stack0", "stack1"):
        row = rows[name]
        assert row["psnr"] == pytest.approx(rows["alone"]["psnr"], abs=0.01)
        assert row["psnr_max_abs_diff_vs_alone"] < 0.01
        assert row["ratio_vs_alone"] == pytest.approx(
            row["signals_per_s"] / rows["alone"]["signals_per_s"])
        assert "ratio_vs_procs" in row
    # the child process trained the same fit as the in-process one
    assert rows["procs"]["psnr_max_abs_diff_vs_alone"] < 0.01
    stacked = json.loads((tmp_path / "runs" / "asmr" / "stack0" / "crop01" / "metrics.json")
                         .read_text())
    assert stacked["stack"] == {**stacked["stack"], "member": 1, "of": 2}
