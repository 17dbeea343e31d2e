import os

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def small_png(tmp_path):
    """A real 32x48 RGB PNG cut from scikit-image's astronaut photo."""
    from skimage import data

    path = tmp_path / "small.png"
    Image.fromarray(data.astronaut()[200:264:2, 150:246:2]).save(path)
    return path


@pytest.fixture
def tiny_cfg():
    """Compose the real config for a tiny, fast run on a PNG."""
    from inrbench.config import compose

    def make(path, out, model="asmr", steps=20, extra_overrides=()):
        overrides = [f"data.path={path}", "model.hidden_dim=64", "model.n_layers=3",
                     "task.lr=1e-3", "task.eval_every=10", "trainer.checkpoint_every=5",
                     "trainer.latency_repeats=2", "trainer.latency_warmup=1",
                     "trainer.progress_bar=false", *extra_overrides]
        return compose(model=model, data="image", overrides=overrides,
                       extra={"task.steps": steps, "trainer.out": str(out),
                              "trainer.logger": "csv"})

    return make


@pytest.fixture
def rng_image():
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _run_in_tmp(tmp_path, monkeypatch):
    """Each test runs in its own folder, so default run folders never land in the checkout."""
    monkeypatch.chdir(tmp_path)
