"""ASMR: activation-sharing render == per-sample forward; bases validation and defaults."""

import pytest
import torch

from inrbench.bases import default_bases, factorize_axis
from inrbench.errors import ConfigError
from inrbench.models import create_model, make_grid
from inrbench.models.asmr_render import render_no_grad


@pytest.mark.parametrize("shape,bases,channels", [
    ((24, 30), [[2, 3, 4], [5, 3, 2]], 3),
    ((32, 48), [[2, 2, 1, 8], [3, 1, 4, 4]], 1),   # a base of 1 on some levels
    ((512, 768), [[4, 4, 4, 8], [4, 4, 6, 8]], 3),  # the paper's Kodak bases
])
@pytest.mark.parametrize("modulator", ["linear", "nonlinear"])
def test_shared_render_matches_per_sample_forward(shape, bases, channels, modulator):
    torch.manual_seed(0)
    model = create_model("asmr", in_features=2, out_features=channels, signal_shape=shape,
                         bases=bases, n_layers=len(bases[0]), hidden_dim=32, modulator=modulator)
    with torch.no_grad():
        shared = model.render()
        per_sample = model(make_grid(shape))
    assert shared.shape == (*shape, channels)
    torch.testing.assert_close(shared, per_sample, atol=1e-4, rtol=0)


@pytest.mark.parametrize("shape,bases", [
    ((24, 30), [[2, 3, 4], [5, 3, 2]]),
    ((8, 12, 10), [[2, 2, 2], [3, 2, 2], [5, 1, 2]]),
    ((64,), [[4, 4, 4]]),
])
@pytest.mark.parametrize("chunk", [1, 7, 50, 200])
def test_chunked_render_matches_per_sample_forward(shape, bases, chunk):
    torch.manual_seed(0)
    model = create_model("asmr", in_features=len(shape), out_features=3, signal_shape=shape,
                         bases=bases, n_layers=len(bases[0]), hidden_dim=16)
    with torch.no_grad():
        torch.testing.assert_close(model.render(chunk=chunk), model(make_grid(shape)),
                                   atol=1e-4, rtol=0)


def test_shared_render_gradients_match_per_sample():
    torch.manual_seed(0)
    model = create_model("asmr", out_features=3, signal_shape=(16, 24),
                         bases=[[2, 2, 4], [2, 3, 4]], n_layers=3, hidden_dim=32)
    target = torch.rand(16, 24, 3)
    params = list(model.parameters())
    g1 = torch.autograd.grad(((model.render() - target) ** 2).mean(), params)
    g2 = torch.autograd.grad(((model(make_grid((16, 24))) - target) ** 2).mean(), params)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, atol=1e-4 * float(b.abs().max()), rtol=1e-3)


def test_per_sample_forward_handles_any_batch_shape():
    model = create_model("asmr", signal_shape=(16, 16), bases=[4, 4], n_layers=2, hidden_dim=8)
    grid = make_grid((16, 16))
    with torch.no_grad():
        full = model(grid)
        picked = model(grid[3:7, 5:9])
    torch.testing.assert_close(picked, full[3:7, 5:9])


def test_default_bases_follow_the_paper():
    assert factorize_axis(512, 4) == [4, 4, 4, 8]
    assert factorize_axis(768, 4) == [4, 4, 6, 8]
    assert factorize_axis(512, 3) == [8, 8, 8]
    assert default_bases((512, 768), 4) == [[4, 4, 4, 8], [4, 4, 6, 8]]
    assert factorize_axis(6, 4) == [1, 1, 2, 3]


def test_bases_chosen_when_missing_are_printed(capsys):
    model = create_model("asmr", signal_shape=(512, 768), out_features=3, n_layers=4)
    assert model.bases == [[4, 4, 4, 8], [4, 4, 6, 8]]
    assert "[[4, 4, 4, 8], [4, 4, 6, 8]]" in capsys.readouterr().err


def test_bases_product_mismatch_names_axis_product_size_and_fix():
    with pytest.raises(ConfigError) as e:
        create_model("asmr", signal_shape=(512, 768), out_features=3, n_layers=4,
                     bases=[[4, 4, 4, 8], [4, 4, 4, 8]])
    msg = str(e.value)
    assert "axis 1" in msg and "512" in msg and "768" in msg and "[4, 4, 6, 8]" in msg


@pytest.mark.parametrize("shape,bases", [
    ((24, 30), [[2, 3, 4], [5, 3, 2]]),
    ((135, 240), [[3, 3, 3, 5, 1, 1], [3, 4, 4, 5, 1, 1]]),  # Table 5's depth, its bases cut
    ((8, 12, 10), [[2, 2, 2], [3, 2, 2], [5, 1, 2]]),
    ((64,), [[4, 4, 4]]),
])
@pytest.mark.parametrize("chunk,rows", [(None, 4096), (7, 1), (50, 3), (200, 50)])
def test_no_grad_render_matches_autograd_render(shape, bases, chunk, rows):
    torch.manual_seed(0)
    model = create_model("asmr", in_features=len(shape), out_features=3, signal_shape=shape,
                         bases=bases, n_layers=len(bases[0]), hidden_dim=32)
    with torch.no_grad():
        torch.testing.assert_close(render_no_grad(model, chunk, rows),
                                   model.render_autograd(chunk), atol=1e-4, rtol=0)


@pytest.mark.parametrize("kwargs,needle", [
    (dict(signal_shape=(512, 512), bases=[[8, 8, 8]], n_layers=3), "axes"),
    (dict(signal_shape=(512, 512), bases=[[8, 8, 8], [8, 64]], n_layers=3), "levels"),
    (dict(signal_shape=(512, 512), bases=[8, 8, 8], n_layers=4), "n_layers"),
    (dict(signal_shape=(0, 512), bases=[[8, 8, 8], [8, 8, 8]], n_layers=3),
     r"signal_shape must be an integer >= 1, got 0"),
    (dict(signal_shape=(-4, 512), n_layers=3), r"signal_shape must be an integer >= 1, got -4"),
    (dict(signal_shape=(512, 512), bases=[[8, 8, 8], [8, -8, -8]], n_layers=3), "positive"),
    (dict(signal_shape=(512, 512), n_layers=1), "n_layers"),
    (dict(signal_shape=(512, 512), n_layers=3, hidden_dim=0), "hidden_dim"),
    (dict(signal_shape=(512, 512), n_layers=3, modulator="cubic"), "modulator"),
])
def test_bad_configuration_is_a_clear_value_error(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        create_model("asmr", **kwargs)


def test_large_prime_suggests_a_crop():
    with pytest.raises(ConfigError, match=r"prime factor 3391.*crop .*to 3375 on axis 0"):
        create_model("asmr", signal_shape=(3391, 512), n_layers=4)
