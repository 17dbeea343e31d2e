"""Every registered model, through the real config path: build, render, learn, profile."""

import math

import pytest
import torch

from inrbench.config import compose
from inrbench.data.base import SignalSpec
from inrbench.models import list_models, make_grid
from inrbench.profiling import profile
from inrbench.runner import build_model

SPEC = SignalSpec(shape=(16, 24), channels=3)


def tiny_model(name):
    cfg = compose(model=name, data="cameraman")
    for key, small in (("hidden_dim", 16), ("n_layers", min(cfg.model.get("n_layers") or 3, 3))):
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
def test_every_model_learns(name):
    model, cfg = tiny_model(name)
    target = torch.rand(*SPEC.shape, SPEC.channels, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg.task.lr))
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model.render(SPEC.shape), target)
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert all(math.isfinite(x) for x in losses)
    assert min(losses[-5:]) < losses[0]


@pytest.mark.parametrize("name", list_models())
def test_every_model_is_profiled(name):
    model, _ = tiny_model(name)
    stats = profile(model, SPEC.shape)
    assert stats["params"] == sum(p.numel() for p in model.parameters()) > 0
    assert stats["macs"] > 0 and stats["macs_measured"] > 0
