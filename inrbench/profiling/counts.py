"""MACs per sample under each counting convention a paper table may follow."""

from __future__ import annotations

import inspect

from inrbench.profiling.macs import paper_macs


def _accepts(fn, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def macs_counts(model) -> dict[str, float | None]:
    """Our MACs per sample under each count; None where the model cannot give that count."""

    counts: dict[str, float | None] = {"model": paper_macs(model)}
    if counts["model"] is None:  # measured only: no convention to count in
        return {"model": None, "weights": None, "weights+biases": None}
    fn = model.macs_per_sample
    for name, bias in (("weights", False), ("weights+biases", True)):
        counts[name] = float(fn(include_bias=bias)) if _accepts(fn, "include_bias") else None
    return counts
