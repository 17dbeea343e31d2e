"""GaussianImage: the tiled torch rasteriser against the dense sum and finite differences,
render against forward, the 3-sigma culling radius, the gsplat backend (where it runs), the
cost count, Adan and the step decay of its recipe."""

import importlib.util
import math

import pytest
import torch

from inrbench.errors import ConfigError
from inrbench.models import create_model, make_grid, splat2d
from inrbench.models.splat2d import CUTOFF, conics_and_radii, dense_sum, splat_grid, splat_sum
from inrbench.profiling.flops import flops_per_sample
from inrbench.tasks.optim import Adan, check_optimizer, fit_optimizer


def _gaussians(n, h, w, seed=0, dtype=torch.float64, spread=3.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * torch.tensor([w, h], dtype=dtype)
    chol = torch.rand(n, 3, generator=g, dtype=dtype) * spread + torch.tensor(
        [0.5, 0.0, 0.5], dtype=dtype)
    chol[:, 1] -= spread / 2  # off-diagonal of either sign
    colour = torch.rand(n, 3, generator=g, dtype=dtype)
    return xy, chol, colour


def _pixels(h, w, dtype=torch.float64):
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.stack([cols, rows], -1).reshape(-1, 2).to(dtype)


def test_tile_culling_equals_the_dense_sum(monkeypatch):
    """Partial edge tiles, Gaussians spanning many tiles, several chunks: the tiled sum is
    the dense sum over every Gaussian within 1e-5."""
    monkeypatch.setattr(splat2d, "CHUNK_EVALS", 700)  # many chunks on a small image
    h, w = 37, 53
    xy, chol, colour = _gaussians(60, h, w, dtype=torch.float32, spread=6.0)
    points = _pixels(h, w, torch.float32)
    tiled, evals = splat_sum(points, xy, chol, colour, h, w)
    dense = dense_sum(points, xy, chol, colour)
    assert dense.abs().max() > 1  # overlapping Gaussians: a real sum, not a lucky zero
    torch.testing.assert_close(tiled, dense, atol=1e-5, rtol=0)
    assert evals < len(points) * 60  # the tiles culled work
    image, _ = splat_grid(xy, chol, colour, h, w)  # the whole-image path, tile blocks
    torch.testing.assert_close(image.reshape(-1, 3), dense, atol=1e-5, rtol=0)


def test_three_sigma_radius_holds_every_point_a_gaussian_reaches():
    """radius = ceil(3 sqrt(lambda_max)): every point with s <= CUTOFF (Mahalanobis 3) lies in
    the square [mu - r, mu + r] that picks the Gaussian's tiles."""
    h, w = 40, 40
    xy, chol, _ = _gaussians(200, h, w, spread=5.0)
    conic, radius, valid = conics_and_radii(chol)
    cov = torch.stack([chol[:, 0] ** 2, chol[:, 0] * chol[:, 1],
                       chol[:, 1] ** 2 + chol[:, 2] ** 2], -1)
    lam = torch.linalg.eigvalsh(torch.stack([cov[:, [0, 1]], cov[:, [1, 2]]], 1))[:, -1]
    assert valid.all() and (radius >= 3 * lam.sqrt()).all()
    points = _pixels(h, w)
    d = xy[None] - points[:, None]
    s = 0.5 * (conic[:, 0] * d[..., 0] ** 2 + conic[:, 2] * d[..., 1] ** 2) \
        + conic[:, 1] * d[..., 0] * d[..., 1]
    reached = s <= CUTOFF
    assert reached.any()
    assert (d.abs().amax(-1)[reached] <= radius.expand_as(s)[reached]).all()
    assert CUTOFF == pytest.approx(0.5 * 3 ** 2)


def test_gradients_match_finite_differences(monkeypatch):
    """float64 gradcheck of the tiled, checkpointed sum on a tiny image (two chunks)."""
    monkeypatch.setattr(splat2d, "CHUNK_EVALS", 150)
    h, w = 9, 20
    xy, chol, colour = _gaussians(5, h, w, seed=3)
    points = _pixels(h, w)
    for t in (xy, chol, colour):
        t.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, c: splat_sum(points, a, b, c, h, w)[0],
                                    (xy, chol, colour), eps=1e-6, atol=1e-6)
    monkeypatch.setattr(splat2d, "CHUNK_EVALS", 512)  # two pairs per chunk
    assert torch.autograd.gradcheck(lambda a, b, c: splat_grid(a, b, c, h, w)[0],
                                    (xy, chol, colour), eps=1e-6, atol=1e-6)


