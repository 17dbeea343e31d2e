"""The dense multi-resolution grid (``grid``): render equals forward, a one-level grid at the
signal's resolution is the signal, interpolation halfway is the neighbours' mean, parameter
and MAC counts by hand, config errors, and real runs on audio, video, occupancy and blocks."""

import json
import math

import pandas as pd
import pytest
import torch
from cli_lines import error_line, run_cli

from inrbench.data.fetch import samples_root
from inrbench.errors import ConfigError
from inrbench.models import create_model, list_models, make_grid
from inrbench.models.grid import Grid, ladder
from inrbench.profiling import profile


def grid_model(shape, channels=2, seed=0, **kwargs):
    torch.manual_seed(seed)
    kwargs = {"levels": 3, "base_resolution": 2, "init_scale": 1.0, **kwargs}
    return create_model("grid", in_features=len(shape), out_features=channels,
                        signal_shape=list(shape), **kwargs)


def test_registered_once_under_its_name_and_not_confused_with_make_grid():
    assert list_models("grid*") == ["grid"]
    assert callable(make_grid) and make_grid((2,)).tolist() == [[-1.0], [1.0]]


@pytest.mark.parametrize("shape", [(24,), (12, 16), (4, 6, 8)])
def test_render_equals_forward_on_the_pixel_grid(shape):
    model = grid_model(shape)
    with torch.no_grad():
        full = model.render(shape)
        coords = make_grid(shape)
        per_sample = model(coords)
        flat = coords.reshape(-1, len(shape))
        pick = torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(1))[:29]
        subset = model(flat[pick])
    assert full.shape == (*shape, 2) and full.abs().sum() > 0
    torch.testing.assert_close(full, per_sample, atol=1e-6, rtol=0)
    torch.testing.assert_close(subset, full.reshape(-1, 2)[pick], atol=1e-6, rtol=0)


