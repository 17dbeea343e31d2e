"""Baseline models (FFN, MFN, WIRE, KiloNeRF, LoE, Instant-NGP, DINER): render == forward,
learning, the ASMR paper's params/MACs row by row, and config errors."""

import math
from decimal import ROUND_HALF_UP, Decimal

import pytest
import torch

from inrbench.cli import main
from inrbench.config import compose
from inrbench.errors import ConfigError
from inrbench.models import create_model, make_grid
from inrbench.models.base import coords_to_index
from inrbench.models.ngp import PRIMES, InstantNGP
from inrbench.profiling import profile

# small versions of every baseline, by number of signal axes
SMALL = {
    "ffn": dict(embedding_size=16, sigma=2.0, hidden_dim=32, n_layers=3),
    "mfn_fourier": dict(hidden_dim=32, n_layers=4, input_scale=16.0),
    "mfn_gabor": dict(hidden_dim=32, n_layers=3, input_scale=16.0),
    "wire": dict(hidden_dim=16, n_layers=2, omega0=5.0, s0=5.0),
    "kilonerf": dict(grid=2, hidden_dim=8, n_layers=3, n_freqs=3),
    "loe": dict(hidden_dim=8, n_layers=3, n_freqs=3),
    "ngp": dict(n_levels=4, log2_hashmap_size=6, base_resolution=2, finest_resolution=16,
                n_layers=2, hidden_dim=16),
    "diner": dict(hidden_dim=16, n_layers=3),
}
SHAPES = {1: (24,), 2: (12, 16), 3: (4, 6, 8)}
NEEDS_SHAPE = {"kilonerf", "loe", "diner"}


def small_model(name, shape, channels=2, seed=0, **overrides):
    kwargs = dict(SMALL[name], in_features=len(shape), out_features=channels, **overrides)
    if name in NEEDS_SHAPE:
        kwargs["signal_shape"] = list(shape)
    torch.manual_seed(seed)
    return create_model(name, **kwargs)


@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("name", list(SMALL))
def test_render_equals_forward_on_the_full_grid(name, dims):
    shape = SHAPES[dims]
    model = small_model(name, shape)
    with torch.no_grad():
        full = model.render(shape)
        grid = make_grid(shape)
        per_sample = model(grid)
        # a shuffled subset through forward lands on the same values (grouping is undone)
        flat = grid.reshape(-1, dims)
        pick = torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(1))[:37]
        subset = model(flat[pick])
        chunked = model.render(shape, chunk=50)
    assert full.shape == (*shape, 2)
    torch.testing.assert_close(chunked, full, atol=1e-5, rtol=1e-5)
    assert full.abs().sum() > 0
    torch.testing.assert_close(full, per_sample, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(subset, full.reshape(-1, 2)[pick], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name,overrides", [
    ("kilonerf", dict(grid=[4, 2])),        # 12 x 16 in 4 x 2 equal cells: no padding
    ("kilonerf", dict(grid=[5, 3])),        # cells of unequal sizes: padded groups
    ("loe", dict(tiles=[[2, 3], [4, 2]])),  # C_i divide the sizes: no padding
    ("loe", dict(tiles=[[5], [3]], n_layers=2)),  # they do not: padded groups
])
def test_tiled_models_render_any_grid_like_forward(name, overrides):
    """render's per-axis grouping (planned from the shape) == forward's sort-based grouping,
    on the signal's grid and on another grid; the profiler counts it on meta tensors."""
    shape = SHAPES[2]
    kwargs = {k: v for k, v in SMALL[name].items() if k != "n_layers"}
    kwargs.update(overrides)
    torch.manual_seed(0)
    model = create_model(name, in_features=2, out_features=3, signal_shape=list(shape), **kwargs)
    with torch.no_grad():
        for grid in (shape, (7, 23)):
            torch.testing.assert_close(model.render(grid), model(make_grid(grid)),
                                       atol=1e-5, rtol=1e-5)
    stats = profile(model, shape)
    assert stats["macs_measured"] >= model.macs_per_sample(include_bias=False)