def test_model_gradients_through_tanh_and_the_bound_match_finite_differences():
    torch.manual_seed(0)
    model = create_model("gaussianimage", signal_shape=(8, 12), num_points=4).double()
    with torch.no_grad():
        model._features_dc.mul_(0.2)  # keep the sum inside [0, 1]: the clamp passes gradients
    target = torch.rand(8 * 12, 3, dtype=torch.float64)
    grid = make_grid((8, 12), dtype=torch.float64).reshape(-1, 2)

    def loss(xyz, cholesky, colour):
        params = {"_xyz": xyz, "_cholesky": cholesky, "_features_dc": colour}
        return ((torch.func.functional_call(model, params, (grid,)) - target) ** 2).mean()

    args = tuple(p.detach().clone().requires_grad_(True)
                 for p in (model._xyz, model._cholesky, model._features_dc))
    assert torch.autograd.gradcheck(loss, args, eps=1e-6, atol=1e-7)


def test_render_equals_forward_on_the_pixel_grid():
    torch.manual_seed(0)
    model = create_model("gaussianimage", signal_shape=(24, 40), num_points=80)
    with torch.no_grad():
        torch.testing.assert_close(model.render((24, 40)), model(make_grid((24, 40))),
                                   atol=1e-5, rtol=0)


def test_forward_at_arbitrary_coordinates_is_the_dense_sum():
    torch.manual_seed(0)
    h, w = 24, 40
    model = create_model("gaussianimage", signal_shape=(h, w), num_points=50)
    coords = torch.rand(333, 2) * 2 - 1
    pts = torch.stack([(coords[:, 1] + 1) * 0.5 * (w - 1), (coords[:, 0] + 1) * 0.5 * (h - 1)],
                      -1)
    with torch.no_grad():
        want = dense_sum(pts, model._pixel_centres(), model.cholesky, model._features_dc)
        torch.testing.assert_close(model(coords), want.clamp(0, 1), atol=1e-5, rtol=0)


def test_positions_follow_the_cuda_kernels_pixel_convention():
    """tanh(_xyz) = (x, y) sits at pixel (W (x + 1) / 2, H (y + 1) / 2): a narrow Gaussian
    at x = y = 0 peaks at column W/2, row H/2."""
    model = create_model("gaussianimage", signal_shape=(16, 32), num_points=1)
    with torch.no_grad():
        model._xyz.zero_()
        model._cholesky.zero_()  # L = 0.5 I: sigma 0.5 px
        model._features_dc.fill_(1.0)
        img = model.render((16, 32))[..., 0]
    assert divmod(int(img.argmax()), 32) == (8, 16) and float(img.max()) == pytest.approx(1.0)


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="2-D"):
        create_model("gaussianimage", in_features=3, signal_shape=(4, 4, 4))
    with pytest.raises(ConfigError, match="model.num_points"):
        create_model("gaussianimage", signal_shape=(8, 8), num_points=0)
    with pytest.raises(ConfigError, match="model.implementation"):
        create_model("gaussianimage", signal_shape=(8, 8), implementation="cuda")


def test_gsplat_asked_without_it_falls_back_with_a_note(capsys):
    if importlib.util.find_spec("gsplat") is not None and torch.cuda.is_available():
        pytest.skip("gsplat and CUDA are here: the fallback does not happen")
    model = create_model("gaussianimage", signal_shape=(8, 8), num_points=4,
                         implementation="gsplat")
    assert model.backend == "torch"
    assert "using the torch rasteriser" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("gsplat") is None or not torch.cuda.is_available(),
                    reason="needs GaussianImage's gsplat (CUDA rasteriser) and a CUDA device; "
                           "it cannot be installed on the CPU machines")
def test_gsplat_and_torch_agree():
    """Sparse Gaussians (under 256 per tile): the two differ only by the CUDA kernel's cut at
    exp(-s) >= 1/255 beyond 3 sigma, at most exp(-4.5) per overlapping Gaussian."""
    torch.manual_seed(0)
    kw = dict(signal_shape=(48, 64), num_points=30)
    gs = create_model("gaussianimage", implementation="gsplat", **kw).cuda()
    assert gs.backend == "gsplat"
    ref = create_model("gaussianimage", **kw).cuda()
    ref.load_state_dict(gs.state_dict())
    with torch.no_grad():
        a, b = gs.render((48, 64)), ref.render((48, 64))
    bound = math.exp(-4.5) * 3  # a few overlaps at most
    assert (a - b).abs().max() <= bound
    assert (a - b).abs().mean() < 1e-3


