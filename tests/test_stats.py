"""Bjøntegaard deltas and paired statistics (inrbench.reports.stats) and the tables built on
them: against the codecs (rate-distortion) and between families (frontier)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml

from inrbench.reports.frontier_stats import family_tables
from inrbench.reports.ratedistortion import codec_deltas_markdown, ratedistortion_sections
from inrbench.reports.rd_deltas import codec_deltas
from inrbench.reports.runs import Run, find_runs
from inrbench.reports.stats import INTERPOLATIONS, bd_delta, curve_points, paired, signal_means

#: a concave rate-distortion-like curve: (cost, PSNR)
CURVE = [(1.0, 20.0), (2.0, 24.0), (4.0, 27.0), (8.0, 29.0), (16.0, 30.0)]


@pytest.mark.parametrize("interp", INTERPOLATIONS)
def test_identical_curves_have_zero_deltas(interp):
    d = bd_delta(CURVE, CURVE, interp)
    assert d["bd_quality"] == pytest.approx(0, abs=1e-12)
    assert d["bd_rate"] == pytest.approx(0, abs=1e-9)
    assert d["interpolation"] == interp and d["overlap_cost"] == 1.0


@pytest.mark.parametrize("interp", INTERPOLATIONS)
def test_shift_by_one_db_is_bd_psnr_one(interp):
    up = [(c, q + 1) for c, q in CURVE]
    assert bd_delta(CURVE, up, interp)["bd_quality"] == pytest.approx(1.0, abs=1e-9)
    # and the reverse comparison is its negative
    assert bd_delta(up, CURVE, interp)["bd_quality"] == pytest.approx(-1.0, abs=1e-9)


@pytest.mark.parametrize("interp", INTERPOLATIONS)
def test_half_the_cost_is_bd_rate_minus_fifty(interp):
    half = [(c / 2, q) for c, q in CURVE]
    d = bd_delta(CURVE, half, interp)
    assert d["bd_rate"] == pytest.approx(-50.0, abs=1e-9)
    assert bd_delta(half, CURVE, interp)["bd_rate"] == pytest.approx(100.0, abs=1e-9)
    assert d["bd_quality"] > 0  # cheaper at equal quality is better at equal cost


def test_linear_in_log_cost_by_hand():
    # q = 10 log10(c): +2 dB everywhere is the same quality at 10**-0.2 of the cost
    a = [(10.0 ** k, 10.0 * k) for k in range(4)]
    b = [(c, q + 2) for c, q in a]
    d = bd_delta(a, b, "pchip")
    assert d["bd_rate"] == pytest.approx((10 ** -0.2 - 1) * 100, abs=1e-9)  # -36.90%
    assert d["quality_range"] == [2.0, 30.0]
    assert d["overlap_quality"] == pytest.approx(28 / 32)


def test_too_few_points_gives_none_with_reason():
    d = bd_delta(CURVE[:3], CURVE)
    assert d["bd_quality"] is None and d["bd_rate"] is None
    assert "a has 3 usable point(s)" in d["reason_rate"] and "needs 4" in d["reason_rate"]
    # the threshold is the caller's
    assert bd_delta(CURVE[:3], CURVE[:3], min_points=3)["bd_rate"] == pytest.approx(0, abs=1e-9)


def test_non_monotonic_points_leave_the_envelope():
    noisy = CURVE + [(32.0, 25.0), (3.0, 23.0), (float("nan"), 40.0), (-1.0, 10.0)]
    pts = curve_points(noisy)
    assert pts["points"] == CURVE
    assert sorted(pts["dropped"]) == [(3.0, 23.0), (32.0, 25.0)]
    assert len(pts["invalid"]) == 2
    d = bd_delta(CURVE, noisy)
    assert d["bd_quality"] == pytest.approx(0, abs=1e-12)
    assert len(d["dropped_b"]) == 4


def test_no_overlap_gives_none_with_reason():
    far = [(c * 1000, q + 50) for c, q in CURVE]
    d = bd_delta(CURVE, far)
    assert d["bd_quality"] is None and d["bd_rate"] is None
    assert d["reason_quality"] == "the curves share no cost range"
    assert d["reason_rate"] == "the curves share no quality range"
    # sharing costs but not qualities: one delta, not the other
    d = bd_delta(CURVE, [(c, q + 50) for c, q in CURVE])
    assert d["bd_quality"] == pytest.approx(50) and d["bd_rate"] is None


def test_unknown_interpolation_is_refused():
    with pytest.raises(ValueError, match="pchip"):
        bd_delta(CURVE, CURVE, "linear")


def test_paired_six_wins_is_textbook_p():
    d = paired({f"s{i}": i + 1.0 for i in range(6)}, {f"s{i}": 0.0 for i in range(6)})
    assert (d["wins"], d["losses"], d["ties"], d["n"]) == (6, 0, 0, 6)
    assert d["p_value"] == pytest.approx(2 / 64)  # exact: 2 of the 2**6 sign patterns
    assert "exact" in d["test"]
    # mean 3.5, sd sqrt(3.5), t(0.975, 5) = 2.570582
    half = 2.570582 * math.sqrt(3.5) / math.sqrt(6)
    assert d["mean_diff"] == 3.5
    assert d["ci"] == pytest.approx([3.5 - half, 3.5 + half], abs=1e-5)


def test_paired_mixed_signs_textbook_p():
    # d = 1,2,3,4,-5: T- = 5; 10 of the 32 sign patterns have a rank sum <= 5 -> p = 20/32
    d = paired({k: v for k, v in zip("abcde", [1, 2, 3, 4, -5])}, dict.fromkeys("abcde", 0))
    assert (d["wins"], d["losses"]) == (4, 1)
    assert d["p_value"] == pytest.approx(0.625)


def test_paired_small_zero_and_tied():
    one = paired({"a": 2.0}, {"a": 1.0})
    assert one["n"] == 1 and one["ci"] is None and one["p_value"] is None
    assert "at least 2" in one["reason"]
    assert paired({}, {})["mean_diff"] is None
    zero = paired({"a": 1.0, "b": 2.0}, {"a": 1.0, "b": 2.0})
    assert zero["ties"] == 2 and zero["ci"] == [0.0, 0.0] and zero["p_value"] is None
    assert "zero" in zero["reason"]
    tied = paired(dict(zip("abcdef", [1, 1, 2, 2, 3, 0])), dict.fromkeys("abcdef", 0))
    assert (tied["wins"], tied["ties"]) == (5, 1) and 0 < tied["p_value"] < 1
    assert "permutations" in tied["test"] and "5 ranked" in tied["test"]


def test_seeds_are_averaged_within_a_signal_first():
    # per seed, b wins 3 of 4 rows; per signal, each family wins one signal
    a = signal_means([("x", 0, 10.0), ("x", 1, 10.0), ("y", 0, 10.0), ("y", 1, None)])
    b = signal_means([("x", 0, 11.0), ("x", 1, 8.0), ("y", 0, 9.0), ("z", 0, 1.0)])
    assert a == {"x": {"mean": 10.0, "seeds": 2}, "y": {"mean": 10.0, "seeds": 1}}
    d = paired(a, b)
    assert d["diffs"] == [0.5, 1.0] and d["wins"] == 2 and d["n"] == 2
    assert d["seeds_a"] == [1, 2] and d["seeds_b"] == [1, 2] and d["unpaired"] == ["z"]


# -- against the codecs -------------------------------------------------------------------

def _rec(model, method, bits, bpp, psnr):
    return {"model": model, "method": method, "bits": bits, "bpp": bpp, "psnr": psnr + 0.01,
            "psnr_8bit": psnr}


def test_codec_deltas_one_db_above_a_codec():
    codec = [{"codec": "jpeg", "bpp": c, "psnr": q} for c, q in CURVE]
    recs = [_rec("siren", m, b, c, q + 1) for (c, q), (m, b) in
            zip(CURVE, [("ptq", 4), ("qat", 4), ("ptq", 8), ("qat", 8), ("none", 32)])]
    rows = codec_deltas(recs, codec)
    assert [r["curve"] for r in rows] == ["siren (all files)"]
    assert rows[0]["bd_quality"] == pytest.approx(1.0) and rows[0]["bd_rate"] < 0
    assert rows[0]["files"] == ["PTQ4", "QAT4", "PTQ8", "QAT8", "fp32"]
    # two QAT files are not a curve of their own, and say nothing worse than the envelope
    assert codec_deltas(recs[:3], codec)[0]["reason_rate"].startswith("b has 3")


def test_report_and_codecs_command_show_the_deltas(tmp_path):
    run = tmp_path / "siren-fp32"
    (run / "compressed").mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"model": "siren", "data": "kodak",
                                                  "psnr": 30.0, "steps": 10}))
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"name": "kodak", "image": 1}}))
    for i, (c, q) in enumerate(CURVE):
        (run / "compressed" / f"f{i}.json").write_text(json.dumps(
            {**_rec("siren", "ptq", 8 - i, c * 2, q), "file_bits": 100, "bpp_ani": c,
             "bpp_ani_fixed": c, "bpp_ani_count": c}))
    points = [{"codec": "webp", "bpp": c, "bpp_ani": c / 3, "psnr": q} for c, q in CURVE]
    (tmp_path / "codecs").mkdir()
    (tmp_path / "codecs" / "codecs.json").write_text(json.dumps({"points": points}))
    titles = [s.title for s in ratedistortion_sections(find_runs(tmp_path))]
    assert "Bjøntegaard deltas against the codecs" in titles
    lines = codec_deltas_markdown(run, points)
    row = next(line for line in lines if line.startswith("| siren"))
    assert "| webp | +100.0% |" in row  # twice the bits at every PSNR


# -- between families (the frontier) ------------------------------------------------------

def _bench(families: dict[str, float], budgets: int, signals: int, seeds: int = 2):
    """{signal: {family: [Run]}}: family f at budget k has params 1000 * 2**k and PSNR
    20 + 3k + offset[f] + signal index / 10 + seed / 100."""
    out = {}
    for s in range(signals):
        for fam, offset in families.items():
            for k in range(budgets):
                for seed in range(seeds):
                    summary = {"model": fam, "metric": "psnr", "seed": seed,
                               "params": 1000 * 2 ** k, "macs": 10 * 2 ** k,
                               "psnr": 20 + 3 * k - 0.2 * k * k + offset + s / 10 + seed / 100,
                               "ladder": {"axis": "params", "budget": 1000 * 2 ** k}}
                    run = Run(Path(f"/x/s{s}/{fam}/{k}/seed{seed}"),
                              {"model": {"name": fam, "width": 8 * 2 ** k}}, summary)
                    out.setdefault(f"s{s}", {}).setdefault(fam, []).append(run)
    return out


def test_family_tables_deltas_and_pairs():
    md = family_tables(_bench({"asmr": 1.0, "siren": 0.0}, budgets=4, signals=3))
    assert "### cost: `params`" in md and "### cost: `macs`" in md
    row = next(line for line in md.splitlines() if line.startswith("| asmr | — |"))
    assert "+1.00 dB" in row and "-" in row.split("|")[3].split("cost")[0]
    pair = next(line for line in md.splitlines() if line.startswith("| params=1000 |"))
    # three signals, two seeds each, asmr 1 dB above on every one
    assert "| asmr vs siren | 3 | 2; 2 | 3 of 3 | +1.00 (+1.00, +1.00) |" in pair
    assert "Wilcoxon" in md


def test_family_tables_say_what_is_missing():
    md = family_tables(_bench({"asmr": 1.0, "siren": 0.0}, budgets=1, signals=1))
    assert "needs a ladder of at least 4 budgets" in md and "asmr 1, siren 1" in md
    assert "need several signals" in md
