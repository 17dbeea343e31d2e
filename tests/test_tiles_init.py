"""The tiled layers' weight init (KiloNeRF, LoE): ``init=official`` is the ASMR repository's
``AdaptiveLinearWithChannel`` init, ``kaiming_uniform_`` on a (tiles, in, out) tensor, whose
fan-in is in*out, so U(-sqrt(6 / (in*out)), sqrt(6 / (in*out))); ``init=fan_in`` uses in."""

import math

import pytest
import torch

from inrbench.errors import ConfigError
from inrbench.models import create_model
from inrbench.models.tiles import TiledLinear


def official_bound(n_in, n_out):
    # the official code: torch.nn.init.kaiming_uniform_(weights) with a=0 (gain sqrt(2)),
    # mode fan_in; fan-in of a (T, in, out) tensor is in * out
    return math.sqrt(2.0) * math.sqrt(3.0 / (n_in * n_out))


@pytest.mark.parametrize("n_in,n_out", [(42, 16), (16, 16), (16, 1), (34, 24)])
def test_official_init_scale_matches_the_official_formula(n_in, n_out):
    torch.manual_seed(0)
    layer = TiledLinear(256, n_in, n_out, bias="tile", negative_slope=0.2, init="official")
    w = layer.weight.detach()
    b = official_bound(n_in, n_out)
    assert TiledLinear.bound(n_in, n_out, "official") == pytest.approx(b)
    assert w.abs().max() <= b
    assert w.abs().max() > 0.97 * b  # fills the interval, not a smaller one
    # a uniform on (-b, b) has standard deviation b / sqrt(3)
    assert w.std().item() == pytest.approx(b / math.sqrt(3.0), rel=0.03)
    assert torch.count_nonzero(layer.bias) == 0  # biases zero, as in the official code


def test_official_init_is_bitwise_the_official_call():
    torch.manual_seed(3)
    layer = TiledLinear(16, 8, 4, init="official")
    torch.manual_seed(3)
    ref = torch.nn.init.kaiming_uniform_(torch.zeros(16, 8, 4))
    assert torch.equal(layer.weight.detach(), ref)


def test_fan_in_init_is_per_tile_kaiming_and_larger_by_sqrt_out():
    torch.manual_seed(0)
    n_in, n_out, slope = 42, 16, 0.2
    w = TiledLinear(256, n_in, n_out, negative_slope=slope, init="fan_in").weight.detach()
    b = math.sqrt(2.0 / (1 + slope ** 2)) * math.sqrt(3.0 / n_in)
    assert w.abs().max() <= b and w.abs().max() > 0.97 * b
    # for the ReLU gain the two inits differ by exactly sqrt(out): 4x for 16 units
    ratio = TiledLinear.bound(n_in, n_out, "fan_in") / TiledLinear.bound(n_in, n_out, "official")
    assert ratio == pytest.approx(math.sqrt(n_out))


@pytest.mark.parametrize("name,kw", [("kilonerf", dict(grid=[4, 4], hidden_dim=16, n_freqs=3)),
                                      ("loe", dict(tiles=[[2, 2], [2, 2]], hidden_dim=16,
                                                   n_freqs=3))])
def test_models_pass_the_init_to_every_tiled_layer(name, kw):
    for init in ("official", "fan_in"):
        torch.manual_seed(0)
        model = create_model(name, in_features=2, out_features=1, signal_shape=[16, 16],
                             init=init, **kw)
        for layer in model.layers:
            assert layer.init == init
            bound = TiledLinear.bound(layer.in_features, layer.out_features, init, 0.2)
            assert layer.weight.abs().max() <= bound


def test_default_is_official_and_unknown_init_is_a_config_error():
    model = create_model("kilonerf", in_features=2, out_features=1, signal_shape=[16, 16],
                         grid=[2, 2], hidden_dim=8, n_freqs=2)
    assert model.init == "official"
    with pytest.raises(ConfigError, match="init"):
        create_model("loe", in_features=2, out_features=1, signal_shape=[16, 16],
                     tiles=[[2, 2], [2, 2]], hidden_dim=8, n_freqs=2, init="xavier")
