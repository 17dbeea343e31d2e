"""The cost rule (inrbench-flops-1): golden counts worked out by hand from each model's code,
and every registered model counted with no op left unclassified."""

import math

import pytest
import torch
import torch.nn.functional as F
from test_models import SPEC, tiny_model
from torch import nn

from inrbench.models import list_models
from inrbench.models.asmr import ASMR
from inrbench.models.base import CoordinateModule
from inrbench.models.ngp import InstantNGP
from inrbench.models.siren import SIREN
from inrbench.profiling import COST_RULE, flops_per_sample, measured_macs, profile
from inrbench.profiling.flops import CLASSES


def per_sample(counts: dict, n: int) -> dict:
    return {c: counts.get(c, 0) / n for c in CLASSES}


def assert_counts(model, shape, expected: dict):
    got = flops_per_sample(model, shape)
    assert got["unclassified"] == [] and got["rule"] == COST_RULE == "inrbench-flops-1"
    want = per_sample(expected, math.prod(shape))
    assert got["by_class"] == pytest.approx(want, rel=1e-12, abs=1e-12)
    assert got["flops"] == pytest.approx(sum(want.values()), rel=1e-12)


def test_siren_golden():
    """Per sine layer: 2 in out (matmul), out bias adds, out multiplies by omega, out sines;
    the last layer: a matmul and its bias. The grid (linspace, stack) costs nothing."""
    d, k, o, shape = 2, 8, 3, (4, 5)
    n = math.prod(shape)
    dims = [d, k, k, o]  # three linear layers
    model = SIREN(d, o, hidden_dim=k, n_layers=3)
    expected = {
        "matmul": n * sum(2 * a * b for a, b in zip(dims[:-1], dims[1:])),
        "elementwise": n * (k + k + o) + n * (k + k),  # bias adds, omega multiplies
        "transcendental": n * (k + k),  # sines
    }
    assert_counts(model, shape, expected)


def test_hash_grid_golden():
    """Instant-NGP (torch) with a 16-entry table: level 0 (2 cells per axis, 9 vertices) is
    dense, level 1 (8 cells, 81 vertices) is hashed. Counted line by line of ``HashGrid``."""
    d, lv, f, k, o, shape = 2, 2, 2, 8, 1, (4, 5)
    n, c = math.prod(shape), 2 ** d  # samples, corners per cell
    nd, nh = 1, 1  # dense and hashed levels
    model = InstantNGP(d, o, n_levels=lv, n_features_per_level=f, log2_hashmap_size=4,
                       base_resolution=2, finest_resolution=8, n_layers=2, hidden_dim=k)
    assert model.encoding.n_dense == nd and model.resolutions == [[2, 2], [8, 8]]
    elementwise = (
        3 * n * d  # (coords + 1) * 0.5, clamp
        + n * lv * d  # pos = x * res
        + 2 * lv * d  # (res - 1).clamp(min=0), on the (L, d) buffer
        + 3 * n * lv * d  # floor, minimum, frac = pos - cell
        + sum(n * lv * (1 + 2 * 2 ** j) for j in range(d))  # 1 - f, weight * (1 - f), weight * f
        + 2 * n * nd * d + n * nd * c  # cell * strides, its sum, + corner steps
        + sum(n * nh * (2 + 2 * 2 ** j) for j in range(d))  # v * pi, + pi, two xors
        + n * nh * c  # & (T - 1)
        + n * lv * c  # + level offsets
        + 2 * n * lv * c * f  # features * weights, sum over corners
        + n * (k + o) + n * k  # MLP: bias adds, ReLU
    )
    expected = {"matmul": n * 2 * (lv * f * k + k * o), "elementwise": elementwise,
                "memory": n * lv * c * f}  # the table gather: 2^d corners of F features a level
    assert_counts(model, shape, expected)


