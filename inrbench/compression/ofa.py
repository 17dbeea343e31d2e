"""Once-for-all sub-networks of a SIREN or MFN supernetwork (ANI sec. 4.4, Alg. 2).

A supernetwork of width ``max(widths)`` with ``max(depths)`` hidden-to-hidden layers holds
every sub-network of the search space (ANI: widths {64,128,192,256} x hidden layers
{2,3,4,5}, uniform width). Sub-network (w, d) keeps the first w channels of every layer
(OFA's channel slicing; ANI does not state its channel rule) and the first d hidden layers
followed by the shared output layer:

    SIREN:  net.0 (first), net.1..net.d (hidden), last_layer          n_layers = d + 2
    MFN:    filters.0..filters.d, linears.0..linears.d-1, last_layer   n_layers = d + 2

``layout`` says for every supernetwork tensor from which depth on it is used and which axes
are width-sliced; ``subnet_params`` slices a state dict; ``ofa_chunks`` splits the
supernetwork into cells (one per tensor and width block) grouped by the smallest sub-network
that needs them, so that the bitstream's chunks in order are what each sub-network adds.
"""

from __future__ import annotations

import torch

from inrbench.errors import ConfigError
from inrbench.models import create_model
from inrbench.models.registry import MODELS

FAMILIES = ("siren", "mfn")


def family(name: str) -> str:
    cls = MODELS.get(name)
    base = getattr(cls, "func", cls)
    cls_name = getattr(base, "__name__", "")
    for fam, cname in (("siren", "SIREN"), ("mfn", "MFN")):
        if cls_name == cname or name == fam or name.startswith(fam):
            return fam
    raise ConfigError(f"once-for-all training supports SIREN and MFN models (ANI's backbones), "
                      f"got model {name!r}")


def layout(fam: str, max_depth: int, gabor: bool = False) -> dict[str, tuple[int, list[int]]]:
    """``{tensor: (first depth that uses it, width-sliced axes)}`` of the supernetwork."""
    out: dict[str, tuple[int, list[int]]] = {}
    if fam == "siren":
        out["net.0.linear.weight"], out["net.0.linear.bias"] = (0, [0]), (0, [0])
        for i in range(1, max_depth + 1):
            out[f"net.{i}.linear.weight"], out[f"net.{i}.linear.bias"] = (i, [0, 1]), (i, [0])
    else:
        for j in range(max_depth + 1):
            out[f"filters.{j}.linear.weight"] = (j, [0])
            out[f"filters.{j}.linear.bias"] = (j, [0])
            if gabor:
                out[f"filters.{j}.mu"], out[f"filters.{j}.gamma"] = (j, [0]), (j, [0])
        for i in range(max_depth):
            out[f"linears.{i}.weight"], out[f"linears.{i}.bias"] = (i + 1, [0, 1]), (i + 1, [0])
    out["last_layer.weight"], out["last_layer.bias"] = (0, [1]), (0, [])
    return out


def sub_kwargs(kwargs: dict, width: int, depth: int) -> dict:
    return {**kwargs, "hidden_dim": int(width), "n_layers": int(depth) + 2}


def check_space(widths, depths, kwargs: dict) -> tuple[list[int], list[int]]:
    widths, depths = sorted(int(w) for w in widths), sorted(int(d) for d in depths)
    if not widths or not depths or widths[0] < 1 or depths[0] < 1:
        raise ConfigError(f"task.ofa_widths/ofa_depths must be non-empty lists of positive "
                          f"ints, got {widths} / {depths}")
    if int(kwargs["hidden_dim"]) != widths[-1] or int(kwargs["n_layers"]) != depths[-1] + 2:
        raise ConfigError(f"--task ofa: the supernetwork must be the largest sub-network: "
                          f"model.hidden_dim={widths[-1]} model.n_layers={depths[-1] + 2} "
                          f"(got {kwargs['hidden_dim']} and {kwargs['n_layers']})")
    return widths, depths


def subnet_slices(lay: dict, width: int, depth: int, shapes: dict) -> dict[str, tuple]:
    """``{tensor: index tuple}`` of sub-network (width, depth) in the supernetwork."""
    out = {}
    for name, (first, axes) in lay.items():
        if first <= depth:
            out[name] = tuple(slice(0, width) if a in axes else slice(0, n)
                              for a, n in enumerate(shapes[name]))
    return out


def subnet_params(state: dict, lay: dict, width: int, depth: int) -> dict[str, torch.Tensor]:
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    return {k: state[k][idx] for k, idx in subnet_slices(lay, width, depth, shapes).items()}


def sandwich_order(fam: str, kwargs: dict, widths, depths) -> list[tuple[int, int]]:
    """ANI Alg. 2: sort the sub-networks by parameter count, then alternate large and small."""
    def n_params(w, d):
        return sum(p.numel() for p in build_subnet(fam, kwargs, w, d, meta=True).parameters())

    space = sorted(((w, d) for w in widths for d in depths), key=lambda s: n_params(*s))
    order, lo, hi = [], 0, len(space) - 1
    while lo <= hi:
        order.append(space[hi])
        if lo != hi:
            order.append(space[lo])
        lo, hi = lo + 1, hi - 1
    return order


