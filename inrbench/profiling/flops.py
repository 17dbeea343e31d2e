"""FLOPs per sample of one full render under one rule for every model (``inrbench-flops-1``).

``macs_measured`` sees matrix products only, so a model whose work is sines, exponentials,
gathers and interpolation (a hash grid, a dense grid, splats) would look nearly free. This
counts every aten op that ``model.render(shape)`` dispatches, on meta tensors (so counting an
8192x8192 signal costs nothing), into five classes:

* ``matmul``: mm, addmm, bmm, baddbmm, convolution, attention: 2 FLOPs per multiply-accumulate,
  from ``torch.utils.flop_counter``'s formulas (so ``matmul == 2 * macs_measured``); the bias
  that addmm, baddbmm and a convolution add is 1 ``elementwise`` FLOP per output element.
* ``elementwise``: arithmetic, comparisons, bitwise and integer ops, activations such as relu:
  1 FLOP per output element (addcmul and addcdiv: 2; ``x ** 2``: one multiply). Reductions
  (sum, mean, max, cumsum, norms): 1 per input element; a sort: log2(n) comparisons per element.
* ``transcendental``: sin, cos, exp, log, tanh, sigmoid, pow, sqrt, erf, ...: ``1`` per output
  element (as fvcore and ptflops count them), kept apart so a reader can reweigh them.
* ``memory``: gathers and scatters (index, index_select, gather, embedding, index_put,
  scatter, bincount): 1 per element moved.
* ``interpolation``: grid_sample and upsample: 2 FLOPs (a multiply and an add) per corner read
  per output element: 2, 8, 16 for (bi, tri)linear in 1, 2, 3 dims, 32 for bicubic, 2 for
  nearest.

Views, copies, dtype casts and tensor creation (view, reshape, expand, cat, stack, clone,
_to_copy, empty, zeros, arange, linspace, ...) count 0. An op the rule does not know counts as
``elementwise`` (1 per output element) and is listed in ``unclassified``, so nothing is missed
silently. A complex element counts as one element (WIRE's real arithmetic is several times this).
``docs/cost-rule.md`` states the rule for readers.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Sequence

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

#: the rule's name, recorded beside every count; bump it when a weight or a class changes
COST_RULE = "inrbench-flops-1"
CLASSES = ("matmul", "elementwise", "transcendental", "memory", "interpolation")
#: FLOPs per transcendental element (sin, exp, ...); ``by_class`` keeps them apart to reweigh
TRANSCENDENTAL_WEIGHT = 1

ZERO = frozenset("""
    view _unsafe_view reshape expand expand_as permute transpose t unsqueeze squeeze select slice
    narrow split split_with_sizes unbind chunk flatten unflatten view_as_real view_as_complex
    as_strided alias detach lift_fresh diagonal movedim contiguous clone copy copy_ _to_copy to
    cat stack repeat tile flip roll empty empty_like empty_strided new_empty zeros zeros_like
    ones ones_like full full_like new_zeros new_ones new_full fill zero arange linspace
    logspace scalar_tensor _local_scalar_dense lift resize_ set_ sym_size sym_stride sym_numel
    sym_storage_offset is_same_size _reshape_alias unfold index_fill meshgrid
""".split())
ELEMENTWISE = frozenset("""
    add sub rsub mul div neg abs sign sgn where clamp clamp_min clamp_max relu relu6 hardtanh
    leaky_relu threshold elu minimum maximum fmin fmax floor ceil round trunc frac remainder
    fmod floor_divide bitwise_and bitwise_or bitwise_xor bitwise_not bitwise_left_shift
    bitwise_right_shift __and__ __or__ __xor__ __lshift__ __rshift__ eq ne lt le gt ge
    logical_and logical_or logical_xor logical_not isnan isinf isfinite masked_fill reciprocal
    square heaviside hardswish hardsigmoid lerp nan_to_num
""".split())
DOUBLE = frozenset({"addcmul", "addcdiv"})  # a multiply (or divide) and an add per element
TRANSCENDENTAL = frozenset("""
    sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh exp exp2 expm1 log log2
    log10 log1p sigmoid log_sigmoid_forward logit pow float_power sqrt rsqrt erf erfc erfinv
    gelu silu mish softplus sinc lgamma digamma special_erfcx xlogy
""".split())
REDUCTION = frozenset("""
    sum mean prod amax amin max min argmax argmin cumsum cumprod logcumsumexp norm
    linalg_vector_norm var std var_mean std_mean all any count_nonzero aminmax
""".split())
MEMORY_OUT = frozenset({"index", "index_select", "gather", "embedding", "take",
                        "masked_select", "_unsafe_index"})
#: scatters: elements moved are the source's (``src``/``values``/``source``, argument 2 or 3)
MEMORY_SCATTER = {"index_put": 2, "_index_put_impl": 2, "scatter": 3, "scatter_add": 3,
                  "scatter_reduce": 3, "index_add": 3, "index_copy": 3, "masked_scatter": 2}
#: corners read per output element (2 FLOPs each: a multiply and an add), by op and mode
INTERP_CORNERS = {"upsample_nearest1d": 1, "upsample_nearest2d": 1, "upsample_nearest3d": 1,
                  "_upsample_nearest_exact1d": 1, "_upsample_nearest_exact2d": 1,
                  "_upsample_nearest_exact3d": 1, "upsample_linear1d": 2,
                  "upsample_bilinear2d": 4, "upsample_trilinear3d": 8,
                  "upsample_bicubic2d": 16}
GRID_SAMPLER = {"grid_sampler_2d": (4, 1, 16), "grid_sampler_3d": (8, 1, 64)}  # per mode
MATMUL_BIAS = {"addmm": 0, "baddbmm": 0, "convolution": 2, "_convolution": 2}


def _name(func) -> str:
    """The op's name without its in-place suffix: ``cos_`` counts as ``cos``."""
    name = func._overloadpacket.__name__
    return name if name.endswith("__") else name.removesuffix("_")