def test_asmr_golden():
    """ASMR's shared render (``render_no_grad``) of an 8x8 signal, bases 2,2,2 per axis,
    3 layers of width 4: level 0 has 2x2 cells, each level adds 2x2 points (Q = 4)."""
    d, k, o, shape = 2, 4, 1, (8, 8)
    model = ASMR(d, o, signal_shape=shape, bases=[[2, 2, 2], [2, 2, 2]], hidden_dim=k,
                 n_layers=3)
    q, cells0, rows = 4, 4, 16  # level grid points, level-0 cells, level-1 cells
    k_in = [d, k]
    prepared = {  # per hidden layer: modulator mm, x omega0, + bias, x omega, omega W, cos, sin
        "matmul": sum(2 * q * d * k for _ in k_in),
        "elementwise": sum(3 * q * k + k * ki for ki in k_in) + 2 * q * o * k,  # + W cos, W sin
        "transcendental": 2 * 2 * q * k,
    }
    first = {  # layer 0 on the level-0 cells: mm, sin, cos, broadcast multiply, addcmul
        "matmul": 2 * cells0 * d * k, "transcendental": 2 * cells0 * k,
        "elementwise": cells0 * q * k + 2 * cells0 * q * k,
    }
    last = {  # the fused last layers: mm, sin, cos, two addmm into q outputs per row (+ bias)
        "matmul": 2 * rows * k * k + 2 * (2 * rows * k * q * o), "transcendental": 2 * rows * k,
        "elementwise": 2 * rows * q * o,
    }
    expected = {c: sum(p.get(c, 0) for p in (prepared, first, last)) for c in CLASSES}
    assert_counts(model, shape, expected)


class DenseGrid(nn.Module):
    """A plain-PyTorch plugin: a C-channel feature grid read by bilinear grid_sample."""

    out_features = 3

    def __init__(self):
        super().__init__()
        self.grid = nn.Parameter(torch.zeros(1, 3, 6, 7))

    def forward(self, coords):
        out = F.grid_sample(self.grid, coords.flip(-1).view(1, 1, -1, 2), align_corners=True)
        return out.view(3, -1).t()


def test_interpolation_is_counted_for_a_plugin():
    """Bilinear: 4 corners x (a multiply and an add) per output element; the rule is the same
    for a plugin as for a built-in, and such a model is not 'free'."""
    model, shape = CoordinateModule(DenseGrid()), (4, 5)
    got = flops_per_sample(model, shape)
    assert got["by_class"]["interpolation"] == 2 * 4 * 3
    assert got["flops"] == 2 * 4 * 3 and got["unclassified"] == []
    assert profile(model, shape)["macs_measured"] == 0  # what the matmul count saw


class Bessel(nn.Module):
    out_features = 2

    def forward(self, coords):
        return torch.special.bessel_j0(coords)


def test_an_unknown_op_counts_as_elementwise_and_is_named():
    got = flops_per_sample(CoordinateModule(Bessel()), (3, 4))
    assert got["unclassified"] == ["aten.special_bessel_j0.default"]
    assert got["by_class"]["elementwise"] == 2 and got["flops"] == 2


@pytest.mark.parametrize("name", list_models())
def test_every_model_is_costed_by_the_rule(name):
    model, _ = tiny_model(name)
    stats = profile(model, SPEC.shape)
    assert stats["cost_rule"] == COST_RULE and stats["flops_unclassified"] == []
    assert math.isfinite(stats["flops"]) and stats["flops"] > 0
    assert stats["flops"] == pytest.approx(sum(stats["flops_by_class"].values()))
    # the matmul class is what torch's FLOP counter sees (the measured MACs, counted apart)
    assert stats["flops_by_class"]["matmul"] == pytest.approx(2 * measured_macs(model, SPEC.shape))
    assert stats["macs_measured"] == pytest.approx(measured_macs(model, SPEC.shape))
    # the render's own elementwise work is seen: every model adds, scales or activates
    assert stats["flops"] > 2 * stats["macs_measured"]


def test_counting_a_huge_signal_costs_nothing():
    """Meta tensors: an 8192x8192 SIREN render is counted without allocating it."""
    got = flops_per_sample(SIREN(2, 1, hidden_dim=8, n_layers=3), (8192, 8192))
    assert got["by_class"]["transcendental"] == 16