def test_kilonerf_cell_owns_exactly_its_block():
    shape = (12, 16)
    model = small_model("kilonerf", shape, grid=[3, 4])
    before = model.render().detach()
    with torch.no_grad():
        for layer in model.layers:  # cell (1, 2) is flat cell 1 * 4 + 2
            layer.weight[6].add_(0.5)
    changed = (model.render().detach() - before).abs().sum(-1) > 0
    expected = torch.zeros(shape, dtype=torch.bool)
    expected[4:8, 8:12] = True
    assert torch.equal(changed, expected)


def test_loe_tile_choice_is_the_mixed_radix_digit():
    shape = (16, 8)
    model = small_model("loe", shape, tiles=[[2, 4], [4, 2]])
    assert [t.n_tiles for t in model.layers] == [8, 8]
    idx = coords_to_index(make_grid(shape).reshape(-1, 2), shape)
    tiles = model.tile_of(make_grid(shape).reshape(-1, 2))
    # layer 0: coarse blocks (row // 8, col // 2); layer 1: (row // 2 % 4, col % 2)
    torch.testing.assert_close(tiles[:, 0], (idx[:, 0] // 8) * 4 + idx[:, 1] // 2)
    torch.testing.assert_close(tiles[:, 1], (idx[:, 0] // 2 % 4) * 2 + idx[:, 1] % 2)
    before = model.render().detach()
    with torch.no_grad():
        model.layers[1].weight[3].add_(0.5)  # fine tile (1, 1): rows 2-3 mod 8, odd columns
    changed = (model.render().detach() - before).abs().sum(-1) > 0
    rows = (torch.arange(16) // 2 % 4 == 1).unsqueeze(1)
    cols = (torch.arange(8) % 2 == 1).unsqueeze(0)
    assert torch.equal(changed, rows & cols)


def reference_hash_encoding(model: InstantNGP, point: list[float]) -> torch.Tensor:
    """Instant-NGP's encoding of one point in [0, 1]^d, written out level by level."""
    grid, feats = model.encoding, []
    offset = 0
    for res, size in zip(model.resolutions, grid.level_sizes):
        pos = [p * r for p, r in zip(point, res)]
        cell = [min(math.floor(x), r - 1) for x, r in zip(pos, res)]
        vertices = math.prod(r + 1 for r in res)
        acc = torch.zeros(model.n_features_per_level)
        for corner in range(2 ** len(res)):
            bits = [(corner >> k) & 1 for k in range(len(res))]
            v = [c + b for c, b in zip(cell, bits)]
            if vertices <= grid.table_size:
                index = sum(vk * math.prod(r + 1 for r in res[:k]) for k, vk in enumerate(v))
            else:
                h = 0
                for k, vk in enumerate(v):
                    h ^= vk * PRIMES[k]
                index = h % grid.table_size
            w = math.prod(pos[k] - cell[k] if b else 1 - (pos[k] - cell[k])
                          for k, b in enumerate(bits))
            acc += w * grid.embeddings[offset + index].detach()
        feats.append(acc)
        offset += size
    return torch.cat(feats)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_ngp_hash_grid_matches_the_paper_level_by_level(dims):
    # base 3 -> finest 40 over 5 levels; small T: coarse levels dense, fine levels hashed
    log2_t = 4 if dims == 1 else 8
    model = InstantNGP(dims, 1, n_levels=5, log2_hashmap_size=log2_t, base_resolution=3,
                       finest_resolution=40, n_layers=1)
    with torch.no_grad():
        model.encoding.embeddings.uniform_(-1, 1)
    dense = [math.prod(r + 1 for r in res) <= 2 ** log2_t for res in model.resolutions]
    assert any(dense) and not all(dense)
    points = torch.rand(16, dims, generator=torch.Generator().manual_seed(0))
    points[0] = 1.0  # the far corner uses the last cell
    got = model.encoding(points)
    for p, g in zip(points.tolist(), got):
        torch.testing.assert_close(g, reference_hash_encoding(model, p), atol=1e-5, rtol=1e-5)


def test_ngp_tcnn_falls_back_to_torch_when_unavailable(capsys):
    try:
        import tinycudann  # noqa: F401
        runnable = torch.cuda.is_available()
    except ImportError:
        runnable = False
    model = InstantNGP(2, 1, n_levels=2, log2_hashmap_size=8, base_resolution=4,
                       finest_resolution=8, implementation="tcnn")
    assert model.backend == ("tcnn" if runnable else "torch")
    if not runnable:
        assert "using the torch hash grid" in capsys.readouterr().err
    assert InstantNGP(2, 1, implementation="torch").backend == "torch"


@pytest.mark.parametrize("name", list(SMALL))
def test_a_few_adam_steps_reduce_the_loss(name):
    shape = (16, 16)
    model = small_model(name, shape, channels=3)
    lr = float(compose(model=name, data="cameraman").task.lr)
    grid = make_grid(shape)
    target = torch.stack([torch.sin(3 * grid[..., 0]), torch.cos(2 * grid[..., 1]),
                          grid[..., 0] * grid[..., 1]], dim=-1)
    opt = torch.optim.Adam(model.parameters(), lr=max(lr, 1e-3))
    losses = []
    for step in range(30):
        opt.zero_grad()
        if step % 2:  # full-grid steps (render) alternate with random-batch steps (forward)
            pick = torch.randint(0, 256, (64,), generator=torch.Generator().manual_seed(step))
            loss = torch.nn.functional.mse_loss(model(grid.reshape(-1, 2)[pick]),
                                                target.reshape(-1, 3)[pick])
        else:
            loss = torch.nn.functional.mse_loss(model.render(shape), target)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        final = float(torch.nn.functional.mse_loss(model.render(shape), target))
    assert all(math.isfinite(x) for x in losses)
    assert final < 0.8 * losses[0]


# ASMR paper rows: (table, model, kwargs, signal shape, channels, include_bias (None: the
# model's default), params as printed, unit, MACs per sample as printed, unit)
K, M = 1_000, 1_000_000
PIC, KODAK, AUDIO = (512, 512), (512, 768), (32000,)
KILO2 = dict(grid=[16, 16], hidden_dim=16, n_freqs=10)
ROWS = [
    ("2", "kilonerf", dict(KILO2, n_layers=3), PIC, 1, None, "250", K, "0.98", K),
    ("2", "loe", dict(tiles=[[8, 8, 8], [8, 8, 8]], hidden_dim=24, n_freqs=8), PIC, 1, True,
     "126", K, "2.07", K),
    ("3", "ffn", dict(embedding_size=128, sigma=10.0, hidden_dim=256, n_layers=3), KODAK, 3,
     None, "132.4", K, "131.8", K),
    ("3", "mfn", dict(hidden_dim=256, n_layers=4, input_scale=256.0), KODAK, 3, None,
     "134.7", K, "133.4", K),
    ("3", "wire", dict(hidden_dim=212, n_layers=4, omega0=20.0, s0=20.0), KODAK, 3, None,
     "136.8", K, "135.9", K),
    ("4", "ngp", dict(n_levels=7, log2_hashmap_size=16, base_resolution=125,
                      finest_resolution=8000, per_level_scale=2.0, n_layers=2, hidden_dim=64),
     AUDIO, 1, None, "32.9", K, "1.0", K),
    ("4", "kilonerf", dict(grid=[4], hidden_dim=48, n_layers=5, n_freqs=12), AUDIO, 1, False,
     "33.4", K, "8.16", K),
    ("5", "ngp", dict(n_levels=16, log2_hashmap_size=16, base_resolution=16,
                      finest_resolution=4096, n_layers=3, hidden_dim=64),
     (8192, 8192), 3, None, "1.229", M, "0.006", M),
    ("5", "kilonerf", dict(grid=[16, 16], hidden_dim=32, n_layers=6, n_freqs=10, macs_pe=False),
     (8192, 8192), 3, None, "1.459", M, "0.004", M),
    ("8", "kilonerf", dict(KILO2, hidden_dim=8, n_layers=3), PIC, 1, None, "108.8", K,
     "0.425", K),
    ("8", "kilonerf", dict(KILO2, n_layers=3), PIC, 1, None, "250.1", K, "0.977", K),
    ("8", "loe", dict(tiles=[[32, 16], [32, 16]], hidden_dim=8, n_freqs=8), PIC, 1, True,
     "294.9", K, "0.361", K),
    ("8", "loe", dict(tiles=[[8, 8, 8], [8, 8, 8]], hidden_dim=24, n_freqs=8), PIC, 1, None,
     "126.0", K, "1.992", K),
    *[("9", "loe", dict(tiles=t, hidden_dim=24, n_freqs=8), PIC, 1, None, p, K, m, K)
      for t, p, m in [([4, 4, 4, 2, 2, 2], "38.6", "3.72"), ([4, 4, 4, 4, 2], "43.2", "3.14"),
                      ([8, 4, 4, 4], "80.0", "2.57"), ([8, 8, 8], "126", "1.99")]],
    *[("9", "kilonerf", dict(KILO2, n_layers=n), PIC, 1, None, p, K, m, K)
      for n, p, m in [(6, "459", "1.79"), (5, "389", "1.52"), (4, "320", "1.25"),
                      (3, "250", "0.98")]],
    *[("7", "loe", dict(tiles=t, hidden_dim=50, n_freqs=8), PIC, 1, None, p, K, m, K)
      for t, p, m in [([2] * 9, "87", "21.8"), ([4] + [2] * 7, "98", "19.3"),
                      ([4, 4] + [2] * 5, "118", "16.8"), ([4, 4, 4, 2, 2, 2], "138", "14.3"),
                      ([4, 4, 4, 4, 2], "158", "11.8")]],
    # Table 7's KiloNeRF params are an 8x8 grid's (its "[16]" would be 16x16: 4x the params)
    *[("7", "kilonerf", dict(grid=[8, 8], hidden_dim=32, n_layers=n, n_freqs=10), PIC, 1,
       False, p, K, m, K)
      for n, p, m in [(6, "361", "5.5"), (5, "293", "4.4"), (4, "225", "3.4"),
                      (3, "158", "2.4")]],
    ("10", "kilonerf", dict(grid=[3, 8, 8], hidden_dim=32, n_layers=6, n_freqs=10),
     (300, 512, 512), 3, False, "1.223", M, "6.21", K),
    # Table 11: 16 levels and 2^17 entries (the official video config), not appendix G's 17/2^16
    ("11", "ngp", dict(n_levels=16, log2_hashmap_size=17, base_resolution=[5, 9, 12],
                       finest_resolution=[75, 135, 240], n_layers=3, hidden_dim=64),
     (150, 270, 480), 3, None, "1.990", M, "0.006", M),
    ("11", "kilonerf", dict(grid=[3, 5, 5], hidden_dim=64, n_layers=8, n_freqs=10,
                            macs_pe=False), (150, 270, 480), 3, None, "2.194", M, "0.025", M),
]


def as_printed(value: float, unit: int, printed: str) -> str:
    """``value / unit`` rounded half-up to as many decimals as ``printed`` has."""
    exp = Decimal(printed).as_tuple().exponent
    return str((Decimal(value) / unit).quantize(Decimal(1).scaleb(exp), ROUND_HALF_UP))


@pytest.mark.parametrize("table,name,kwargs,shape,channels,bias,params,punit,macs,munit", ROWS,
                         ids=[f"table{r[0]}-{r[1]}-{i}" for i, r in enumerate(ROWS)])
def test_paper_rows(table, name, kwargs, shape, channels, bias, params, punit, macs, munit):
    if name in NEEDS_SHAPE:
        kwargs = dict(kwargs, signal_shape=list(shape))
    model = create_model(name, in_features=len(shape), out_features=channels, **kwargs)
    stats = profile(model, shape)
    got = stats["macs"] if bias is None else model.macs_per_sample(include_bias=bias)
    assert as_printed(stats["params"], punit, params) == params
    assert as_printed(got, munit, macs) == macs
    # what a render actually multiplies: the weights of one path per sample, no padding rows
    if not kwargs.get("macs_pe", True):
        return  # the paper counts the raw input there; the render runs the encoded one
    weights = model.macs_per_sample(include_bias=False)
    extra = kwargs.get("embedding_size", 0) * len(shape)  # FFN's projection B v
    assert stats["macs_measured"] == pytest.approx(weights + extra)


def test_table11_as_printed_in_appendix_g_gives_other_params():
    """17 levels with 2^16 entries (appendix G's text) cannot give 1.990M."""
    model = create_model("ngp", in_features=3, out_features=3, n_levels=17,
                         log2_hashmap_size=16, base_resolution=[5, 9, 12],
                         finest_resolution=[75, 135, 240], n_layers=3, hidden_dim=64)
    assert as_printed(model.n_params, M, "1.990") != "1.990"


def test_cli_profile_prints_the_paper_rows(capsys):
    assert main(["profile", "--model", "kilonerf", "--data", "cameraman", "model.grid=[16,16]",
                 "model.hidden_dim=16", "model.n_layers=3", "model.n_freqs=10"]) == 0
    out = capsys.readouterr().out
    assert "params         250,112" in out and "macs           977.00" in out
    assert main(["profile", "--model", "loe", "--data", "cameraman", "model.macs_bias=true",
                 "model.tiles=[[8,8,8],[8,8,8]]"]) == 0
    out = capsys.readouterr().out
    assert "params         126,049" in out and "macs           2,065.00" in out
    assert main(["profile", "--model", "wire", "--data", "kodak"]) == 0
    out = capsys.readouterr().out
    assert "params         136,751" in out and "macs           135,892.00" in out


@pytest.mark.parametrize("name,kwargs,key", [
    ("siren", dict(coord_scale=0.0), "coord_scale"),
    ("ffn", dict(n_layers=1), "n_layers"),
    ("ffn", dict(sigma=-1.0), "sigma"),
    ("mfn", dict(filter="wavelet"), "filter"),
    ("mfn", dict(input_scale=0), "input_scale"),
    ("wire", dict(hidden_dim=0), "hidden_dim"),
    ("wire", dict(scale=20.0), "scale"),
    ("kilonerf", dict(grid=[16, 16, 16]), "grid"),
    ("kilonerf", dict(signal_shape=[8, 8], grid=[16, 4]), "grid"),
    ("kilonerf", dict(activation="tanh"), "activation"),
    ("loe", dict(tiles=[[8, 8, 16], [8, 8, 8]]), "tiles"),
    ("loe", dict(tiles=[8, 8, 8], n_layers=3), "n_layers"),
    ("loe", dict(tiles=[[8, 8], [8]]), "tiles"),
    ("ngp", dict(implementation="cuda"), "implementation"),
    ("ngp", dict(base_resolution=64, finest_resolution=16), "finest_resolution"),
    ("ngp", dict(finest_resolution=4096, per_level_scale=3.0), "per_level_scale"),
    ("ngp", dict(finest_resolution=None), "per_level_scale"),
    ("ngp", dict(base_resolution=[16, 16, 16]), "base_resolution"),
    ("diner", dict(table_init="zeros"), "table_init"),
    ("diner", dict(table_dim=3, table_init="coords"), "table_dim"),
    ("diner", dict(signal_shape=[8, 8, 8]), "in_features"),
])
def test_bad_config_raises_config_error(name, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        create_model(name, **kwargs)


def test_siren_coord_scale_is_the_official_audio_input_range():
    """coord_scale 5 on our [-1, 1] grid is the official audio SIREN fed linspace(-5, 5):
    same weights, same outputs, also on the meta-learning (shifted) path; MACs unchanged."""
    from inrbench.models.modulated import forward_shifted, shift_layout

    torch.manual_seed(0)
    scaled = create_model("siren", in_features=1, hidden_dim=16, n_layers=3, coord_scale=5.0)
    plain = create_model("siren", in_features=1, hidden_dim=16, n_layers=3)
    plain.load_state_dict(scaled.state_dict())
    x = torch.linspace(-1.0, 1.0, 101)[:, None]
    assert torch.allclose(scaled(x), plain(5.0 * x), atol=1e-6)
    assert not torch.allclose(scaled(x), plain(x), atol=1e-3)
    shifts = torch.zeros(1, *shift_layout(scaled))
    assert torch.allclose(forward_shifted(scaled, x[None], shifts)[0], scaled(x), atol=1e-6)
    assert scaled.macs_per_sample() == plain.macs_per_sample()