def build_subnet(fam: str, kwargs: dict, width: int, depth: int, meta: bool = False):
    kw = dict(kwargs)
    name = kw.pop("name")
    if meta:  # for counting: no memory, no random init (falls back if a model cannot)
        try:
            with torch.device("meta"):
                return create_model(name, **sub_kwargs(kw, width, depth))
        except (RuntimeError, NotImplementedError):
            pass
    return create_model(name, **sub_kwargs(kw, width, depth))


def extract_subnet(model_kwargs: dict, state: dict, width: int, depth: int,
                   widths, depths):
    """A plain model of sub-network (width, depth) with the supernetwork's weights."""
    fam = family(model_kwargs["name"])
    _check_choice(width, depth, widths, depths)
    lay = layout(fam, int(model_kwargs["n_layers"]) - 2,
                 gabor=model_kwargs.get("filter") == "gabor")
    sub = build_subnet(fam, model_kwargs, width, depth)
    params = subnet_params(state, lay, width, depth)
    sub.load_state_dict({k: v.clone() for k, v in params.items()})
    return sub.eval()


def _check_choice(width, depth, widths, depths) -> None:
    if width not in widths or depth not in depths:
        raise ConfigError(f"sub-network {width}x{depth} is not in the search space: --width "
                          f"one of {widths}, --layers one of {depths}")


# -- bitstream chunks ----------------------------------------------------------------------

def ofa_chunks(fam: str, kwargs: dict, state: dict, widths, depths):
    """``[(sub-network (w, d), [(tensor, slice list)])]``: every cell of the supernetwork once,
    in the chunk of the smallest sub-network that needs it, chunks by increasing size."""
    lay = layout(fam, depths[-1], gabor=kwargs.get("filter") == "gabor")
    bounds = [0, *widths]
    groups: dict[tuple[int, int], list] = {}
    for name, (first, axes) in lay.items():
        shape = tuple(state[name].shape)
        blocks = [range(len(widths)) if a in axes else [None] for a in range(len(shape))]
        for combo in _product(blocks):
            sl = [[bounds[b], bounds[b + 1]] if b is not None else [0, n]
                  for b, n in zip(combo, shape)]
            used = [b for b in combo if b is not None]
            key = (widths[max(used)] if used else widths[0], max(first, depths[0]))
            groups.setdefault(key, []).append((name, sl))
    order = sorted(groups, key=lambda s: (_count(fam, kwargs, *s), s))
    return [(key, groups[key]) for key in order]


def _count(fam, kwargs, w, d) -> int:
    return sum(p.numel() for p in build_subnet(fam, kwargs, w, d, meta=True).parameters())


def _product(blocks):
    if not blocks:
        yield ()
        return
    for b in blocks[0]:
        for rest in _product(blocks[1:]):
            yield (b, *rest)


def chunks_needed(ofa: dict, width: int | None, depth: int | None) -> set[int]:
    widths, depths = ofa["widths"], ofa["depths"]
    width = widths[-1] if width is None else int(width)
    depth = depths[-1] if depth is None else int(depth)
    _check_choice(width, depth, widths, depths)
    return {i for i, (w, d) in enumerate(ofa["chunks"]) if w <= width and d <= depth}


def assemble_subnet(name: str, kwargs: dict, ofa: dict, dec, width, depth):
    """Sub-network (width, depth) (the whole supernetwork when both are None) from the
    decoded cells of a once-for-all bitstream."""
    full = {"name": name, **kwargs}
    fam = family(name)
    widths, depths = ofa["widths"], ofa["depths"]
    width = widths[-1] if width is None else int(width)
    depth = depths[-1] if depth is None else int(depth)
    _check_choice(width, depth, widths, depths)
    super_model = build_subnet(fam, full, widths[-1], depths[-1], meta=True)
    shapes = {k: tuple(v.shape) for k, v in super_model.state_dict().items()}
    state = {}
    for tname, parts in dec.slices.items():
        t = torch.zeros(shapes[tname])
        for sl, value in parts:
            t[tuple(slice(a, b) for a, b in sl)] = value.reshape([b - a for a, b in sl])
        state[tname] = t
    for tname, value in dec.tensors.items():
        state[tname] = value
    lay = layout(fam, depths[-1], gabor=kwargs.get("filter") == "gabor")
    need = subnet_slices(lay, width, depth, shapes)
    missing = [k for k in need if k not in state]
    if missing:
        raise ConfigError(f"the bitstream's chunks lack tensor {missing[0]} of sub-network "
                          f"{width}x{depth}")
    sub = build_subnet(fam, full, width, depth)
    sub.load_state_dict({k: state[k][idx].clone() for k, idx in need.items()})
    return sub.eval()


def n_params(fam: str, kwargs: dict, width: int, depth: int) -> int:
    return _count(fam, kwargs, width, depth)

