"""Argument checks shared by the baseline models: each raises a ConfigError naming the key."""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence

import torch

from inrbench.errors import ConfigError


def check_int(key: str, value, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or int(value) < minimum:
        raise ConfigError(f"model.{key} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_number(key: str, value, positive: bool = True) -> float:
    """``value`` as a float (> 0 when ``positive``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (positive and value <= 0):
        kind = "a positive number" if positive else "a finite number"
        raise ConfigError(f"model.{key} must be {kind}, got {value!r}")
    return float(value)


def check_choice(key: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"model.{key} must be one of {', '.join(map(repr, choices))}, "
                          f"got {value!r}")
    return value


def per_axis(key: str, value, dims: int, integer: bool = True) -> list:
    """A scalar (used on every axis) or one positive value per axis, as a list of ``dims``."""
    values = list(value) if isinstance(value, (list, tuple)) else [value] * dims
    if len(values) != dims:
        raise ConfigError(f"model.{key} has {len(values)} entries but the signal has {dims} "
                          f"axes; give one value per axis or a single value for all axes")
    check = check_int if integer else check_number
    return [check(key, v) for v in values]


def signal_shape_of(signal_shape, in_features: int) -> list[int]:
    """``signal_shape`` checked against ``in_features`` (one size per coordinate axis)."""
    if not isinstance(signal_shape, (list, tuple)) or len(signal_shape) == 0:
        raise ConfigError(f"model.signal_shape must be a list of axis sizes, got {signal_shape!r}")
    shape = [check_int("signal_shape", n) for n in signal_shape]
    if len(shape) != in_features:
        raise ConfigError(f"the signal {tuple(shape)} has {len(shape)} axes but "
                          f"model.in_features={in_features}; they must agree")
    return shape


def check_positive(**values) -> None:
    """Every keyword argument a positive finite number (:func:`check_number`)."""
    for key, v in values.items():
        check_number(key, v)


def check_sizes(in_features, out_features, hidden_dim, n_layers) -> None:
    """The integer arguments of SIREN-like networks (n_layers counts linear layers)."""
    for key, v in (("in_features", in_features), ("out_features", out_features),
                   ("hidden_dim", hidden_dim)):
        check_int(key, v)
    if check_int("n_layers", n_layers, minimum=1) < 2:
        raise ConfigError(f"model.n_layers must be >= 2 (one hidden layer), got {n_layers}")


def cuda_extension(load: Callable, asked: str, package: str, fallback: str,
                   limit: str | None = None):
    """What ``load()`` returns (an optional CUDA package's objects) when ``package`` imports, a
    CUDA device exists and ``limit`` (a reason this model can't use it) is None; else None,
    after one note on stderr naming the reason and the ``fallback`` that runs instead."""
    why, loaded = None, None
    try:
        loaded = load()
    except Exception as e:  # ImportError, or a CUDA error raised while importing
        why = f"{package} is not importable ({type(e).__name__}: {e})"
    if why is None and not torch.cuda.is_available():
        why = "no CUDA device"
    why = why or limit
    if why is not None:
        print(f"{asked} asked but {why}; using {fallback}", file=sys.stderr)
        return None
    return loaded
