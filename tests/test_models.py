"""Every registered model, through the real config path: build, render, learn, profile."""

import math

import pandas as pd
import pytest
import torch

from inrbench.build import build_model
from inrbench.config import compose
from inrbench.data.base import SignalSpec
from inrbench.models import list_models, make_grid
from inrbench.profiling import profile
from inrbench.run import run

SPEC = SignalSpec(shape=(16, 24), channels=3)


def tiny_model(name):
    # the model's own defaults: `image` has no paper row, so none is merged in (rowdefaults)
    cfg = compose(model=name, data="image", overrides=["data.path=unused.png"])
    for key, small in (("hidden_dim", 16), ("n_layers", min(cfg.model.get("n_layers") or 3, 3)),
                       ("num_points", 64)):
        if key in cfg.model:
            cfg.model[key] = small
    if "bases" in cfg.model:
        cfg.model.bases = None  # the default factorisation of the tiny signal
    torch.manual_seed(0)
    return build_model(cfg, SPEC), cfg


@pytest.mark.parametrize("name", list_models())
def test_every_model_renders_what_it_forwards(name):
    model, _ = tiny_model(name)
    with torch.no_grad():
        full = model.render(SPEC.shape)
        per_sample = model(make_grid(SPEC.shape))
    assert full.shape == (*SPEC.shape, SPEC.channels)
    torch.testing.assert_close(full, per_sample, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", list_models())
def test_every_model_trains_through_the_fitting_task(name, small_png, tmp_path):
    """The real path: composed config -> image data -> model -> FitTask -> Trainer -> results."""
    overrides = [f"data.path={small_png}", "trainer.latency_repeats=1",
                 "trainer.latency_warmup=0", "trainer.progress_bar=false", "task.eval_every=25"]
    cfg = compose(model=name, data="image", overrides=overrides,
                  extra={"task.steps": 25, "trainer.out": str(tmp_path / name),
                         "trainer.logger": "none"})
    for key, small in (("hidden_dim", 16), ("n_layers", 3), ("num_points", 256)):
        if key in cfg.model:
            cfg.model[key] = min(small, cfg.model[key])
    if "bases" in cfg.model:
        cfg.model.bases = None
    summary = run(cfg)
    history = pd.read_csv(tmp_path / name / "metrics.csv")
    assert summary["steps"] == 25 and math.isfinite(summary["psnr"])
    assert history["loss"].iloc[-5:].min() < history["loss"].iloc[0]  # it learns


@pytest.mark.parametrize("name", list_models())
def test_every_model_is_profiled(name):
    model, _ = tiny_model(name)
    stats = profile(model, SPEC.shape)
    assert stats["params"] == sum(p.numel() for p in model.parameters()) > 0
    assert stats["flops"] > 0 and stats["macs_measured"] >= 0
    # a model with no paper convention (macs_per_sample raises) is measured only
    assert stats["macs"] > 0 if stats["macs"] is not None \
        else stats["macs_source"] == "measured only"
