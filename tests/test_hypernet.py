"""Generating INRs in one forward pass (ANR, ECCV 2024): the L-softmax, instance
independence in a batch, super-resolution rendering, the Trans-INR modulation, the hypernet
task's results folder and resume, CelebA's files and offline behaviour, bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from inrbench.cli import main
from inrbench.data import create_datamodule
from inrbench.data.base import SignalSpec
from inrbench.errors import DataError
from inrbench.models import create_model
from inrbench.models.anr import LocalizedAttention, l_softmax, pixel_grid, positional_encoding
from inrbench.models.hypernet import HyperNetwork
from inrbench.tasks import list_tasks
from inrbench.tasks.hypernet import HypernetTask, variational_coords

TINY_ANR = {"hidden_dim": 16, "n_layers": 3, "token_len": 8, "n_heads": 2, "head_dim": 8,
            "att_threshold": 0.01, "pe_sigma": 16.0}
TINY_TRANS = {"hidden_dim": 16, "n_layers": 3, "n_groups": 4, "pe_sigma": 16.0}
TINY_HYPER = ["task.hyper_dim=16", "task.patch_size=4", "task.patch_padding=0",
              "task.enc_depth=1", "task.dec_depth=1", "task.n_heads=2", "task.head_dim=8",
              "task.ff_dim=32"]


def _pair(name):
    torch.manual_seed(0)
    model = create_model(name, **(TINY_ANR if name == "anr" else TINY_TRANS))
    hyper = HyperNetwork((8, 8), 3, model.token_groups, dim=16, patch_size=4, padding=0,
                         enc_depth=1, dec_depth=1, n_heads=2, head_dim=8, ff_dim=32)
    return model, hyper


def test_hypernet_is_a_registered_task():
    assert "hypernet" in list_tasks()


def test_l_softmax_rows_sum_to_one_and_weak_entries_are_zero():
    torch.manual_seed(0)
    scores = torch.randn(4, 3, 5, 32) * 2
    tau = 0.02
    plain = scores.softmax(-1)
    attn = l_softmax(scores, tau)
    torch.testing.assert_close(attn.sum(-1), torch.ones(4, 3, 5))
    weak = plain <= tau
    assert weak.any() and (~weak).any()  # the draw exercises both cases
    assert torch.all(attn[weak] == 0) and torch.all(attn[~weak] > 0)
    # what survives is the softmax shifted down by tau and renormalised
    kept = (plain - tau).clamp(min=0)
    torch.testing.assert_close(attn, kept / kept.sum(-1, keepdim=True))
    # no threshold: the plain softmax; a uniform row (every weight <= tau) keeps the softmax
    torch.testing.assert_close(l_softmax(scores, None), plain)
    uniform = l_softmax(torch.zeros(1, 40), 1 / 40)
    torch.testing.assert_close(uniform, torch.full((1, 40), 1 / 40))


def test_anr_rejects_a_threshold_that_can_empty_a_row():
    from inrbench.errors import ConfigError

    with pytest.raises(ConfigError, match="att_threshold"):
        create_model("anr", **{**TINY_ANR, "att_threshold": 0.2})  # >= 1 / 8 tokens


def test_positional_encoding_follows_the_official_frequencies():
    x = torch.tensor([[0.25, -0.5]])
    pe = positional_encoding(x, 8, 8.0)  # frequencies 1, 2, 4, 8 per axis
    w = torch.tensor([1.0, 2.0, 4.0, 8.0])
    xw = torch.cat([0.25 * w, -0.5 * w])
    torch.testing.assert_close(pe[0], torch.cat([torch.cos(torch.pi * xw),
                                                 torch.sin(torch.pi * xw)]))


@pytest.mark.parametrize("name", ["anr", "transinr"])
def test_tokens_of_one_image_never_affect_another(name):
    model, hyper = _pair(name)
    images = torch.rand(3, 8, 8, 3)
    changed = images.clone()
    changed[1] = torch.rand(8, 8, 3)
    with torch.no_grad():
        a = model.render_batch(model.represent(hyper(images)), (8, 8))
        b = model.render_batch(model.represent(hyper(changed)), (8, 8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])
    assert not torch.allclose(a[1], b[1])
    # and gradients: image 0's output depends on image 0 only
    x = images.clone().requires_grad_(True)
    out = model.render_batch(model.represent(hyper(x)), (8, 8))
    (grad,) = torch.autograd.grad(out[0].sum(), x)
    assert grad[0].abs().sum() > 0 and grad[1:].abs().sum() == 0


@pytest.mark.parametrize("name", ["anr", "transinr"])
def test_render_at_twice_the_size_is_forward_on_the_denser_grid(name):
    model, hyper = _pair(name)
    with torch.no_grad():
        rep = model.represent(hyper(torch.rand(2, 8, 8, 3)))
        sr = model.render_batch(rep, (16, 16))
        grid = pixel_grid((16, 16)).reshape(1, -1, 2).expand(2, -1, -1)
        direct = model.decode(rep, grid).reshape(2, 16, 16, 3)
        chunked = model.render_batch(rep, (16, 16), chunk=50)
    assert sr.shape == (2, 16, 16, 3)
    torch.testing.assert_close(sr, direct)
    torch.testing.assert_close(chunked, direct)
    # the 2x grid covers the same square: its pixel centres sit a quarter pixel inside
    coarse, fine = pixel_grid((8, 8)), pixel_grid((16, 16))
    torch.testing.assert_close(fine[::2, ::2] + 0.5 / 8, coarse)


def test_trans_inr_columns_are_unit_norm_and_tiled_by_group():
    model, hyper = _pair("transinr")
    raw = hyper(torch.rand(2, 8, 8, 3))
    rep = model.represent(raw)
    w0 = rep["w0"]  # (B, in, out): out 16 columns from 4 tokens, column j from token j mod 4
    torch.testing.assert_close(w0.norm(dim=1), torch.ones(2, 16))
    u = raw["layer0"][0]  # (4, in)
    expect = torch.nn.functional.normalize(model.base_w[0] * u.t().repeat(1, 4), dim=0)
    torch.testing.assert_close(w0[0], expect)
    assert model.instance_floats() == sum(c * w for _, c, w in model.token_groups)


def test_variational_coordinates_stay_within_a_quarter_pixel():
    torch.manual_seed(0)
    grid = pixel_grid((8, 8)).reshape(1, -1, 2).expand(4, -1, -1)
    moved = variational_coords(grid, (8, 8))
    step = (moved - grid).abs()
    assert step.max() <= 0.5 / 8 + 1e-7 and step.mean() > 0
    # std 0.3 / 8 before clipping (0.15 px with a pixel of 2 / 8)
    assert 0.02 < float((moved - grid).std()) < 0.04


def test_ema_schedule_copies_then_warms_up_to_the_decay():
    model, hyper = _pair("anr")
    task = HypernetTask(model, SignalSpec((8, 8), 3), hyper, ema_decay=0.995)
    assert task.ema_decay_at(50) == 0.0 and task.ema_decay_at(101) == 0.0
    assert 0 < task.ema_decay_at(110) < task.ema_decay_at(1000) < 0.995
    assert task.ema_decay_at(10**6) == 0.995
    # the EMA copy is not trained; the decoder's own instance (fitting alone) is not either
    ids = {id(p) for p in task.trainable()}
    assert not ids & {id(p) for p in task.ema.parameters()}
    assert not ids & {id(p) for p in model.instance.parameters()}


def _folder(path, n=10):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        base = rng.integers(0, 255, (1, 1, 3))
        ramp = np.linspace(0, 60, 12)[None, :, None]
        img = np.clip(base + ramp + rng.integers(0, 20, (12, 12, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path / f"im{i}.png")
    return path


def _argv(folder, out, model="anr", steps=4, extra=()):
    tiny = TINY_ANR if model == "anr" else TINY_TRANS
    return ["run", "--task", "hypernet", "--model", model, "--data", "images", "--steps",
            str(steps), "--out", str(out), "--logger", "csv", f"data.path={folder}",
            "data.size=[8,8]", "data.batch_size=3", "data.test_fraction=0.3",
            *[f"model.{k}={v}" for k, v in tiny.items()], *TINY_HYPER, "task.lr=1e-3",
            "task.scheduler=none", "task.eval_every=2", "task.ema_every=1",
            "trainer.checkpoint_every=2", "trainer.latency_repeats=1",
            "trainer.latency_warmup=0", "trainer.progress_bar=false", *extra]


@pytest.mark.parametrize("model", ["anr", "transinr"])
def test_hypernet_run_writes_results(tmp_path, model):
    folder = _folder(tmp_path / "imgs")
    out = tmp_path / "run"
    assert main(_argv(folder, out, model, steps=6)) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "hypernet" and m["steps"] == 6 and m["data_source"] == "folder"
    assert m["eval_images"] == 3 and np.isfinite(m["psnr"]) and m["psnr_std"] >= 0
    assert m["encode_s_per_image"] > 0 and m["decode_ms"] > 0
    assert m["macs_per_pixel"] > 0 and m["hyper_macs_per_image"] > 0
    assert m["instance_floats"] > 0 and m["instance_params"] > 0
    if model == "anr":
        assert m["instance_floats"] == m["instance_params"] == 8 * 16
    for name in ("reconstruction.png", "reconstructions.npz", "super_resolution.png",
                 "config.yaml", "metrics.csv"):
        assert (out / name).is_file(), name
    with Image.open(out / "super_resolution.png") as im:  # originals over the 2x render
        assert im.size[1] > 2 * 16
    # a 6-step try renders 2 grid images at 2x, and times renders within its own seconds
    sr = json.loads((out / "super_resolution.json").read_text())
    assert m["sr_images"] == sr["images"] == 2 and sr["shape"] == [16, 16]
    assert 2.0 <= m["latency_budget_s"] < 60.0 and m["latency_repeats"] >= 1
    csv = pd.read_csv(out / "metrics.csv")
    assert {"loss", "psnr", "val_psnr"} <= set(csv.columns)
    loss = csv["loss"].dropna()
    assert len(loss) == 6 and loss.iloc[-1] < loss.iloc[0]  # it learns


@pytest.mark.parametrize("stop", [3, 4])  # mid-epoch and at an epoch's end (2 batches each)
def test_hypernet_resume_equals_an_uninterrupted_run(tmp_path, monkeypatch, stop):
    from inrbench.tasks import hypernet

    monkeypatch.setattr(hypernet, "EMA_AFTER", 0)  # the EMA averages from the first steps on
    folder = _folder(tmp_path / "imgs")
    extra = ["task.coord_noise=false"]  # the jitter's random stream is not checkpointed
    assert main(_argv(folder, tmp_path / "whole", steps=6, extra=extra)) == 0
    assert main(_argv(folder, tmp_path / "parts", steps=stop, extra=extra)) == 0
    assert main(_argv(folder, tmp_path / "parts", steps=6, extra=extra) + ["--resume"]) == 0
    whole = json.loads((tmp_path / "whole" / "metrics.json").read_text())
    parts = json.loads((tmp_path / "parts" / "metrics.json").read_text())
    assert parts["steps"] == 6
    assert parts["psnr"] == pytest.approx(whole["psnr"], abs=1e-4)
    a = pd.read_csv(tmp_path / "whole" / "metrics.csv")
    b = pd.read_csv(tmp_path / "parts" / "metrics.csv")
    assert len(b["loss"].dropna()) == 6
    np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4)


@pytest.mark.parametrize("args, message", [
    (["--model", "siren"], "--model anr or --model transinr"),
    (["--data", "cameraman"], "data set of images"),
    (["task.patch_size=abc"], "task.patch_size"),
    (["task.patch_size=64"], "task.patch_size=64"),
    (["task.dec_depth=0"], "task.dec_depth"),
    (["task.ema_decay=2"], "task.ema_decay"),
    (["task.betas=[0.9]"], "task.betas"),
    (["model.att_threshold=0.5"], "model.att_threshold"),
    (["model.n_groups=3"], "model.n_groups"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    folder = _folder(tmp_path / "imgs")
    out = tmp_path / "bad"
    argv = _argv(folder, out, "transinr" if "n_groups" in args[0] else "anr")
    if args[0] == "--model":
        argv[argv.index("--model") + 1] = args[1]
        argv = [a for a in argv if not a.startswith("model.")]
    elif args[0] == "--data":
        argv[argv.index("--data") + 1] = args[1]
        argv = [a for a in argv if not a.startswith("data.")]
    else:
        argv += args
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0], err
    assert not out.exists()


def _celeba(root, n=40):
    """The real layout: ``img_align_celeba/NNNNNN.jpg``, 178 x 218 JPEGs."""
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(1, n + 1):
        img = rng.integers(0, 255, (218, 178, 3), dtype=np.uint8)
        Image.fromarray(img).save(folder / f"{i:06d}.jpg", quality=90)
    return folder


def test_celeba_reads_the_official_layout_and_split(tmp_path):
    _celeba(tmp_path / "celeba")
    dm = create_datamodule("celeba", root=str(tmp_path / "celeba"), size=16, download=False,
                           fallback=False)
    assert dm.spec() == SignalSpec((16, 16), 3)
    s = dm.image_set()
    assert s.source == "paper" and s.train.shape == (30, 16, 16, 3) and len(s.test) == 2
    assert "the full set has 202,599 files" in s.note
    names = [p.name for p in dm.files_read()]
    assert "000001.jpg" in names and "000040.jpg" in names  # first train, last test
    one = create_datamodule("celeba", root=str(tmp_path / "celeba"), size=16, download=False,
                            split="test", index=1)
    torch.testing.assert_close(one.load_signal(), s.test[1])
    capped = create_datamodule("celeba", root=str(tmp_path / "celeba"), size=16,
                               download=False, max_train=5)
    assert len(capped.image_set().train) == 5


def test_celeba_offline_names_the_url_and_folder_or_uses_the_stand_in(tmp_path, capsys):
    dm = create_datamodule("celeba", root=str(tmp_path / "none"), size=32, download=False,
                           fallback=False)
    with pytest.raises(DataError) as e:
        dm.spec()
    assert "drive.usercontent.google.com" in str(e.value) and str(tmp_path / "none") in str(e.value)
    assert "img_align_celeba" in str(e.value)
    fallback = create_datamodule("celeba", root=str(tmp_path / "none"), size=32,
                                 download=False)
    s = fallback.image_set()
    assert "stand-in" in capsys.readouterr().err
    assert s.source == "stand-in" and s.spec == SignalSpec((32, 32), 3) and len(s.test) > 10


def test_report_compares_hypernet_meta_and_fit_on_the_same_test_images(tmp_path, monkeypatch,
                                                                      capsys):
    """hypernet (ANR, Trans-INR) and a fit of test images 0 and 1 of the same (offline
    stand-in) set: one table, PSNRs read back from the runs' records."""
    from inrbench.data import fetch
    from inrbench.reports.build import make_report

    monkeypatch.setenv("INRBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch, "reachable", lambda url, timeout=5.0: False)
    common = ["--data", "cifar10", "--logger", "csv", "trainer.latency_repeats=1",
              "trainer.latency_warmup=0", "trainer.progress_bar=false"]
    tiny_hyper = [a.replace("patch_size=4", "patch_size=8") for a in TINY_HYPER]
    for model, tiny in (("anr", TINY_ANR), ("transinr", TINY_TRANS)):
        assert main(["run", "--task", "hypernet", "--model", model, "--steps", "2", "--out",
                     str(tmp_path / "runs" / model), *common, "data.batch_size=4",
                     *[f"model.{k}={v}" for k, v in tiny.items()], *tiny_hyper,
                     "task.eval_images=4", "task.eval_every=2", "task.grid_images=2"]) == 0
    for i in (0, 1):
        assert main(["run", "--model", "asmr", "--steps", "3", "--out",
                     str(tmp_path / "runs" / f"fit{i}"), *common, "data.split=test",
                     f"data.index={i}", "model.hidden_dim=16", "model.n_layers=3",
                     "task.eval_every=3"]) == 0
    capsys.readouterr()
    make_report(tmp_path / "runs", tmp_path / "rep", formats=("md",))
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "Three ways to an INR of each image: CIFAR-10 stand-in (32x32x3)" in text
    anr = json.loads((tmp_path / "runs" / "anr" / "metrics.json").read_text())
    psnr = np.load(tmp_path / "runs" / "anr" / "reconstructions.npz")["psnr"]
    assert f"{psnr[:4].mean():.2f} ± {psnr[:4].std():.2f}" in text  # first 4
    assert f"{psnr[:2].mean():.2f} ± {psnr[:2].std():.2f}" in text  # the two fitted images
    fits = [json.loads((tmp_path / "runs" / f"fit{i}" / "metrics.json").read_text())["psnr"]
            for i in (0, 1)]
    assert "fit: ASMR (3 x 16), 2 image(s)" in text
    assert f"{np.mean(fits):.2f} ± {np.std(fits):.2f}" in text
    assert "Generated in one pass: ANR vs the linear baseline" in text
    assert f"{anr['psnr']:.2f} ± {anr['psnr_std']:.2f}" in text
    assert "Attention beats linear here" in text or "Attention does not beat linear" in text


def test_recomputed_attention_has_the_same_gradients():
    torch.manual_seed(0)
    attn = LocalizedAttention(8, 12, 2, 4, threshold=0.01)
    q_in = torch.randn(2, 10, 8)
    tokens = torch.randn(2, 5, 12)
    grads = []
    for recompute in (False, True):
        attn.recompute = recompute
        attn.zero_grad()
        out = attn(q_in, *attn.keys_values(tokens))
        out.square().sum().backward()
        grads.append((out.detach(), [p.grad.clone() for p in attn.parameters()]))
    (out0, g0), (out1, g1) = grads
    assert torch.equal(out0, out1)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("name", ["anr", "transinr"])
def test_decoding_in_pieces_gives_the_same_values_and_gradients(name, monkeypatch):
    import inrbench.models.anr as anr_module

    model, hyper = _pair(name)
    images = torch.rand(2, 8, 8, 3)
    coords = pixel_grid((8, 8)).reshape(1, -1, 2).expand(2, -1, -1)

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        hyper.zero_grad(set_to_none=True)
        out = model.decode_chunked(model.represent(hyper(images)), coords)
        out.square().mean().backward()
        return out.detach(), [p.grad.clone() for p in hyper.parameters() if p.grad is not None]

    whole, whole_grads = loss_and_grads()
    # a budget of 3 coordinates per instance at this width: 22 pieces of the 64
    monkeypatch.setattr(anr_module, "DECODE_FLOATS", 2 * 3 * model.coord_width())
    pieces, piece_grads = loss_and_grads()
    calls = []
    real = model.decode
    monkeypatch.setattr(model, "decode", lambda rep, c: calls.append(c.shape[1]) or real(rep, c))
    model.decode_chunked(model.represent(hyper(images)), coords)
    assert max(calls) == 3 and sum(calls) == 64
    torch.testing.assert_close(pieces, whole)
    assert len(piece_grads) == len(whole_grads) > 0
    for a, b in zip(piece_grads, whole_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