def _numel(x) -> int:
    return x.numel() if isinstance(x, torch.Tensor) else 0


def _first_tensor(out):
    return next((t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)), None)


def classify(func, args, kwargs, out) -> tuple[dict[str, float], bool]:
    """FLOPs of one dispatched op by class, and whether the rule knows the op."""
    packet, name = func._overloadpacket, _name(func)
    n_out = _numel(_first_tensor(out))
    if packet in flop_registry:
        flops = {"matmul": flop_registry[packet](*args, **kwargs, out_val=out)}
        bias = MATMUL_BIAS.get(name)
        if bias is not None and len(args) > bias and isinstance(args[bias], torch.Tensor):
            flops["elementwise"] = n_out
        return flops, True
    if name in ZERO:
        return {}, True
    if name in TRANSCENDENTAL:
        if name == "pow" and len(args) > 1 and args[1] == 2:  # x ** 2: one multiply
            return {"elementwise": n_out}, True
        return {"transcendental": TRANSCENDENTAL_WEIGHT * n_out}, True
    if name in ELEMENTWISE:
        return {"elementwise": n_out}, True
    if name in DOUBLE:
        return {"elementwise": 2 * n_out}, True
    if name in REDUCTION:
        return {"elementwise": _numel(args[0])}, True
    if name == "sort":
        x, dim = args[0], (args[1] if len(args) > 1 and isinstance(args[1], int)
                           else kwargs.get("dim", -1))
        n = x.shape[dim] if x.dim() else 1
        return {"elementwise": x.numel() * max(math.ceil(math.log2(max(n, 1))), 1)}, True
    if name in ("_softmax", "_log_softmax"):  # max, subtract, sum, divide; one exp
        return {"elementwise": 4 * n_out, "transcendental": TRANSCENDENTAL_WEIGHT * n_out}, True
    if name in MEMORY_OUT:
        return {"memory": n_out}, True
    if name == "bincount":
        return {"memory": _numel(args[0])}, True
    if name in MEMORY_SCATTER:
        i = MEMORY_SCATTER[name]
        src = args[i] if len(args) > i else next(iter(kwargs.values()), None)
        moved = _numel(src) or n_out
        accumulate = name in ("scatter_add", "index_add", "scatter_reduce") or (
            name in ("index_put", "_index_put_impl") and len(args) > 3 and bool(args[3]))
        return ({"memory": moved, "elementwise": moved} if accumulate else {"memory": moved}), True
    if name in INTERP_CORNERS:
        return {"interpolation": 2 * INTERP_CORNERS[name] * n_out}, True
    if name in GRID_SAMPLER:
        mode = args[2] if len(args) > 2 else 0  # 0 bilinear, 1 nearest, 2 bicubic
        return {"interpolation": 2 * GRID_SAMPLER[name][mode] * n_out}, True
    return {"elementwise": n_out}, False


class CostCounter(TorchDispatchMode):
    """Counts FLOPs by class (``by_class``) of every op dispatched while active; ops the rule
    does not know are in ``unclassified`` (and counted as elementwise)."""

    def __init__(self):
        super().__init__()
        self.by_class: Counter = Counter({c: 0 for c in CLASSES})
        self.unclassified: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        known = func._overloadpacket in flop_registry or _name(func) in _KNOWN
        if not known:  # a composite op: count what it is made of, as the FLOP counter does
            with self:
                out = func.decompose(*args, **kwargs)
            if out is not NotImplemented:
                return out
        out = func(*args, **kwargs)
        flops, known = classify(func, args, kwargs, out)
        self.by_class.update(flops)
        if not known:
            self.unclassified.add(str(func))
        return out


_KNOWN = (ZERO | ELEMENTWISE | DOUBLE | TRANSCENDENTAL | REDUCTION | MEMORY_OUT
          | set(MEMORY_SCATTER) | set(INTERP_CORNERS) | set(GRID_SAMPLER)
          | {"sort", "_softmax", "_log_softmax", "bincount"})


def flops_per_sample(model, shape: Sequence[int]) -> dict:
    """``{"flops", "by_class", "rule", "unclassified"}`` of ``model.render(shape)`` per sample
    (run without gradients, on a meta copy of the model: nothing is computed)."""
    meta = copy.deepcopy(model).to("meta")
    counter = CostCounter()
    with torch.no_grad(), counter:
        meta.render(shape)
    n = math.prod(shape)
    by_class = {c: counter.by_class[c] / n for c in CLASSES}
    return {"flops": sum(by_class.values()), "by_class": by_class, "rule": COST_RULE,
            "unclassified": sorted(counter.unclassified)}
