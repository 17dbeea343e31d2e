"""Ladders at matched budgets (``inrbench bench --ladder params=1e4,3e4``): every model family
sized to each budget by its declared size knob.

A family declares its knob in the model contract: the class attribute ``size_knob`` names the
integer constructor argument that sets its size (``hidden_dim``, ``log2_hashmap_size``,
``num_points``...) and ``size_knob_range`` the values searched. For each budget the knob value
whose counted cost is nearest the budget (relative error) is chosen by bisection, the cost
assumed non-decreasing in the knob. Costs are counted, never trained: ``params`` on a model
built on meta tensors, ``macs`` (the paper's convention, else measured matmul MACs) and
``flops`` (:mod:`inrbench.profiling.flops`) by a render of meta tensors. A run records
``ladder: {axis, budget, knob, value, count, within}`` in its ``metrics.json``; ``within`` says
whether the count is within :data:`TOLERANCE` of the budget (else it is the nearest reachable).
A model without a knob is benched at its own size (``knob: null``) and the report says so.
"""

from __future__ import annotations

import copy
import math

import torch
from omegaconf import DictConfig, OmegaConf

from inrbench.build import build_datamodule, build_model
from inrbench.errors import ConfigError, InrbenchError
from inrbench.models.registry import MODELS
from inrbench.profiling.flops import flops_per_sample
from inrbench.profiling.macs import count_params, measured_macs, paper_macs

#: the cost axes a ladder can match
AXES = ("params", "macs", "flops")
#: a count this close to its budget (relative) is a match; otherwise the nearest is recorded
TOLERANCE = 0.05


def parse_ladder(text: str) -> tuple[str, list[float]]:
    """``params=1e4,3e4`` -> ``("params", [1e4, 3e4])``; a bad axis or value is one line."""
    axis, sep, rest = (text or "").partition("=")
    axis = axis.strip()
    try:
        budgets = [float(v) for v in rest.split(",") if v.strip()]
    except ValueError:
        budgets = []
    if not sep or axis not in AXES or not budgets or any(b <= 0 for b in budgets):
        raise ConfigError(f"--ladder takes AXIS=B1,B2,... with AXIS one of {', '.join(AXES)} "
                          f"and budgets > 0 (e.g. params=1e4,3e4,1e5), got {text!r}")
    return axis, sorted(dict.fromkeys(budgets))


def budget_label(axis: str, budget: float) -> str:
    """The folder name of one budget: ``params-1e+04`` style, short and sortable by eye."""
    return f"{axis}-{budget:.3g}".replace("+", "")


def size_knob(model: str, axis: str = "params") -> tuple[str | None, tuple[int, int]]:
    """The model's knob for a ladder on ``axis`` and its search range (``(None, ...)`` for a
    model without one). ``size_knob`` is a name, or a mapping from cost axis to name for a
    family whose size grows along different knobs on different axes (KiloNeRF: tiles add
    parameters at equal MACs, width adds both); ``size_knob_range`` is a pair, or a mapping
    from knob name to pair."""
    builder = MODELS.get(model)
    knob = getattr(builder, "size_knob", None)
    if isinstance(knob, dict):
        knob = knob.get(axis)
    span = getattr(builder, "size_knob_range", None) or (1, 4096)
    if isinstance(span, dict):
        span = span.get(knob) or (1, 4096)
    lo, hi = span
    return (str(knob) if knob else None), (int(lo), int(hi))


def _build(cfg: DictConfig, spec, knob: str | None, value: int | None):
    cfg = copy.deepcopy(cfg)
    if knob is not None:
        OmegaConf.update(cfg, f"model.{knob}", int(value), force_add=True)
    try:
        with torch.device("meta"):
            return build_model(cfg, spec)
    except (RuntimeError, NotImplementedError, TypeError, ValueError):  # an init that computes
        return build_model(cfg, spec)


def count(model, axis: str, shape) -> float:
    """The model's cost on ``axis`` for a signal of ``shape``, counted without training."""
    if axis == "params":
        return float(count_params(model))
    if axis == "macs":
        paper = paper_macs(model)
        return float(paper) if paper is not None else float(measured_macs(model, shape))
    return float(flops_per_sample(model, shape)["flops"])


def choose(cfg: DictConfig, spec, axis: str, budget: float) -> dict:
    """The knob value of ``cfg.model`` whose cost on ``axis`` is nearest ``budget``:
    ``{axis, budget, knob, value, count, within}``."""
    knob, (lo, hi) = size_knob(str(cfg.model.name), axis)
    if knob is None:
        got = count(_build(cfg, spec, None, None), axis, spec.shape)
        return {"axis": axis, "budget": budget, "knob": None, "value": None, "count": got,
                "within": abs(got - budget) <= TOLERANCE * budget}
    cache: dict[int, float] = {}

    def cost(v: int) -> float:
        if v not in cache:
            try:
                cache[v] = count(_build(cfg, spec, knob, v), axis, spec.shape)
            except InrbenchError as e:
                if v == lo:
                    raise ConfigError(f"{cfg.model.name} with model.{knob}={v}: {e}") from None
                # past what this signal allows (e.g. more tiles than samples): unreachable
                cache[v] = math.inf
        return cache[v]

    if cost(hi) <= cost(lo):  # the knob does not move this count: the model's own size
        got = count(_build(cfg, spec, None, None), axis, spec.shape)
        return {"axis": axis, "budget": budget, "knob": None, "value": None, "count": got,
                "within": abs(got - budget) <= TOLERANCE * budget,
                "note": f"model.{knob} does not change its {axis}"}
    a, b = lo, hi  # the smallest value whose cost reaches the budget, by bisection
    if cost(b) < budget:
        a = b
    else:
        while a < b:
            mid = (a + b) // 2
            a, b = (mid + 1, b) if cost(mid) < budget else (a, mid)
    best = min({max(lo, a - 1), a}, key=lambda v: abs(cost(v) - budget))
    got = cost(best)
    return {"axis": axis, "budget": budget, "knob": knob, "value": int(best), "count": got,
            "within": abs(got - budget) <= TOLERANCE * budget}


def signal_spec(cfg: DictConfig):
    """The data's spec (shape, channels) a config trains on, for sizing its model."""
    return build_datamodule(cfg).spec()


__all__ = ["AXES", "TOLERANCE", "budget_label", "choose", "count", "parse_ladder",
           "signal_spec", "size_knob"]
