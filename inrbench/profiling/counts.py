"""MACs per sample under each counting convention a paper table may follow."""

from __future__ import annotations

import inspect


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def macs_counts(model) -> dict[str, float | None]:
    """Our MACs per sample under each count; None where the model cannot give that count."""

    counts: dict[str, float | None] = {"model": float(model.macs_per_sample())}
    fn = model.macs_per_sample
    for name, bias in (("weights", False), ("weights+biases", True)):
        counts[name] = float(fn(include_bias=bias)) if _accepts(fn, "include_bias") else None
    return counts
