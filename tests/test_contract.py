"""The model contract check: every registered model passes it on small 1-D, 2-D and 3-D
signals, and a model that breaks a promise (render != forward, a dead parameter) fails the
check that promise belongs to, naming what is wrong."""

import argparse
import json

import pytest
import torch
from torch import nn

from inrbench.cli.check import add_command, cmd_check_model
from inrbench.contract import CHECKS, Check, check_model, format_checks
from inrbench.errors import ConfigError
from inrbench.models.base import INR, CoordinateModule, make_grid
from inrbench.models.registry import MODELS, list_models, register_model

SHAPES = ((64,), (16, 16), (6, 6, 6))
CHANNELS = (1, 3, 1)
# ASMR needs a signal with a base > 1 at every level: a base of 1 makes that level's coordinate
# constant, so its modulator's weight never gets a gradient (the check reports it). Sizes are
# cut down so that the file runs in about a minute on one thread.
ASMR_SHAPES = ((64,), (16, 16), (16, 16, 16))
CASES = {
    "asmr": ({"hidden_dim": 32}, ASMR_SHAPES),
    "asmr_nonlinear": ({"hidden_dim": 32}, ASMR_SHAPES),
    # six levels need 64 samples per axis: 1-D and 2-D only
    "asmr_big": ({"hidden_dim": 32}, ((64,), (64, 64))),
    "anr": ({"hidden_dim": 64, "token_len": 32, "n_heads": 2, "head_dim": 16}, SHAPES),
    "transinr": ({"hidden_dim": 64, "n_groups": 16}, SHAPES),
    "wire": ({"hidden_dim": 64}, SHAPES),
    # fewer Gaussians than pixels: 70,000 on 16x16 would clamp every pixel at 1 (no gradient)
    "gaussianimage": ({"num_points": 48}, SHAPES),
}


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_keeps_the_contract(name):
    overrides, shapes = CASES.get(name, ({}, SHAPES))
    checks = check_model(name, overrides, shapes=shapes, channels=CHANNELS[: len(shapes)],
                         fit_steps=20)
    assert {c.name for c in checks} == set(CHECKS)
    assert len(checks) == len(CHECKS) * len(shapes)
    failed = [c for c in checks if c.status == "fail"]
    assert not failed, format_checks(checks)
    for c in checks:
        assert c.reason, c  # every verdict says why
    built = [c.dim for c in checks if c.name == "construct" and c.status == "pass"]
    assert built, format_checks(checks)  # at least one dimensionality builds
    for c in checks:
        if c.name == "construct" and c.status == "skip":  # refused with its ConfigError
            assert "model." in c.reason or "signal" in c.reason, c


@pytest.fixture
def registered():
    added = []

    def add(cls, name):
        register_model(cls, name=name)
        added.append(name)
        return name

    yield add
    for name in added:
        MODELS._entries.pop(name)


class _Toy(INR):
    """A small sine MLP, 2 layers."""

    def __init__(self, in_features: int = 2, out_features: int = 1, hidden_dim: int = 16):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.a = nn.Linear(in_features, hidden_dim)
        self.b = nn.Linear(hidden_dim, out_features)

    def forward(self, coords):
        return self.b(torch.sin(3 * self.a(coords)))


class _RenderOff(_Toy):
    def render(self, shape, chunk=None):
        return super().render(shape, chunk) + 0.1


class _DeadParameter(_Toy):
    def __init__(self, in_features: int = 2, out_features: int = 1, hidden_dim: int = 16):
        super().__init__(in_features, out_features, hidden_dim)
        self.unused = nn.Parameter(torch.ones(3))


class _Plain(nn.Module):
    """No INR, no render, no MACs convention: just ``forward(coords)``."""

    def __init__(self, in_features: int = 2, out_features: int = 1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_features, 16), nn.Tanh(),
                                 nn.Linear(16, out_features))

    def forward(self, coords):
        return self.net(coords)


def _by(checks, name):
    return [c for c in checks if c.name == name]


def test_a_render_that_disagrees_with_forward_fails_the_render_check(registered):
    name = registered(_RenderOff, "_contract_render_off")
    checks = check_model(name, fit_steps=5)
    render = _by(checks, "render")
    assert [c.status for c in render] == ["fail"] * 3
    assert "max |render - forward on make_grid| = 0.1" in render[0].reason
    assert "tolerance" in render[0].reason
    # the others still pass: the failure is pinned on the broken promise
    assert all(c.status != "fail" for c in checks if c.name != "render")
    assert "FAIL render (1-D): max |render - forward on make_grid| = 0.1" in format_checks(checks)


def test_a_dead_parameter_fails_the_gradient_check_by_name(registered):
    name = registered(_DeadParameter, "_contract_dead")
    checks = check_model(name, fit_steps=5)
    grads = _by(checks, "gradients")
    assert [c.status for c in grads] == ["fail"] * 3
    assert grads[0].reason == "no gradient reaches unused"
    assert all(c.status == "pass" for c in _by(checks, "render"))