def test_cost_counts_evaluations_and_the_meta_render_replays_them():
    torch.manual_seed(0)
    model = create_model("gaussianimage", signal_shape=(32, 48), num_points=40)
    with torch.no_grad():
        model.render((32, 48))
    evals = model.evals[(32, 48)]
    assert 0 < evals < 32 * 48 * 40
    assert model.macs_per_sample() == pytest.approx(evals / (32 * 48) * (3 + 3))
    # the cost rule replays every evaluation on meta tensors: one exponential each (plus the
    # conics' few per Gaussian), and at least the quadratic form and colour sums elementwise
    per_pixel = evals / (32 * 48)
    cost = flops_per_sample(model, (32, 48))
    assert cost["unclassified"] == [] and cost["by_class"]["matmul"] == 0
    assert per_pixel <= cost["by_class"]["transcendental"] <= per_pixel + 8 * 40 / (32 * 48)
    assert cost["by_class"]["elementwise"] >= per_pixel * (3 + 3)


def test_training_memory_stays_bounded_by_chunks(monkeypatch):
    """A step over many chunks keeps one chunk's intermediates: the graph holds no tensor
    as long as the evaluations (checkpointed chunks)."""
    monkeypatch.setattr(splat2d, "CHUNK_EVALS", 4096)
    h, w = 64, 96
    xy, chol, colour = _gaussians(400, h, w, dtype=torch.float32)
    xy.requires_grad_(True)
    saved = []

    def pack(t):
        saved.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out, evals = splat_sum(_pixels(h, w, torch.float32), xy, chol, colour, h, w)
    out.sum().backward()
    assert evals > 8 * 4096 and max(saved) < evals
    assert xy.grad is not None and xy.grad.abs().sum() > 0


def _reference_adan(p, grads, lr, b1=0.98, b2=0.92, b3=0.99, eps=1e-8):
    """The Adan update written out step by step (sail-sg's form, as GaussianImage's)."""
    m = v = n = torch.zeros_like(p)
    prev = None
    for t, g in enumerate(grads, start=1):
        prev = g if prev is None else prev
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * (g - prev)
        n = b3 * n + (1 - b3) * (g + b2 * (g - prev)) ** 2
        denom = (n / (1 - b3 ** t)).sqrt() + eps
        p = p - lr * (m / (1 - b1 ** t) + b2 * v / (1 - b2 ** t)) / denom
        prev = g
    return p


def test_adan_matches_the_written_out_update():
    torch.manual_seed(0)
    grads = [torch.randn(5, dtype=torch.float64) for _ in range(6)]
    p = torch.nn.Parameter(torch.randn(5, dtype=torch.float64))
    want = _reference_adan(p.detach().clone(), grads, lr=1e-2)
    opt = Adan([p], lr=1e-2)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    torch.testing.assert_close(p.detach(), want)


def test_step_decay_halves_the_rate_and_refuses_the_cosine():
    p = torch.nn.Parameter(torch.zeros(2))
    conf = fit_optimizer([p], 1e-3, "adan", "none", steps=10, lr_step=3, lr_gamma=0.5)
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    assert isinstance(opt, Adan)
    rates = []
    for _ in range(7):
        rates.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(2)
        opt.step()
        sched.step()
    assert rates == pytest.approx([1e-3] * 3 + [5e-4] * 3 + [2.5e-4])
    with pytest.raises(ConfigError, match="scheduler=none"):
        check_optimizer("adan", "cosine", 20000, 0.5)
    with pytest.raises(ConfigError, match="task.optimizer"):
        check_optimizer("sgd", "none", 0, 0.5)


def test_trains_through_the_fit_task_and_compresses_by_the_ani_path(small_png, tmp_path):
    """The official recipe (Adan, step decay) through the real run, then post-training
    quantization to an .inrb file that decodes to the same model class."""
    from inrbench.compress import compress_run, decode_file
    from inrbench.config import compose
    from inrbench.run import run

    cfg = compose(model="gaussianimage", data="image",
                  overrides=[f"data.path={small_png}", "model.num_points=300",
                             "task.eval_every=8", "trainer.latency_repeats=1",
                             "trainer.latency_warmup=0", "trainer.progress_bar=false"],
                  extra={"task.steps": 8, "trainer.out": str(tmp_path / "run"),
                         "trainer.logger": "none"})
    assert cfg.task.optimizer == "adan" and cfg.task.lr_step == 20000
    summary = run(cfg)
    assert summary["backend"] == "torch" and math.isfinite(summary["psnr"])
    # its tensors have no layer role (no Linear): --layers all quantizes them; 16 bits, as
    # the paper keeps its positions (fp16), costs almost nothing
    rec = compress_run(tmp_path / "run", bits=16, layers="all")
    decoded, _ = decode_file(rec["file"])
    assert type(decoded).__name__ == "GaussianImage" and rec["bpp"] > 0
    assert rec["psnr"] == pytest.approx(summary["psnr"], abs=0.05)
    with pytest.raises(ConfigError, match="selects no tensor"):
        compress_run(tmp_path / "run", bits=8)  # the default hidden layers: none here
