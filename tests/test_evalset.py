"""What the data-set tasks evaluate and in which pieces (``inrbench/tasks/evalset.py``): the
``eval_images: auto`` rule, chunked training and evaluation equal to unchunked, and the record
of what the test scores are over."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from inrbench.cli import main
from inrbench.data.base import SignalSpec
from inrbench.errors import ConfigError
from inrbench.models import create_model
from inrbench.models.hypernet import HyperNetwork
from inrbench.tasks import evalset
from inrbench.tasks.evalset import (
    FULL_EVAL_STEPS,
    SHORT_EVAL_IMAGES,
    Progress,
    chunked_mean,
    resolve_curve_steps,
    resolve_eval_images,
)
from inrbench.tasks.hypernet import HypernetTask
from inrbench.tasks.meta import MetaTask
from inrbench.tasks.ofa import build_ofa

SHAPE = (8, 8)


@pytest.mark.parametrize("value, steps, n_test, expected", [
    ("auto", FULL_EVAL_STEPS - 1, 10 * SHORT_EVAL_IMAGES, SHORT_EVAL_IMAGES),
    ("auto", 3, SHORT_EVAL_IMAGES - 1, SHORT_EVAL_IMAGES - 1),  # a split smaller than that
    ("auto", FULL_EVAL_STEPS, 10 * SHORT_EVAL_IMAGES, 10 * SHORT_EVAL_IMAGES),
    (None, 3, 50, 50), ("all", 3, 50, 50), (5, 3, 50, 5), (500, 3, 50, 50),
])
def test_eval_images_auto_scores_the_whole_split_only_for_long_runs(value, steps, n_test,
                                                                     expected):
    assert resolve_eval_images(value, steps, n_test) == expected


@pytest.mark.parametrize("value", [0, -3, "some", True, 2.5])
def test_bad_eval_images_is_a_config_error(value):
    with pytest.raises(ConfigError, match="task.eval_images"):
        resolve_eval_images(value, 3, 10)


def test_curve_steps_auto_follows_the_run_length():
    assert resolve_curve_steps("auto", FULL_EVAL_STEPS, 3) == 10
    assert resolve_curve_steps("auto", FULL_EVAL_STEPS - 1, 3) == 3
    assert resolve_curve_steps(7, 3, 3) == 7
    with pytest.raises(ConfigError, match="task.curve_steps"):
        resolve_curve_steps(0, 3, 3)


def _meta():
    torch.manual_seed(0)
    model = create_model("asmr", in_features=2, out_features=3, signal_shape=list(SHAPE),
                         bases=[[2, 2, 2], [2, 2, 2]], hidden_dim=16, n_layers=3).double()
    return MetaTask(model, SignalSpec(SHAPE, 3), latent_dim=4, inner_steps=2,
                    curve_steps=3, grid_images=2).double()


def _hypernet(name):
    torch.manual_seed(0)
    tiny = ({"hidden_dim": 16, "n_layers": 3, "token_len": 8, "n_heads": 2, "head_dim": 8,
             "att_threshold": 0.01, "pe_sigma": 16.0} if name == "anr" else
            {"hidden_dim": 16, "n_layers": 3, "n_groups": 4, "pe_sigma": 16.0})
    model = create_model(name, **tiny)
    hyper = HyperNetwork(SHAPE, 3, model.token_groups, dim=16, patch_size=4, padding=0,
                         enc_depth=1, dec_depth=1, n_heads=2, head_dim=8, ff_dim=32)
    # no coordinate jitter: both passes must see the same coordinates
    return HypernetTask(model, SignalSpec(SHAPE, 3), hyper, ema_decay=None,
                        coord_noise=False, grid_images=2).double()


def _task_and_loss(which):
    if which == "meta":
        task = _meta()
        return task, (lambda x: task.per_image_mse(task.encode(x)[0], x)), \
            list(task.parameters())
    task = _hypernet(which)
    return task, task.train_mse, task.trainable()


@pytest.mark.parametrize("which", ["meta", "anr", "transinr"])
def test_chunked_training_gives_the_batch_gradient(which):
    task, per_image, params = _task_and_loss(which)
    images = torch.rand(5, *SHAPE, 3, generator=torch.Generator().manual_seed(1),
                        dtype=torch.float64)
    grads, values = [], []
    for chunk in (None, 2):
        task.zero_grad()
        loss, per = chunked_mean(per_image, images, chunk, params)
        loss.backward()
        grads.append([p.grad.clone() for p in params if p.grad is not None])
        values.append((float(loss.detach()), per))
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert values[0][0] == pytest.approx(values[1][0], rel=1e-12)
    torch.testing.assert_close(values[0][1], values[1][1])


@pytest.mark.parametrize("which", ["meta", "anr", "transinr"])
def test_chunked_evaluation_equals_one_pass(which):
    task = _meta() if which == "meta" else _hypernet(which)
    images = torch.rand(5, *SHAPE, 3, generator=torch.Generator().manual_seed(2),
                        dtype=torch.float64)
    whole, chunked = task.evaluate_set(images, None), task.evaluate_set(images, 2)
    torch.testing.assert_close(whole["psnr_per_image"], chunked["psnr_per_image"])
    torch.testing.assert_close(whole["reconstructions"], chunked["reconstructions"])
    for key in ("psnr", "psnr_std", "eval_images", "encoding_curve"):
        assert np.allclose(whole.get(key, 0), chunked.get(key, 0), rtol=1e-9), key


def test_progress_prints_a_line_per_interval_and_the_end(monkeypatch):
    monkeypatch.setattr(evalset, "PROGRESS_EVERY_S", 0.0)
    stream = io.StringIO()
    bar = Progress("evaluation", 4, stream=stream)
    bar.update(2)
    bar.update(2)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and "2/4 test images" in lines[0] and "4/4" in lines[1]


def _folder(path, n):
    path.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(
            path / f"im{i}.png")
    return path


@pytest.mark.parametrize("task, setting", [("meta", "auto"), ("hypernet", "all")])
def test_the_record_says_how_many_test_images_the_scores_are_over(tmp_path, task, setting):
    n_test = SHORT_EVAL_IMAGES + 2  # more than a short run's auto share
    folder = _folder(tmp_path / "imgs", 2 * n_test)
    out = tmp_path / "run"
    model = (["--model", "asmr", "model.hidden_dim=16", "model.n_layers=3",
              "model.bases=[[2,2,2],[2,2,2]]", "task.latent_dim=4", "task.inner_steps=1"]
             if task == "meta" else
             ["--model", "transinr", "model.hidden_dim=16", "model.n_layers=3",
              "model.n_groups=4", "task.hyper_dim=16", "task.patch_size=4",
              "task.patch_padding=0", "task.enc_depth=1", "task.dec_depth=1",
              "task.n_heads=2", "task.head_dim=8", "task.ff_dim=32"])
    argv = ["run", "--task", task, "--data", "images", "--steps", "2", "--out", str(out),
            "--logger", "none", f"data.path={folder}", "data.size=[8,8]", "data.batch_size=4",
            "data.test_fraction=0.5", f"task.eval_images={setting}", "task.image_chunk=3",
            "trainer.latency_repeats=1", "trainer.latency_warmup=0",
            "trainer.progress_bar=false", *model]
    assert main(argv) == 0
    m = json.loads((out / "metrics.json").read_text())
    scored = SHORT_EVAL_IMAGES if setting == "auto" else n_test
    assert m["eval_images"] == scored and m["test_images"] == n_test
    assert m["eval_full_test_set"] is (scored == n_test)
    assert m["eval_images_setting"] == setting and m["image_chunk"] == 3
    with np.load(out / "reconstructions.npz") as npz:
        assert len(npz["psnr"]) == scored


@pytest.mark.parametrize("key", ["task.image_chunk=0", "task.eval_images=0",
                                 "task.curve_steps=none"])
def test_bad_evaluation_keys_exit_2_in_one_line(tmp_path, capsys, key):
    folder = _folder(tmp_path / "imgs", 4)
    argv = ["run", "--task", "meta", "--data", "images", "--steps", "1",
            "--out", str(tmp_path / "run"), f"data.path={folder}", "data.size=[8,8]", key]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key.split("=")[0] in err[0]
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting, steps, expected", [
    ("auto", FULL_EVAL_STEPS - 1, [(8, 2), (16, 3)]),  # the two ends of the space
    ("auto", FULL_EVAL_STEPS, [(8, 2), (8, 3), (16, 2), (16, 3)]),
    ("all", 3, [(8, 2), (8, 3), (16, 2), (16, 3)]),
])
def test_ofa_scores_every_subnetwork_only_for_long_runs(setting, steps, expected):
    config = {"name": "siren", "hidden_dim": 16, "n_layers": 5, "in_features": 2,
              "out_features": 1}
    model = create_model(**config)
    task = build_ofa(model, SignalSpec(SHAPE, 1), config, steps=steps, ofa_widths=[8, 16],
                     ofa_depths=[2, 3], ofa_eval=setting)
    assert task.scored_subnets() == expected
    with pytest.raises(ConfigError, match="task.ofa_eval"):
        build_ofa(model, SignalSpec(SHAPE, 1), config, steps=steps, ofa_widths=[8, 16],
                  ofa_depths=[2, 3], ofa_eval="some")
