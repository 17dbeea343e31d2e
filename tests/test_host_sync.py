"""No host synchronisation per training step: between two logging steps a real run reads no
tensor back to the host (every read of a tensor's value, counted through the patched tensor
methods on the CPU), and the records it keeps are those of a plain PyTorch loop."""


import lightning as L
import pandas as pd
import pytest
import torch
from host_reads import LogEvery, assert_reads_at_logging_steps, count_reads

from inrbench.run import run

EVERY = 8  # the trainer's logging interval: min(50, steps) -> the runs below set it




@pytest.fixture
def reads(monkeypatch):
    return count_reads(monkeypatch)


@pytest.mark.parametrize("task,extra", [
    ("fit", []),
    ("qat", ["task.quant_bits=8"]),
    ("ofa", ["model.n_layers=4", "task.ofa_widths=[32,64]", "task.ofa_depths=[1,2]"]),
])
@pytest.mark.parametrize("progress_bar", [False, True])
def test_no_tensor_is_read_back_between_two_logging_steps(small_png, tmp_path, tiny_cfg,
                                                          reads, task, extra, progress_bar):
    where, seen = reads
    model = "siren" if task != "fit" else "asmr"
    steps = 3 * EVERY
    cfg = tiny_cfg(small_png, tmp_path / "o", model=model, steps=steps,
                   extra_overrides=[f"task.name={task}", *extra, "task.eval_every=100",
                                    "trainer.checkpoint_every=100",
                                    f"trainer.progress_bar={str(progress_bar).lower()}"])
    cfg.trainer.logger = "none"
    run(cfg, callbacks=[where, LogEvery(EVERY)])
    assert_reads_at_logging_steps(seen, EVERY, steps)
    rows = pd.read_csv(tmp_path / "o" / "metrics.csv").dropna(subset=["loss"])
    assert list(rows["step"]) == list(range(steps))  # every step's row, as floats
    assert rows["loss"].map(type).eq(float).all()




def _plain_loop(cfg, steps: int) -> tuple[list[float], torch.nn.Module]:
    """The run's model, seeded as the run seeds it, trained by a bare loop: Adam with the
    cosine schedule on the whole signal's MSE."""
    from inrbench.build import build_datamodule, build_model

    L.seed_everything(int(cfg.trainer.seed), workers=True, verbose=False)
    dm = build_datamodule(cfg)
    spec = dm.spec()
    model = build_model(cfg, spec)
    dm.setup("fit")
    target = dm.signal
    opt = torch.optim.Adam(model.parameters(), lr=float(cfg.task.lr))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps,
                                                       eta_min=float(cfg.task.lr_min))
    losses = []
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model.render(spec.shape), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses, model


@pytest.mark.parametrize("model", ["asmr", "siren"])
def test_a_run_trains_as_a_plain_pytorch_loop_and_records_its_losses(small_png, tmp_path,
                                                                    tiny_cfg, model):
    """The suite's step (its task, callbacks and device-side records) changes no result:
    the same seed, model, Adam and cosine schedule in a bare loop give the same losses and
    weights, and the best PSNR is the best of the recorded rows."""
    steps = 12
    cfg = tiny_cfg(small_png, tmp_path / "o", model=model, steps=steps,
                   extra_overrides=["task.eval_every=100", "trainer.checkpoint_every=100"])
    cfg.trainer.logger = "none"
    result = run(cfg)
    losses, plain = _plain_loop(cfg, steps)
    rows = pd.read_csv(tmp_path / "o" / "metrics.csv")
    train = rows.dropna(subset=["loss"])
    assert train["loss"].tolist() == pytest.approx(losses, rel=1e-6, abs=1e-9)
    seen = [result["psnr"], *train["psnr"], *rows.get("val_psnr", pd.Series()).dropna()]
    assert result["best_psnr"] == pytest.approx(max(seen), abs=1e-6)
    saved = torch.load(tmp_path / "o" / "checkpoints" / "last.ckpt", weights_only=False)
    for name, p in plain.named_parameters():
        torch.testing.assert_close(saved["state_dict"][f"model.{name}"], p.detach())
