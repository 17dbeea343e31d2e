"""Neural-image compression: quantizers, the .inrb bitstream, compress/decompress
of real runs (PTQ, LSQ+ QAT, once-for-all), ANI's bpp counts, classic codecs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from inrbench.cli import main
from inrbench.compress import compress_run, decode_file, load_run
from inrbench.compression.bitstream import Entry, decode, encode
from inrbench.compression.quant import (
    LSQWeight,
    lsq_fake_quant,
    quantize_ptq,
    selected,
    tensor_roles,
)
from inrbench.errors import ConfigError, DataError
from inrbench.models import create_model


def _train(tiny_cfg, png, out, model="siren", steps=6, extra=()):
    from inrbench.run import run

    cfg = tiny_cfg(png, out, model=model, steps=steps,
                   extra_overrides=["model.hidden_dim=16", "model.n_layers=4",
                                    "trainer.logger=none", *extra])
    cfg.trainer.logger = "none"
    run(cfg)
    return out


# -- quantizers ----------------------------------------------------------------------------

def test_ptq_affine_and_symmetric_follow_their_equations():
    x = torch.linspace(-0.3, 0.9, 101)
    q = quantize_ptq(x, 4, "affine")
    scale = (0.9 - (-0.3)) / 15
    assert q.symbols.min() >= 0 and q.symbols.max() <= 15
    assert q.scale == pytest.approx(scale, rel=1e-6) and q.zero == round(0.3 / scale)
    assert (q.dequantize() - x).abs().max() <= scale / 2 + 1e-6  # round-to-nearest
    s = quantize_ptq(x, 8, "symmetric")
    assert s.scale == pytest.approx(0.9 / 127, rel=1e-6) and s.zero == 128
    assert (s.dequantize() - x).abs().max() <= s.scale / 2 + 1e-6
    with pytest.raises(ConfigError, match="scheme"):
        quantize_ptq(x, 8, "nope")


def test_lsq_plus_gradients_are_the_papers():
    """d/dx: 1 inside, 0 outside; d/ds: (round(v) - v) inside, Qn/Qp outside; d/dbeta: 0
    inside, 1 outside; s and beta gradients times g = 1/sqrt(N Qp) (LSQ, LSQ+)."""
    bits, qn, qp = 3, -4, 3
    x = torch.tensor([-1.0, -0.13, 0.05, 0.21, 0.8], requires_grad=True)
    s = torch.tensor(0.1, requires_grad=True)
    beta = torch.tensor(0.02, requires_grad=True)
    y = lsq_fake_quant(x, s, beta, bits)
    v = (x.detach() - 0.02) / 0.1
    expected = torch.round(v.clamp(qn, qp)) * 0.1 + 0.02
    assert torch.allclose(y.detach(), expected, atol=1e-6)
    y.sum().backward()
    inside = (v >= qn) & (v <= qp)
    g = 1 / math.sqrt(5 * qp)
    assert torch.equal(x.grad, inside.float())
    ds = torch.where(inside, torch.round(v) - v, torch.where(v < qn, float(qn), float(qp)))
    assert s.grad.item() == pytest.approx(float(ds.sum()) * g, rel=1e-4)
    assert beta.grad.item() == pytest.approx(float((~inside).sum()) * g, rel=1e-4)


def test_layer_roles_match_ani_layers():
    siren = create_model("siren", in_features=2, out_features=3, hidden_dim=8, n_layers=6)
    roles = tensor_roles(siren)
    assert roles["net.0.linear.weight"] == ("first", False)
    assert roles["net.3.linear.weight"] == ("hidden", False)
    assert roles["net.3.linear.bias"] == ("hidden", True)
    assert roles["last_layer.weight"] == ("last", False)
    assert selected(siren) == [f"net.{i}.linear.weight" for i in range(1, 5)]
    assert "last_layer.weight" in selected(siren, "hidden,last")
    mfn = create_model("mfn_gabor", in_features=2, out_features=3, hidden_dim=8, n_layers=6)
    roles = tensor_roles(mfn)
    assert roles["filters.0.linear.weight"][0] == "first"  # ANI Table 4's "filters"
    assert roles["filters.0.mu"][0] == "other"
    assert selected(mfn) == [f"linears.{i}.weight" for i in range(4)]
    with pytest.raises(ConfigError, match="hidden"):
        selected(siren, "middle")


# -- bitstream -----------------------------------------------------------------------------

@pytest.mark.parametrize("coding", ["range", "fixed"])
def test_bitstream_round_trip_bit_for_bit(coding):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(33, 17, generator=g)
    qs = [quantize_ptq(w, 8, "affine"), quantize_ptq(w * 3, 4, "symmetric")]
    fp = torch.randn(5, generator=g)
    data, sizes = encode({"name": "siren"}, {"shape": [4, 4]},
                         [[Entry("a", qs[0]), Entry("b", fp), Entry("c", qs[1])]], coding)
    assert sizes["total_bits"] == 8 * len(data)
    dec = decode(data)
    assert torch.equal(dec.quantized["a"].symbols, qs[0].symbols)
    assert torch.equal(dec.quantized["c"].symbols, qs[1].symbols)
    assert torch.equal(dec.tensors["a"], qs[0].dequantize())
    assert torch.equal(dec.tensors["b"], fp)  # float32 stored exactly
    with pytest.raises(DataError, match="truncated|corrupt"):
        decode(data[:-3])
    with pytest.raises(DataError, match="INRB"):
        decode(b"JUNK" + data[4:])


def test_entropy_coding_beats_fixed_length_on_peaked_symbols():
    w = torch.randn(64, 64, generator=torch.Generator().manual_seed(1))
    q = quantize_ptq(w, 8, "affine")  # a Gaussian: far from uniform over 256 levels
    rng, _ = encode({}, {}, [[Entry("w", q)]], "range")
    fixed, _ = encode({}, {}, [[Entry("w", q)]], "fixed")
    assert len(rng) < len(fixed)


# -- compress / decompress of real runs ------------------------------------------------------

def test_ptq_compress_decompress_cli(tiny_cfg, small_png, tmp_path, capsys):
    run_dir = _train(tiny_cfg, small_png, tmp_path / "run")
    rec = compress_run(run_dir, bits=4)
    cfg, model, spec, dm = load_run(run_dir)
    decoded, dec = decode_file(rec["file"])
    # the decoded network is the PTQ of the trained one, bit for bit
    for name, t in model.state_dict().items():
        q = quantize_ptq(t, 4, "affine") if name in rec["quantized_tensors"] else None
        assert torch.equal(decoded.state_dict()[name], q.dequantize() if q else t), name
    # the PSNR reported is the decoded network's
    from inrbench.metrics import psnr

    with torch.no_grad():
        pred = decoded.render(spec.shape)
    dm.setup()
    assert rec["psnr"] == pytest.approx(psnr(pred, dm.signal), abs=1e-5)
    h, w = spec.shape
    assert rec["file_bits"] == 8 * (tmp_path / "run" / "compressed" / "ptq4.inrb").stat().st_size
    assert rec["bpp"] == pytest.approx(rec["file_bits"] / (h * w))
    assert rec["bpp_ani"] == pytest.approx(rec["file_bits"] / (h * w * 3))
    assert rec["bpp_fixed"] == pytest.approx(rec["file_bits_fixed"] / (h * w))
    n_q = sum(model.state_dict()[n].numel() for n in rec["quantized_tensors"])
    n_all = sum(t.numel() for t in model.state_dict().values())
    assert rec["ani_count_bits"] == 4 * n_q + 32 * (n_all - n_q)
    # CLI: decompress from the file alone
    assert main(["decompress", rec["file"], "--out", str(tmp_path / "r.png"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    from PIL import Image

    assert Image.open(tmp_path / "r.png").size == (w, h) and out["file_bits"] == rec["file_bits"]
    assert main(["compress", str(run_dir), "--bits", "8", "--layers", "hidden,last"]) == 0
    assert "hidden+last" in capsys.readouterr().out
    # the report's rate-distortion section lists both files and draws them
    from inrbench.reports.ratedistortion import ratedistortion_sections
    from inrbench.reports.runs import find_runs

    (sec,) = ratedistortion_sections(find_runs(tmp_path))
    assert sorted(r[1].text + r[2].text for r in sec.table[1]) == ["ptq4", "ptq8"]
    assert sec.figures and sec.figures[0].png.startswith(b"\x89PNG")
    # bad input: one line, exit 2
    assert main(["compress", str(run_dir), "--bits", "1"]) == 2
    assert main(["compress", str(run_dir), "--layers", "middle"]) == 2
    assert main(["compress", str(tmp_path / "nope")]) == 2
    assert main(["decompress", str(run_dir / "config.yaml")]) == 2
    assert main(["decompress", rec["file"], "--width", "8"]) == 2
    err = capsys.readouterr().err
    assert err.count("inrbench: error:") == 5


def test_qat_run_compresses_to_the_trained_network(tiny_cfg, small_png, tmp_path):
    run_dir = _train(tiny_cfg, small_png, tmp_path / "qat", steps=6,
                     extra=["task.name=qat", "task.quant_bits=4"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    cfg, model, spec, dm = load_run(run_dir)
    steps = [m for m in model.modules() if isinstance(m, LSQWeight)]
    assert len(steps) == 2 and all(float(m.step.detach()) > 0 for m in steps)
    rec = compress_run(run_dir)
    assert rec["method"] == "qat" and rec["bits"] == 4 and rec["scheme"] == "lsq"
    decoded, _ = decode_file(rec["file"])
    with torch.no_grad():
        trained, from_file = model.render(spec.shape), decoded.render(spec.shape)
    assert torch.equal(trained, from_file)  # the file holds exactly the QAT network
    assert rec["psnr"] == pytest.approx(metrics["psnr"], abs=1e-4)
    with pytest.raises(ConfigError, match="QAT"):
        compress_run(run_dir, method="ptq")
    with pytest.raises(ConfigError, match="4 bits"):
        compress_run(run_dir, bits=8)


def test_quant_bits_belong_to_the_qat_task(tiny_cfg, small_png, tmp_path):
    """The fitting task takes no quantizer keys; the line names the task that does."""
    with pytest.raises(ConfigError, match=r"unknown key task.quant_bits \(a key of --task qat\)"):
        _train(tiny_cfg, small_png, tmp_path / "fitq", steps=3, extra=["task.quant_bits=8"])
    assert not (tmp_path / "fitq").exists()


def test_ofa_subnetworks_from_run_and_from_file(tiny_cfg, small_png, tmp_path):
    from inrbench.compression.ofa import extract_subnet
    from inrbench.compression.quant import plain_state_dict

    run_dir = _train(tiny_cfg, small_png, tmp_path / "ofa", steps=8,
                     extra=["task.name=ofa", "model.hidden_dim=16", "model.n_layers=5",
                            "task.ofa_widths=[8,16]", "task.ofa_depths=[2,3]",
                            "task.ofa_warmup=0.25", "task.ofa_eval=all"])
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {(r["width"], r["depth"]) for r in metrics["subnets"]} == {
        (8, 2), (8, 3), (16, 2), (16, 3)}
    cfg, model, spec, dm = load_run(run_dir)
    from inrbench.compress import model_kwargs

    rec = compress_run(run_dir, method="none")
    sub_from_run = extract_subnet(model_kwargs(cfg, spec), plain_state_dict(model), 8, 2,
                                  [8, 16], [2, 3])
    sub_from_file, dec = decode_file(rec["file"], 8, 2)
    assert sub_from_file.hidden_dim == 8 and sub_from_file.n_layers == 4
    for k, v in sub_from_run.state_dict().items():
        assert torch.equal(sub_from_file.state_dict()[k], v), k
    # the small sub-network reads only its chunks of the file
    assert dec.sizes["read_bits"] < dec.sizes["total_bits"]
    with torch.no_grad():
        from inrbench.metrics import psnr

        dm.setup()
        p = psnr(sub_from_file.render(spec.shape), dm.signal)
    row = next(r for r in metrics["subnets"] if (r["width"], r["depth"]) == (8, 2))
    assert p == pytest.approx(row["psnr"], abs=1e-4)
    full, _ = decode_file(rec["file"])
    assert full.hidden_dim == 16 and full.n_layers == 5
    with pytest.raises(ConfigError, match="search space"):
        decode_file(rec["file"], 12, 2)


# -- ANI's bpp counts and the paper's tables ---------------------------------------------------

def test_ani_bpp_counts_reproduce_tables_3_and_4():
    """ANI prints its rates truncated: every printed figure is the exact count cut there."""
    from inrbench.compression.bpp import ani_bpp

    def cut(x):
        return f"{math.floor(x * 1000) / 1000:.3f}"

    siren = create_model("siren", in_features=2, out_features=3, hidden_dim=128, n_layers=6)
    mfn = create_model("mfn_gabor", in_features=2, out_features=3, hidden_dim=128, n_layers=6)
    shape, c = (512, 768), 3
    assert sum(p.numel() for p in siren.parameters()) == 66_819
    assert sum(p.numel() for p in mfn.parameters()) == 70_275
    assert cut(ani_bpp(siren, shape, c, None)) == "1.812"
    assert cut(ani_bpp(siren, shape, c, 8)) == "0.479"
    assert cut(ani_bpp(siren, shape, c, 4)) == "0.257"
    assert cut(ani_bpp(siren, shape, c, 8, "hidden,first")) == "0.474"
    assert cut(ani_bpp(siren, shape, c, 8, "hidden,last")) == "0.471"
    assert cut(ani_bpp(mfn, shape, c, None)) == "1.906"
    assert cut(ani_bpp(mfn, shape, c, 8)) == "0.572"
    assert cut(ani_bpp(mfn, shape, c, 4)) == "0.350"
    assert cut(ani_bpp(mfn, shape, c, 8, "hidden,first")) == "0.546"
    assert cut(ani_bpp(mfn, shape, c, 8, "hidden,last")) == "0.565"


def test_ani_experiments_profile_with_bpp(capsys):
    for name in ("ani_table1", "ani_table3", "ani_table4"):
        assert main(["profile", "--experiment", name]) == 0
        out = capsys.readouterr().out
        assert "MISMATCH" not in out and "ERROR" not in out, out


# -- codecs ---------------------------------------------------------------------------------

def test_codec_sweep_rates_and_psnr(tmp_path):
    from PIL import Image
    from skimage import data

    from inrbench.codecs import sweep

    im = data.astronaut()[:64, :96]
    rows = sweep(im, qualities={"jpeg": [10, 90], "jpeg2000": [25, 40], "webp": [10, 90],
                                "avif": [10, 90]})
    for codec in ("jpeg", "jpeg2000", "webp", "avif"):
        lo, hi = [r for r in rows if r["codec"] == codec]
        assert lo["bpp"] < hi["bpp"] and lo["psnr"] < hi["psnr"], codec
        assert lo["bpp_ani"] == pytest.approx(lo["bpp"] / 3)
        assert np.isfinite(hi["psnr"])
    Image.fromarray(im).save(tmp_path / "im.png")
    assert main(["codecs", str(tmp_path / "im.png"), "--out", str(tmp_path / "c"),
                 "--codecs", "jpeg"]) == 0
    saved = json.loads((tmp_path / "c" / "codecs.json").read_text())
    assert saved["shape"] == [64, 96, 3] and len(saved["points"]) > 5


@pytest.mark.parametrize("bits", [8, 4])
def test_qat_step_sizes_learn_at_a_rate_relative_to_their_size(bits):
    """Adam moves a parameter by about its rate: each quantizer's rate is quant_step_lr x its
    initial step, so an 8-bit step (16x smaller than a 4-bit one) is not swamped, and the
    cosine schedule scales every group by the same factor (not towards the weights' lr_min)."""
    from inrbench.compression.quant import apply_lsq
    from inrbench.data.base import SignalSpec
    from inrbench.models import create_model
    from inrbench.tasks.qat import QATTask

    torch.manual_seed(0)
    model = create_model("siren", in_features=2, out_features=1, hidden_dim=32, n_layers=4)
    apply_lsq(model, bits, "hidden")
    task = QATTask(model, SignalSpec((8, 8), 1), bits, quant_step_lr=0.005, lr=1e-3,
                   lr_min=1e-6, steps=10, scheduler="cosine")
    conf = task.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    quantizers = [m for m in model.modules() if isinstance(m, LSQWeight)]
    assert len(opt.param_groups) == 1 + len(quantizers) >= 3
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)
    for group, q in zip(opt.param_groups[1:], quantizers):
        assert group["params"][0] is q.step
        assert group["lr"] == pytest.approx(0.005 * float(q.step.detach()), rel=1e-6)
    before = [g["lr"] for g in opt.param_groups]
    for _ in range(10):
        opt.step()
        sched.step()
    after = [g["lr"] for g in opt.param_groups]
    assert after[0] == pytest.approx(1e-6)  # the weights end at lr_min, as CosineAnnealingLR
    for b, a in zip(before[1:], after[1:]):
        assert a == pytest.approx(b * 1e-6 / 1e-3)  # the steps anneal by the same factor
    legacy = QATTask(model, SignalSpec((8, 8), 1), bits, quant_lr_scale=0.01,
                     quant_step_lr=None, lr=1e-3, lr_min=1e-6, steps=10, scheduler="none")
    groups = legacy.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-5])  # the old absolute rule
