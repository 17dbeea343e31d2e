"""Meta-learning (ASMR paper sec. 4.4, appendix I; COIN++): shift modulations, the
activation-sharing path with a batch of shifts, the inner/outer loop, image-set data, the
runner's results folder and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from inrbench.cli import main
from inrbench.data import create_datamodule
from inrbench.data.base import SignalSpec
from inrbench.data.images import ImageSet, ImageSetDataModule
from inrbench.errors import ConfigError
from inrbench.models import create_model, make_grid
from inrbench.models.modulated import (
    LatentToShift,
    forward_shifted,
    render_shifted,
    shift_layout,
)
from inrbench.tasks import list_tasks
from inrbench.tasks.meta import MetaTask

SHAPE = [8, 8]


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty cache folder and no network (as tests/test_data.py)."""
    from inrbench.data import fetch

    monkeypatch.setenv("INRBENCH_DATA", str(tmp_path / "cache"))
    monkeypatch.setattr(fetch, "reachable", lambda url, timeout=5.0: False)
    return tmp_path


def tiny(name, **kw):
    torch.manual_seed(0)
    args = {"asmr": dict(signal_shape=SHAPE, bases=[[2, 2, 2], [2, 2, 2]], hidden_dim=16,
                         n_layers=3, omega0=50.0, first_omega0=50.0),
            "siren": dict(hidden_dim=16, n_layers=3, omega0=50.0, first_omega0=50.0),
            "ngp": dict(n_levels=3, n_features_per_level=2, log2_hashmap_size=6,
                        base_resolution=2, finest_resolution=None, per_level_scale=2.0,
                        n_layers=3, hidden_dim=16)}[name]
    return create_model(name, in_features=2, out_features=3, **{**args, **kw}).double()


def test_meta_is_a_registered_task():
    assert {"fit", "meta"} <= set(list_tasks())


@pytest.mark.parametrize("name", ["asmr", "siren", "ngp"])
def test_shift_layout_is_hidden_times_layers_minus_one(name):
    model = tiny(name)
    assert shift_layout(model) == (2, 16)
    shifts = LatentToShift(5, *shift_layout(model))(torch.zeros(3, 5))
    assert shifts.shape == (3, 2, 16)


@pytest.mark.parametrize("name", ["asmr", "siren", "ngp"])
def test_zero_shifts_are_the_plain_model(name):
    model = tiny(name)
    with torch.no_grad():
        out = render_shifted(model, torch.zeros(2, 2, 16, dtype=torch.float64), SHAPE)
        plain = model(make_grid(SHAPE, dtype=torch.float64)).reshape(*SHAPE, 3)
    torch.testing.assert_close(out, plain.expand(2, *plain.shape))


def _second_order(model, path):
    """Outer gradient through 2 inner SGD steps on latents (the meta-learning step), with
    the batch rendered by ``path``; returns the loss and gradients of every shared weight."""
    torch.manual_seed(1)
    latent_map = LatentToShift(4, *shift_layout(model)).double()
    images = torch.rand(3, *SHAPE, 3, dtype=torch.float64)
    grid = make_grid(SHAPE, dtype=torch.float64).reshape(-1, 2)

    def render(z):
        shifts = latent_map(z)
        if path == "shared":
            return render_shifted(model, shifts, SHAPE)
        return torch.stack([forward_shifted(model, grid, shifts[i:i + 1])[0]
                            for i in range(len(z))]).reshape(len(z), *SHAPE, 3)

    z = torch.zeros(3, 4, dtype=torch.float64, requires_grad=True)
    for _ in range(2):
        loss = (render(z) - images).pow(2).flatten(1).mean(1).sum()
        (g,) = torch.autograd.grad(loss, z, create_graph=True)
        z = z - 1e-1 * g
    outer = (render(z) - images).pow(2).mean()
    params = [*model.parameters(), *latent_map.parameters()]
    return outer, torch.autograd.grad(outer, params)


