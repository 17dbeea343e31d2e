"""Partition bases of ASMR's multi-resolution coordinate decomposition (ASMR paper sec. 3.1).

An axis of size N is split into L levels with bases B_0..B_{L-1}, prod_k B_k = N. Level
coordinate of index x at level l: ``x_l = floor(x / G_l) mod B_l`` with ``G_l = N / C_l`` and
``C_l = B_0 ... B_l``. Appendix K: larger bases late (small last grid) keep MACs lowest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from inrbench.errors import ConfigError

#: prime factors above this make a base so large the decomposition stops being hierarchical.
MAX_PRIME = 64


def prime_factors(n: int) -> list[int]:
    out, p = [], 2
    while p * p <= n:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    if n > 1:
        out.append(n)
    return out


def largest_smooth_below(n: int, max_prime: int = 7) -> int:
    """The largest m <= n whose prime factors are all <= ``max_prime`` (a crop suggestion)."""
    m = n
    while m > 1 and max(prime_factors(m)) > max_prime:
        m -= 1
    return m


def factorize_axis(size: int, levels: int, axis: int = 0) -> list[int]:
    """Split ``size`` into ``levels`` bases, as balanced as possible, sorted ascending.

    Prime factors go, largest first, to the level with the smallest product so far
    (longest-processing-time rule); sorting puts the large bases last (appendix K).
    512 in 4 levels gives [4, 4, 4, 8]; 768 gives [4, 4, 6, 8], the paper's Kodak bases.
    """
    if size < 1:
        raise ConfigError(f"axis {axis} has size {size}; sizes must be positive")
    primes = sorted(prime_factors(size), reverse=True)
    if primes and primes[0] > MAX_PRIME:
        crop = largest_smooth_below(size)
        raise ConfigError(
            f"axis {axis} has size {size} with the large prime factor {primes[0]}, so it cannot "
            f"be split into small bases; crop the signal (e.g. to {crop} on axis {axis}, "
            f"data.crop=...) or give model.bases explicitly"
        )
    bases = [1] * levels
    for p in primes:
        i = min(range(levels), key=lambda j: bases[j])
        bases[i] *= p
    return sorted(bases)


def default_bases(shape: Sequence[int], levels: int) -> list[list[int]]:
    return [factorize_axis(n, levels, axis) for axis, n in enumerate(shape)]


def validate_bases(bases, shape: Sequence[int], n_layers: int | None = None) -> list[list[int]]:
    """Check ``bases`` against the signal ``shape``; return them as a list of int lists.

    A flat list (e.g. ``[8, 8, 8]``) is used for every axis. Errors name the axis, the
    product, the size and a valid factorisation of the same depth.
    """
    shape = [int(n) for n in shape]
    for axis, n in enumerate(shape):
        if n < 1:
            raise ConfigError(f"signal axis {axis} has size {n}; sizes must be positive")
    if not isinstance(bases, (list, tuple)) or len(bases) == 0:
        raise ConfigError(f"model.bases must be a list per axis, got {bases!r}")
    if all(isinstance(b, int) for b in bases):
        bases = [list(bases) for _ in shape]
    if len(bases) != len(shape):
        raise ConfigError(
            f"model.bases has {len(bases)} axes but the signal {tuple(shape)} has {len(shape)}; "
            f"give one list of bases per axis"
        )
    bases = [[int(b) for b in axis_bases] for axis_bases in bases]
    depths = {len(b) for b in bases}
    if len(depths) != 1:
        raise ConfigError(
            f"every axis needs the same number of levels, got {[len(b) for b in bases]} "
            f"(pad with bases of 1)"
        )
    depth = depths.pop()
    if n_layers is not None and depth != n_layers:
        raise ConfigError(
            f"model.bases has {depth} levels but model.n_layers is {n_layers}; ASMR has one "
            f"level per linear layer"
        )
    for axis, (axis_bases, n) in enumerate(zip(bases, shape)):
        if any(b < 1 for b in axis_bases):
            raise ConfigError(f"model.bases on axis {axis} must be positive, got {axis_bases}")
        prod = math.prod(axis_bases)
        if prod != n:
            try:
                hint = f"; a valid choice with {depth} levels is {factorize_axis(n, depth, axis)}"
            except ConfigError as e:
                hint = f"; {e}"
            raise ConfigError(
                f"model.bases on axis {axis} multiply to {prod} but the signal has size {n} "
                f"on that axis{hint}"
            )
    return bases
