"""Crash + ``--resume`` reaches the uninterrupted run's result in every sampling mode:
the batches a step draws are a function of the global step (data/base.py), the
optimizer, scheduler and RNG state come back from the checkpoint, so the loss curve and the
final PSNR of a resumed run equal those of a run that never stopped."""

import json

import lightning as L
import pandas as pd
import pytest
from omegaconf import OmegaConf

from inrbench.run import run

STEPS, CRASH_AT = 24, 13  # checkpoints every 5 steps: the crash loses steps 11-13

MODES = {
    "random": ["data.sampling=random", "data.batch_size=256"],
    "tile": ["data.sampling=tile", "data.tile=[16,16]"],
    "blocks": ["data.sampling=blocks", "data.batch_size=256"],
    # 1,536 samples in 2 steps per epoch: the step-10 checkpoint is at an epoch's end
    "random, epoch end": ["data.sampling=random", "data.batch_size=768"],
}


class _FirstStep(L.Callback):
    """Records the step training (re)starts at: a resume must not start from scratch."""

    first = None

    def on_train_batch_start(self, trainer, *args):
        if self.first is None:
            self.first = trainer.global_step


class _Crash(L.Callback):
    """A process dying mid-run, after the step-10 checkpoint was written."""

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == CRASH_AT:
            raise RuntimeError("simulated crash")


@pytest.mark.parametrize("mode", list(MODES))
def test_crash_then_resume_equals_the_uninterrupted_run(mode, tmp_path, small_png, tiny_cfg):
    overrides = MODES[mode]
    ref = run(tiny_cfg(small_png, tmp_path / "ref", steps=STEPS, extra_overrides=overrides))
    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(tiny_cfg(small_png, out, steps=STEPS, extra_overrides=overrides),
            callbacks=[_Crash()])
    assert not (out / "metrics.json").exists()
    # what `inrbench run --out DIR --resume` does: the saved config, resume=True
    first = _FirstStep()
    run(OmegaConf.load(out / "config.yaml"), resume=True, callbacks=[first])
    assert first.first == 10  # continued from the step-10 checkpoint, not from scratch
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["steps"] == STEPS and resumed["sampling"] == ref["sampling"]
    assert resumed["psnr"] == pytest.approx(ref["psnr"], abs=1e-4)
    assert resumed["best_psnr"] == pytest.approx(ref["best_psnr"], abs=1e-4)
    got = pd.read_csv(out / "metrics.csv")
    want = pd.read_csv(tmp_path / "ref" / "metrics.csv")
    # every step's loss once, equal to the uninterrupted run's (same batches, same state)
    assert list(got["step"].dropna().astype(int)) == list(want["step"].dropna().astype(int))
    pd.testing.assert_series_equal(got["loss"], want["loss"], rtol=1e-4)