def test_a_plain_module_is_checked_through_the_adapter(registered):
    name = registered(_Plain, "_contract_plain")
    checks = check_model(name, fit_steps=10)
    assert not [c for c in checks if c.status == "fail"], format_checks(checks)
    assert all(c.reason == "measured only" for c in _by(checks, "macs"))
    assert all(c.status == "pass" for c in _by(checks, "macs_measured"))
    assert all(c.reason.startswith("no render: rendered by forward on the grid")
               for c in _by(checks, "render"))
    assert all("no block path" in c.reason for c in _by(checks, "blocks"))


def test_coordinate_module_renders_the_forward_on_the_grid():
    torch.manual_seed(0)
    module = _Plain(2, 3)
    wrapped = CoordinateModule(module, out_features=3)
    assert wrapped.out_features == 3
    assert CoordinateModule(nn.Linear(2, 4)).out_features == 4  # the module's own width
    want = module(make_grid((5, 7)).reshape(-1, 2)).reshape(5, 7, 3)
    torch.testing.assert_close(wrapped.render((5, 7)), want)
    torch.testing.assert_close(wrapped.render((5, 7), chunk=8), want)
    with pytest.raises(NotImplementedError):
        wrapped.macs_per_sample()
    # no out_features anywhere: the render keeps the forward's width
    bare = CoordinateModule(_Plain(1, 2))
    assert not hasattr(bare, "out_features") and bare.render((4,)).shape == (4, 2)


def test_bad_names_keys_and_values_raise_the_config_error():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        check_model("nope")
    with pytest.raises(ConfigError, match="unknown key.*model.widht"):
        check_model("siren", {"widht": 3})
    with pytest.raises(ConfigError, match="model.hidden_dim must be an integer"):
        check_model("siren", {"hidden_dim": "abc"})


def test_format_checks_is_a_table_with_reasons_and_a_count():
    checks = [Check("forward", 1, "pass", "ok"), Check("forward", 2, "fail", "bad shape"),
              Check("blocks", 1, "skip", "no block path"), Check("blocks", 2, "pass", "ok")]
    text = format_checks(checks).splitlines()
    assert text[0].split() == ["check", "1-D", "2-D"]
    assert text[1].split() == ["forward", "pass", "FAIL"]
    assert text[2].split() == ["blocks", "skip", "pass"]
    assert "FAIL forward (2-D): bad shape" in text
    assert "skip blocks (1-D): no block path" in text
    assert text[-1] == "2 passed, 1 failed, 1 skipped"


def _cli(argv):
    p = argparse.ArgumentParser()
    add_command(p.add_subparsers(dest="command"))
    return cmd_check_model(p.parse_args(argv))


def test_the_command_exits_0_1_and_raises_for_bad_input(registered, capsys):
    assert _cli(["check-model", "siren", "hidden_dim=16", "model.n_layers=2",
                 "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("siren:") and "0 failed" in out
    bad = registered(_RenderOff, "_contract_cli_off")
    assert _cli(["check-model", bad, "--json", "--steps", "2"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert {r["status"] for r in rows if r["name"] == "render"} == {"fail"}
    with pytest.raises(ConfigError, match="unknown model"):
        _cli(["check-model", "nope"])
    with pytest.raises(ConfigError, match="constructor keys only"):
        _cli(["check-model", "siren", "task.lr=1"])


class _Crashes(_Toy):
    def __init__(self, in_features: int = 2, out_features: int = 1):
        if in_features == 1:
            raise ConfigError("model.in_features=1: this toy needs 2 or more axes")
        if in_features == 3:
            raise RuntimeError("boom")
        super().__init__(in_features, out_features)


class _NoMatmul(INR):
    def __init__(self, in_features: int = 2, out_features: int = 1):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.scale = nn.Parameter(torch.ones(out_features))

    def forward(self, coords):
        return torch.sin(coords.sum(-1, keepdim=True) * self.scale)


def test_refused_dimensions_skip_and_crashes_fail_with_their_type(registered):
    checks = check_model(registered(_Crashes, "_contract_crashes"), fit_steps=3)
    construct = {c.dim: c for c in _by(checks, "construct")}
    assert construct[1].status == "skip" and "needs 2 or more axes" in construct[1].reason
    assert construct[2].status == "pass"
    assert (construct[3].status, construct[3].reason) == ("fail", "RuntimeError: boom")
    assert all(c.status == "skip" for c in checks
               if c.dim != 2 and c.name not in ("construct", "yaml_keys"))


class _NoWork(INR):
    """A constant: its render is a view of one parameter, no arithmetic at all."""

    def __init__(self, in_features: int = 2, out_features: int = 1):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.value = nn.Parameter(torch.zeros(out_features))

    def forward(self, coords):
        return self.value.expand(*coords.shape[:-1], self.out_features).clone()


def test_a_model_without_matrix_products_is_costed_by_the_rule(registered):
    checks = check_model(registered(_NoMatmul, "_contract_nomatmul"), fit_steps=3)
    assert all(c.status == "pass" and "no matrix product" in c.reason and "FLOPs" in c.reason
               for c in _by(checks, "macs_measured"))


def test_a_model_without_arithmetic_fails_the_cost_check(registered):
    checks = check_model(registered(_NoWork, "_contract_nowork"), fit_steps=3)
    assert _by(checks, "macs_measured")
    assert all(c.status == "fail" and "no arithmetic" in c.reason
               for c in _by(checks, "macs_measured"))
