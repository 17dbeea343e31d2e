"""Stacked members: ``n`` models of one architecture trained as one (vectorised fitting, as
fit-a-nef, Papa et al., CVPR 2024, fits many neural fields at once).

Member ``i``'s parameters are slice ``i`` of stacked tensors (``torch.func.stack_module_state``:
``theta[k] = stack(theta_1[k], ..., theta_n[k])``), and one call evaluates every member with
``vmap(functional_call)``:

    y_i = f(x_i; theta_i),   i = 1..n

The members share nothing but the call: ``d(sum_j L_j) / d theta_i = dL_i / d theta_i``, and
an elementwise optimizer (Adam, Adan) updates slice ``i`` exactly as it would update member
``i`` alone, so a stacked member's weights follow a separate run's within float rounding
(batched matrix products round differently from single ones).

A model that ``vmap`` cannot batch (data-dependent shapes or control flow, randomness in the
forward, a CUDA extension) is not stackable: :func:`stack_refusal` names a declared reason
(``stackable = "why"`` on the class, or a backend other than torch), and a call that fails
under ``vmap`` raises :class:`NotStackable` with the reason, so its runs go one by one.
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from inrbench.models.base import model_label

# an op without a batching rule runs member by member: slower, same result; the warning
# would repeat every step of every stacked run
warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet",
                        category=UserWarning)


class NotStackable(Exception):
    """These members cannot train as one stacked model; the message says why."""


def stack_refusal(model: nn.Module) -> str | None:
    """Why ``model`` cannot be stacked, or None when nothing declares it can't (whether
    ``vmap`` batches its forward is known on the first call)."""
    declared = getattr(model, "stackable", True)
    if declared is not True:
        return declared if isinstance(declared, str) else "its class says it is not stackable"
    backend = getattr(model, "backend", "torch")
    if backend != "torch":
        return f"its {backend} backend is a compiled extension that vmap cannot batch"
    return None


class _Call(nn.Module):
    """``model.<method>(*args, **kwargs)`` as a forward, so ``functional_call`` reaches any
    method (``render``, ``forward_cells``), not only ``forward``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, method: str, args: tuple, kwargs: dict):
        return getattr(self.model, method)(*args, **kwargs)


class StackedModel(nn.Module):
    """``models`` (one architecture, same parameter names and shapes) as stacked tensors:
    ``params[k]`` has shape ``(n, *shape_k)``. :meth:`call` runs a method of every member;
    :meth:`member` is member ``i`` as a model of its own."""

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("a stack needs at least one member")
        first = models[0]
        self.names = [k for k, _ in first.named_parameters()]
        self.buffer_names = [k for k, _ in first.named_buffers()]
        for m in models[1:]:
            if [(k, p.shape) for k, p in m.named_parameters()] != \
                    [(k, p.shape) for k, p in first.named_parameters()]:
                raise NotStackable("the members' parameters differ in names or shapes")
        params, buffers = stack_module_state(models)
        self.n = len(models)
        trained = {k: p.requires_grad for k, p in first.named_parameters()}
        self.params = nn.ParameterList([nn.Parameter(params[k].detach().clone(),
                                                     requires_grad=trained[k])
                                        for k in self.names])
        for j, k in enumerate(self.buffer_names):
            self.register_buffer(f"buffer{j}", buffers[k].detach().clone())
        # the architecture the stacked tensors are called through; not a submodule, so its
        # own (member 0's) tensors are neither trained nor saved
        self._shell = [_Call(copy.deepcopy(first))]

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        self._shell[0]._apply(fn, recurse)
        return self

    def stacked_buffers(self) -> list[torch.Tensor]:
        return [getattr(self, f"buffer{j}") for j in range(len(self.buffer_names))]

    def call(self, method: str, *args, **kwargs) -> torch.Tensor:
        """Every member's ``model.<method>(*args, **kwargs)``, stacked: tensor arguments carry
        one slice per member on their first axis, other arguments are shared."""
        tensors = {f"model.{k}": p for k, p in zip(self.names, self.params)}
        tensors.update({f"model.{k}": b for k, b in zip(self.buffer_names,
                                                         self.stacked_buffers())})
        shell = self._shell[0]

        def one(state, *a):
            return functional_call(shell, state, (method, a, kwargs))

        dims = (0, *[0 if torch.is_tensor(a) else None for a in args])
        try:
            return vmap(one, in_dims=dims, randomness="error")(tensors, *args)
        except (RuntimeError, ValueError, NotImplementedError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise NotStackable(f"vmap cannot batch {model_label(shell.model)}.{method}: "
                               f"{first}") from e

    def verify(self, models: list[nn.Module], method: str, *args, atol: float = 1e-4) -> float:
        """Raise :class:`NotStackable` unless the stacked ``<method>(*args)`` (the training
        path: ``render`` of the signal's shape, or ``forward`` of coordinates, shared by
        every member) is that of the first and last of ``models`` (this stack's members,
        unstacked): a model holding per-member state outside its parameters and buffers (a
        plain tensor attribute drawn at construction) would otherwise train every member
        with member 0's. Returns the largest difference (relative to the output's scale)."""
        picks = sorted({0, len(models) - 1})
        batched = [a.expand(self.n, *a.shape) if torch.is_tensor(a) else a for a in args]
        with torch.enable_grad():  # the path training takes (no-grad renders may differ)
            stacked = self.call(method, *batched).detach()
            worst = 0.0
            for i in picks:
                alone = getattr(models[i], method)(*args).detach()
                scale = max(1.0, float(alone.abs().max()))
                worst = max(worst, float((stacked[i] - alone).abs().max()) / scale)
        if not worst <= atol:
            raise NotStackable(f"a stacked {model_label(models[0])} computes another function "
                               f"than its members alone (difference {worst:.3g}): state "
                               f"outside its parameters and buffers differs between members")
        return worst

    @torch.no_grad()
    def load_member(self, i: int, model: nn.Module) -> nn.Module:
        """Copy member ``i``'s tensors into ``model`` (the same architecture); returns it."""
        own = dict(model.named_parameters())
        for k, p in zip(self.names, self.params):
            own[k].copy_(p[i])
        bufs = dict(model.named_buffers())
        for k, b in zip(self.buffer_names, self.stacked_buffers()):
            bufs[k].copy_(b[i])
        return model

    def member(self, i: int) -> nn.Module:
        """Member ``i`` as a model of its own (a copy of the architecture holding its slice)."""
        return self.load_member(i, copy.deepcopy(self._shell[0].model))