def test_asmr_shared_path_with_shifts_equals_per_sample_forward():
    """Values, first-order gradients (shifts and weights) and the second-order meta-gradient
    of ASMR's activation-sharing batch path equal the per-sample forward's (1e-4)."""
    model = tiny("asmr")
    torch.manual_seed(2)
    shifts = (0.05 * torch.randn(4, 2, 16, dtype=torch.float64)).requires_grad_()
    grid = make_grid(SHAPE, dtype=torch.float64).reshape(-1, 2)
    shared = render_shifted(model, shifts, SHAPE)
    per_sample = torch.stack([forward_shifted(model, grid, shifts[i:i + 1])[0]
                              for i in range(4)]).reshape(4, *SHAPE, 3)
    torch.testing.assert_close(shared, per_sample, atol=1e-4, rtol=1e-4)
    assert shared.shape == (4, *SHAPE, 3) and (shared[0] - shared[1]).abs().max() > 1e-3
    target = torch.rand_like(shared)
    params = [shifts, *model.parameters()]
    g_shared = torch.autograd.grad((shared - target).pow(2).sum(), params)
    g_sample = torch.autograd.grad((per_sample - target).pow(2).sum(), params)
    for a, b in zip(g_shared, g_sample):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    loss_a, meta_a = _second_order(model, "shared")
    loss_b, meta_b = _second_order(model, "per_sample")
    torch.testing.assert_close(loss_a, loss_b, atol=1e-4, rtol=1e-4)
    assert any(float(g.abs().max()) > 0 for g in meta_a)
    for a, b in zip(meta_a, meta_b):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["siren", "ngp"])
def test_batch_render_with_shifts_equals_per_sample_forward(name):
    model = tiny(name)
    _, meta_a = _second_order(model, "shared")
    _, meta_b = _second_order(model, "per_sample")
    for a, b in zip(meta_a, meta_b):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_meta_step_matches_a_hand_written_inner_loop():
    """MetaTask.encode (torch.func.grad) is COIN++'s loop: zeros, k SGD steps on each image's
    own mean MSE, and the outer loss stays differentiable through it (second order)."""
    model = tiny("asmr").float()
    task = MetaTask(model, SignalSpec(tuple(SHAPE), 3), latent_dim=4, inner_steps=2,
                    inner_lr=1e-1)
    images = torch.rand(3, *SHAPE, 3)
    z, _ = task.encode(images)
    ref = torch.zeros(3, 4, requires_grad=True)
    w = ref
    for _ in range(2):
        pred = render_shifted(model, task.latent_map(w), SHAPE) + 0.5
        loss = (pred - images).pow(2).flatten(1).mean(1).sum()
        (g,) = torch.autograd.grad(loss, w, create_graph=True)
        w = w - 1e-1 * g
    torch.testing.assert_close(z, w, atol=1e-5, rtol=1e-4)
    # the gradient of one image's latent does not depend on the other images in the batch
    z1, _ = task.encode(images[:1])
    torch.testing.assert_close(z1, z[:1], atol=1e-5, rtol=1e-4)
    outer = task.per_image_mse(z, images).mean()
    meta = torch.autograd.grad(outer, list(model.parameters()), allow_unused=True)
    assert all(g is not None for g in meta)
    first = torch.autograd.grad(task.per_image_mse(z.detach(), images).mean(),
                                list(model.parameters()))
    assert any(not torch.allclose(a, b) for a, b in zip(meta, first))  # not first-order


def test_image_set_batches_walk_a_permutation_per_epoch():
    train = torch.arange(10, dtype=torch.float32).reshape(10, 1, 1, 1).expand(10, 2, 2, 3)
    data = ImageSetDataModule(ImageSet(train.clone(), train[:3].clone(), "t"), batch_size=4,
                              seed=3, eval_images=2)
    assert data.steps_per_epoch == 2
    loader = data.train_dataloader()
    first = list(loader)
    seen = [b["images"][:, 0, 0, 0].long().tolist() for b in first]
    assert len(seen) == 2 and len(set(sum(seen, []))) == 8  # no repeats within an epoch
    assert [b["images"].shape[0] for b in data.val_dataloader()] == [2]
    again = ImageSetDataModule(ImageSet(train.clone(), train[:3].clone(), "t"), batch_size=4,
                               seed=3).train_dataloader()
    assert [b["index"].tolist() for b in again] == [b["index"].tolist() for b in first]
    # the loader keeps its place: a second pass is the next epoch, another permutation
    second = [b["index"].tolist() for b in loader]
    assert len(second) == 2 and second != [b["index"].tolist() for b in first]


def _folder(tmp_path, n=6):
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (20 + i, 24, 3), dtype=np.uint8)).save(
            tmp_path / f"im{i}.png")
    return tmp_path


def test_image_folder_resizes_and_splits(tmp_path):
    dm = create_datamodule("images", path=str(_folder(tmp_path)), size=[8, 8],
                           test_fraction=0.34)
    assert dm.spec() == SignalSpec((8, 8), 3)
    s = dm.image_set()
    assert s.train.shape == (3, 8, 8, 3) and s.test.shape == (3, 8, 8, 3)
    assert 0 <= float(s.train.min()) and float(s.train.max()) <= 1
    assert s.record()["data_source"] == "folder"
    with pytest.raises(ConfigError, match="data.resize"):
        create_datamodule("images", path=str(tmp_path), resize="stretch")


