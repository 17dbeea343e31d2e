"""Coordinate networks, one file per family; importing this package registers them all."""

from inrbench.models import (  # noqa: F401
    anr,  # registers anr and transinr
    asmr,
    diner,
    ffn,
    gaussianimage,
    grid,  # the dense multi-resolution grid (the module; make_grid is the function)
    kilonerf,
    loe,
    mfn,
    ngp,
    siren,
    wire,
)
from inrbench.models.base import INR, make_grid
from inrbench.models.registry import create_model, list_models, register_model

__all__ = ["INR", "create_model", "list_models", "make_grid", "register_model"]