@pytest.mark.parametrize("shape", [(9,), (5, 7), (3, 4, 5)])
def test_one_level_at_the_signal_resolution_is_the_signal_at_its_samples(shape):
    """By construction (the vertex values set to the signal) and by fitting it."""
    target = torch.rand(*shape, 3, generator=torch.Generator().manual_seed(0))
    model = grid_model(shape, channels=3, levels=1, init_scale=0.0)
    assert model.resolutions == [list(shape)]
    with torch.no_grad():
        model.grids[0].copy_(target.movedim(-1, 0).unsqueeze(0))
        torch.testing.assert_close(model.render(shape), target, atol=1e-6, rtol=0)
    fitted = grid_model(shape, channels=3, levels=1, init_scale=0.0)
    opt = torch.optim.Adam(fitted.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        torch.nn.functional.mse_loss(fitted.render(shape), target).backward()
        opt.step()
    with torch.no_grad():
        assert float((fitted.render(shape) - target).abs().max()) < 1e-3


def _vertex(axis_res, k):
    """Coordinate of vertex k of an axis of ``axis_res`` vertices (make_grid's convention)."""
    return -1.0 + 2.0 * k / (axis_res - 1)


@pytest.mark.parametrize("res", [[7], [5, 6], [3, 4, 5]])
def test_interpolation_halfway_between_vertices_is_the_neighbours_mean(res):
    d = len(res)
    model = create_model("grid", in_features=d, out_features=2, levels=1,
                         base_resolution=res, finest_resolution=res, init_scale=1.0)
    values = model.grids[0].detach()[0].movedim(0, -1)  # (*res, 2)
    corner = [1] * d  # the cell whose first vertex is (1, 1, ...)
    lo = [_vertex(r, k) for r, k in zip(res, corner)]
    hi = [_vertex(r, k + 1) for r, k in zip(res, corner)]
    with torch.no_grad():
        # the cell's centre: the mean of its 2^d corners
        centre = model(torch.tensor([[(a + b) / 2 for a, b in zip(lo, hi)]]))[0]
        corners = values[tuple(slice(k, k + 2) for k in corner)].reshape(-1, 2)
        torch.testing.assert_close(centre, corners.mean(0), atol=1e-6, rtol=0)
        # halfway along the last axis only: the mean of the two vertices on that edge
        edge = model(torch.tensor([[*lo[:-1], (lo[-1] + hi[-1]) / 2]]))[0]
        pair = values[(*corner[:-1], slice(corner[-1], corner[-1] + 2))]
        torch.testing.assert_close(edge, pair.mean(0), atol=1e-6, rtol=0)
        # on a vertex: that vertex's value
        torch.testing.assert_close(model(torch.tensor([lo]))[0], values[tuple(corner)],
                                   atol=1e-6, rtol=0)


@pytest.mark.parametrize("kwargs,resolutions", [
    (dict(in_features=1, out_features=1, levels=3, base_resolution=4, finest_resolution=64),
     [[4], [16], [64]]),
    (dict(in_features=2, out_features=3, levels=3, base_resolution=4, finest_resolution=16),
     [[4, 4], [8, 8], [16, 16]]),
    (dict(in_features=3, out_features=1, levels=3, base_resolution=[2, 4, 4],
          finest_resolution=[8, 16, 16]), [[2, 4, 4], [4, 8, 8], [8, 16, 16]]),
    # null finest: the signal's sample counts; the base is capped at a short axis
    (dict(in_features=2, out_features=1, levels=2, base_resolution=16, signal_shape=[8, 32]),
     [[8, 16], [8, 32]]),
])
def test_parameters_are_the_vertices_of_every_level_times_the_channels(kwargs, resolutions):
    model = create_model("grid", **kwargs)
    assert model.resolutions == resolutions
    by_hand = {1: (4 + 16 + 64) * 1, 2: (16 + 64 + 256) * 3,
               3: (2 * 4 * 4 + 4 * 8 * 8 + 8 * 16 * 16) * 1}
    if "signal_shape" in kwargs:
        by_hand[2] = (8 * 16 + 8 * 32) * 1
    d = kwargs["in_features"]
    assert model.n_params == by_hand[d] == sum(p.numel() for p in model.parameters())
    # the cost rule: 2 FLOPs per corner (2^d) per output value per level (1D's weighting is a
    # batched product, so its matrix-product class holds them); no paper convention
    shape = kwargs.get("signal_shape") or [5] * d
    stats = profile(model, shape)
    by_class = stats["flops_by_class"]
    counted = by_class["matmul"] if d == 1 else by_class["interpolation"]
    assert counted == 2 * model.levels * 2 ** d * kwargs["out_features"]
    assert stats["macs"] is None and stats["macs_source"] == "measured only"


def test_the_ladder_grows_geometrically_to_the_finest():
    assert ladder(4, [16], [128]) == [[16], [32], [64], [128]]
    assert ladder(1, [16, 16], [64, 32]) == [[64, 32]]
    assert ladder(3, [16, 8], [16, 32]) == [[16, 8], [16, 16], [16, 32]]


@pytest.mark.parametrize("kwargs,key", [
    (dict(in_features=4), "in_features"),
    (dict(levels=0), "levels"),
    (dict(base_resolution=[4, 4, 4]), "base_resolution"),
    (dict(base_resolution=0), "base_resolution"),
    (dict(base_resolution=32, finest_resolution=16), "finest_resolution"),
    (dict(finest_resolution=None), "signal_shape"),
    (dict(init_scale=-1.0), "init_scale"),
    (dict(signal_shape=[8, 8, 8], finest_resolution=16), "in_features"),
])
def test_bad_arguments_raise_a_config_error_naming_the_key(kwargs, key, monkeypatch):
    built = []
    monkeypatch.setattr(torch, "empty", lambda *a, **k: built.append(a))  # no tensor first
    kwargs = {"finest_resolution": 16, **kwargs}
    with pytest.raises(ConfigError, match=key):
        Grid(**kwargs)
    assert not built


def _run(argv, capsys, tmp_path):
    code, _, err = run_cli(["run", "--model", "grid", *argv, "--out", tmp_path / "o",
                            "--logger", "none", "trainer.progress_bar=false",
                            "trainer.latency_repeats=1", "trainer.latency_warmup=0"], capsys)
    assert code == 0, err
    history = pd.read_csv(tmp_path / "o" / "metrics.csv").dropna(subset=["loss"])
    record = json.loads((tmp_path / "o" / "metrics.json").read_text())
    return record, history, err


SPEECH = sorted((samples_root() / "speech").glob("*.wav"))


@pytest.mark.parametrize("modality,argv,metric", [
    ("audio", ["--data", "audio", f"data.path={SPEECH[0]}", "data.seconds=0.1",
               "model.finest_resolution=400"], "psnr"),
    ("video", ["--data", "cat_video", "data.crop=[3,16,20]", "data.download=false"], "psnr"),
    ("occupancy", ["--data", "occupancy",
                   f"data.path={samples_root() / 'meshes' / 'bunny00.off'}",
                   "data.resolution=12", "model.base_resolution=4"], "iou"),
])
def test_it_trains_on_audio_video_and_occupancy(modality, argv, metric, capsys, tmp_path):
    record, history, _ = _run([*argv, "--steps", "30", "task.eval_every=30"], capsys, tmp_path)
    assert record["steps"] == 30 and math.isfinite(record[metric])
    assert history["loss"].iloc[-3:].mean() < history["loss"].iloc[:3].mean()
    if modality == "occupancy":  # logits out, as the fitting task's BCE and the IoU read them
        assert record["iou"] > 0.5


def test_block_sampling_trains_on_the_drawn_cells_coordinates(small_png, capsys, tmp_path):
    record, history, err = _run(["--data", "image", f"data.path={small_png}", "--steps", "150",
                                 "data.sampling=blocks", "data.batch_size=128",
                                 "task.eval_every=150"], capsys, tmp_path)
    assert record["blocks"]["shared"] is False and record["blocks"]["samples_per_step"] >= 64
    assert "Grid has no activation sharing" in err
    # each step's loss is on other cells: compare the first and last five steps
    assert history["loss"].iloc[-5:].mean() < 0.5 * history["loss"].iloc[:5].mean()


def test_a_bad_ladder_on_the_command_line_is_one_line_naming_the_key(capsys, tmp_path):
    code, _, err = run_cli(["run", "--model", "grid", "--data", "cameraman", "data.crop=[16,16]",
                            "model.finest_resolution=8", "--out", tmp_path / "o",
                            "--logger", "none"], capsys)
    assert code == 2 and "model.finest_resolution" in error_line(err)
    assert not (tmp_path / "o" / "metrics.json").exists()