def test_cifar10_offline_serves_the_stand_in_set(offline, capsys):
    dm = create_datamodule("cifar10")
    spec = dm.spec()
    assert "stand-in set" in capsys.readouterr().err  # one line on stderr
    s = dm.image_set()
    assert spec == s.spec == SignalSpec((32, 32), 3)
    assert s.source == "stand-in" and len(s.train) > 1000 and len(s.test) > 500
    assert float(s.train.std()) > 0.1  # real photo content


def test_meta_run_writes_results_and_resumes(tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    folder = _folder(tmp_path / "imgs", n=8)
    out = tmp_path / "run"
    argv = ["run", "--task", "meta", "--model", "asmr", "--data", "images", "--steps", "2",
            "--out", str(out), "--logger", "csv", f"data.path={folder}", "data.size=[8,8]",
            "data.batch_size=3", "data.test_fraction=0.25", "model.hidden_dim=16",
            "model.n_layers=3", "model.bases=[[2,2,2],[2,2,2]]", "task.latent_dim=4",
            "task.inner_steps=2", "task.outer_lr=1e-3", "task.curve_steps=3",
            "task.eval_every=1", "trainer.latency_repeats=1", "trainer.latency_warmup=0",
            "trainer.progress_bar=false"]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["task"] == "meta" and m["steps"] == 2 and m["data_source"] == "folder"
    assert len(m["encoding_curve"]) == 3 and m["eval_images"] == 2 and m["psnr_std"] >= 0
    assert m["encode_s_per_image"] > 0 and m["decode_s_per_image"] > 0
    assert m["macs_per_pixel"] > 0 and m["latent_dim"] == 4 and m["n_shifts"] == 32
    assert (out / "reconstruction.png").is_file() and (out / "reconstructions.npz").is_file()
    # a 2-step try trains on 1 of the asked 3 images per step, and says so
    assert (m["step_images"], m["step_images_asked"], m["step_images_setting"]) == (1, 3, "auto")
    assert "trains on 1 image(s) per step, not the asked 3" in capsys.readouterr().out
    import pandas as pd

    csv = pd.read_csv(out / "metrics.csv")
    assert {"loss", "psnr", "val_psnr"} <= set(csv.columns) and len(csv) >= 2
    assert main(argv[:argv.index("--steps") + 1] + ["4"] + argv[argv.index("--steps") + 2:]
                + ["--resume"]) == 0
    m2 = json.loads((out / "metrics.json").read_text())
    assert m2["steps"] == 4
    resumed = pd.read_csv(out / "metrics.csv")["loss"].dropna()
    assert len(resumed) == 4
    # the resume came at an epoch's end (6 train images, batches of 3): the batches after it
    # are the ones an uninterrupted run draws, so every step's loss is the same
    whole = tmp_path / "whole"
    assert main([a if a != str(out) else str(whole) for a in argv[:argv.index("--steps") + 1]]
                + ["4"] + [a if a != str(out) else str(whole)
                           for a in argv[argv.index("--steps") + 2:]]) == 0
    uninterrupted = pd.read_csv(whole / "metrics.csv")["loss"].dropna()
    assert resumed.tolist() == pytest.approx(uninterrupted.tolist(), rel=1e-5)
    # the report builds a Figure 5 section from the run: table, encoding curve, grid
    from inrbench.reports.build import make_report

    rep = make_report(tmp_path / "run", tmp_path / "rep", formats=("md", "png"))
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "Figure 5: meta-learning on images in" in text and "ASMR (3 x 16)" in text
    assert f"{m2['psnr']:.2f} ± {m2['psnr_std']:.2f}" in text
    assert any(f.endswith("_grid.png") for f in rep["files"])
    assert any(f.endswith("_curve.png") for f in rep["files"])


def test_meta_rejects_one_signal_data_and_unshiftable_models(tmp_path, capsys):
    assert main(["run", "--task", "meta", "--model", "asmr", "--data", "cameraman", "--steps",
                 "1", "--out", str(tmp_path / "a")]) == 2
    assert "data set of images" in capsys.readouterr().err
    (tmp_path / "imgs").mkdir()
    folder = _folder(tmp_path / "imgs")
    assert main(["run", "--task", "meta", "--model", "wire", "--data", "images",
                 f"data.path={folder}", "--steps", "1", "--out", str(tmp_path / "b")]) == 2
    assert "no shift modulations" in capsys.readouterr().err
