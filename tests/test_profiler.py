"""The ASMR paper's params and MACs, to the digit (Tables 2 and 3)."""

import pytest
import torch

from inrbench.models import create_model
from inrbench.profiling import profile

CAMERAMAN, KODAK = ((512, 512), 1), ((512, 768), 3)

ROWS = [  # (model, kwargs, data, params, MACs/sample as printed in the issue / paper)
    ("siren", dict(n_layers=3, hidden_dim=256), CAMERAMAN, 66_817, 66_304),
    ("siren", dict(n_layers=4, hidden_dim=256), CAMERAMAN, 132_609, 131_840),
    ("siren", dict(n_layers=4, hidden_dim=256), KODAK, 133_123, 132_352),
    ("asmr", dict(n_layers=3, bases=[8, 8, 8]), CAMERAMAN, 67_841, 1_289.5),
    ("asmr", dict(n_layers=4, bases=[4, 4, 4, 8]), CAMERAMAN, 134_145, 1_353.8),
    ("asmr", dict(n_layers=4, bases=[[4, 4, 4, 8], [4, 4, 6, 8]]), KODAK, 134_659, 1_846.2),
]


@pytest.mark.parametrize("name,kwargs,data,params,macs", ROWS)
def test_paper_rows(name, kwargs, data, params, macs):
    shape, channels = data
    if name == "asmr":
        kwargs = dict(kwargs, signal_shape=shape)
    model = create_model(name, in_features=2, out_features=channels, **kwargs)
    stats = profile(model, shape)
    assert stats["params"] == params
    assert round(stats["macs"], 1) == macs
    # every multiply-accumulate that really runs is counted: at least the paper's weight MACs
    # for SIREN, and within a small factor of the paper's figure for ASMR's shared render
    if name == "siren":
        assert stats["macs_measured"] == pytest.approx(macs)
    else:
        assert macs <= stats["macs_measured"] < 2 * macs


def test_siren_table7_convention_counts_biases():
    model = create_model("siren", n_layers=3, hidden_dim=256)
    assert round(model.macs_per_sample(include_bias=True) / 1000, 1) == 66.8


class _SlowRender(torch.nn.Module):
    """A model whose full-signal render takes ``seconds`` (stands for a 20 MP SIREN render)."""

    def __init__(self, seconds: float):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.seconds, self.calls = seconds, 0

    def render(self, shape, chunk=None):
        import time
        self.calls += 1
        time.sleep(self.seconds)
        return torch.zeros(*shape, 1)


def test_render_latency_stops_at_its_time_budget_after_one_timed_render():
    from inrbench.profiling import render_latency_ms

    slow = _SlowRender(0.05)
    stats = render_latency_ms(slow, (4, 4), repeats=10, warmup=3, budget_s=0.12)
    # warm-up stops at half the budget, then timed renders until the budget is spent
    assert 1 <= stats["latency_warmup"] < 3
    assert 1 <= stats["latency_repeats"] < 10
    assert slow.calls == stats["latency_warmup"] + stats["latency_repeats"]
    assert len(stats["latency_ms_all"]) == stats["latency_repeats"]
    assert stats["latency_ms"] >= 45.0
    fast = _SlowRender(0.0)
    stats = render_latency_ms(fast, (4, 4), repeats=5, warmup=2, budget_s=60.0)
    assert (stats["latency_warmup"], stats["latency_repeats"], fast.calls) == (2, 5, 7)
    once = _SlowRender(0.2)  # one render longer than the whole budget: still one timed render
    stats = render_latency_ms(once, (4, 4), repeats=10, warmup=3, budget_s=0.1)
    assert stats["latency_repeats"] == 1 and stats["latency_warmup"] == 1


def test_latency_budget_scales_with_the_fit_within_the_configured_budget():
    from inrbench.profiling import latency_budget
    from inrbench.profiling.latency import LATENCY_FLOOR_S, LATENCY_SHARE

    assert latency_budget(60.0, None) == 60.0          # no fit time known: the setting
    assert latency_budget(60.0, 3600.0) == 60.0        # a long run: the setting caps it
    assert latency_budget(60.0, 40.0) == LATENCY_SHARE * 40.0  # a short run: its quarter
    assert latency_budget(60.0, 1.0) == LATENCY_FLOOR_S        # a try of a second: the floor
    assert latency_budget(1.0, 1.0) == 1.0                     # the setting is never exceeded
    from inrbench.profiling import render_latency_ms
    stats = render_latency_ms(_SlowRender(0.0), (4, 4), budget_s=latency_budget(60.0, 12.0))
    assert stats["latency_budget_s"] == 3.0  # the record says what the renders were allowed
