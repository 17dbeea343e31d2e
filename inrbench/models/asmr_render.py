"""ASMR's full-signal render without autograd (evaluation, latency): eq. (2)'s activation
sharing (sec. 3.3) with every elementwise pass that is not a sine on a shared cell removed.

Layer i of the hidden stack computes, for a level-i cell p and a level-(i+1) grid point q,

    z_{i+1}[p, q] = sin(A_i[p] + M_i[q]),   A_i = (omega_i W_i) z_i[p],
                                            M_i = omega_i (M_i(x_{i+1}[q]) + b_i)

(the bias is constant over q, so it joins the modulation, and omega joins the weights: a
layer's product is a plain ``mm``, no bias copy and no scaling pass). Every layer uses the
identity sin(A + M) = sin A cos M + cos A sin M, so sines run once per level-i cell
(``sin``/``cos`` of A) and once per grid point (of M), and the upsampled activation costs one
broadcast multiply and one fused multiply-add. The last hidden layer and the output layer
fold into two products, y = sin A (W cos M)^T + cos A (W sin M)^T + b (no full-resolution
hidden tensor). The matrix products are those of ``ASMR.render``'s autograd path, so the
render's measured MACs are unchanged.

The signal is rendered a group of level-k cells at a time, each group's largest hidden
tensor about ``rows`` activations (a few MB, kept in cache, reused by the allocator instead
of fresh pages) and at most ``chunk`` samples; each group is written straight into its
place in one preallocated output.
"""

from __future__ import annotations

import itertools
import math

import torch

#: activations (rows of the last hidden layer) per group: the working set of one group is a
#: few of these ``rows x hidden_dim`` float32 tensors, sized to stay in the CPU's caches
RENDER_ROWS = 4096


def _interleave(outer, inner) -> list[int]:
    return [n for pair in zip(outer, inner) for n in pair]


def _prepared(model):
    """Per hidden layer: the scaled weight ``(omega W)^T`` and cos and sin of the modulation
    ``M_i`` of its level-(i+1) grid, ``(Q_i, K)`` each (omega and bias folded in)."""
    layers = []
    for i, layer in enumerate(model.siren.net):
        lin = layer.linear
        grid = getattr(model, f"_level_grid{i + 1}")
        m = model.modulators[i](grid.reshape(-1, grid.shape[-1]))
        if lin.bias is not None:
            m = m + lin.bias
        m = layer.omega * m
        layers.append(((layer.omega * lin.weight).t(), torch.cos(m), torch.sin(m)))
    return layers


def _hidden(z, wt, cos_m, sin_m, bases, d):
    """One shared hidden layer on ``n`` blocks: ``z`` ``(n, *c, K_in)`` -> ``(n, *c*B, K)``."""
    n, cells, k = z.shape[0], list(z.shape[1:-1]), wt.shape[1]
    a = torch.mm(z.reshape(-1, z.shape[-1]), wt)
    s = torch.sin(a)
    c = a.cos_()
    ones = [1] * d
    mshape = [1, *_interleave(ones, bases), k]
    zshape = [n, *_interleave(cells, ones), k]
    out = torch.mul(s.view(zshape), cos_m.view(mshape))
    out.addcmul_(c.view(zshape), sin_m.view(mshape))
    return out.view(n, *[a * b for a, b in zip(cells, bases)], k)


def render_no_grad(model, chunk: int | None = None, rows: int = RENDER_ROWS) -> torch.Tensor:
    """The whole signal ``(*signal_shape, out_features)`` of an ASMR ``model``, without
    autograd; peak memory follows ``min(chunk, rows x bases of the last level)`` samples
    (``chunk=None``: no bound beyond ``rows``)."""
    d, shape, n_out = model.in_features, list(model.signal_shape), model.out_features
    n_layers = model.n_layers
    hidden = n_layers - 1  # hidden layers 0..L-2; the last one is fused with the output
    cells = [list(c) for c in model.level_cells]
    n_samples = math.prod(shape)
    chunk = n_samples if chunk is None else chunk
    # the group's cell level: the coarsest whose cell holds at most `rows` last-level rows
    # and `chunk` samples (the finest hidden level when none does)
    last_rows = math.prod(cells[hidden - 1])
    k = next((l for l in range(hidden)
              if last_rows // math.prod(cells[l]) <= rows
              and n_samples // math.prod(cells[l]) <= chunk), hidden - 1)
    per_cell_rows = last_rows // math.prod(cells[k])
    per_cell_samples = n_samples // math.prod(cells[k])
    per = max(1, min(rows // per_cell_rows, chunk // per_cell_samples, cells[k][-1]))

    layers = _prepared(model)
    last = model.siren.last_layer
    wt_last, cos_last, sin_last = layers[-1]
    q = cos_last.shape[0]
    # y = sin A (W cos M)^T + cos A (W sin M)^T + b, per grid point q and output o
    right_c = (cos_last[:, None, :] * last.weight).reshape(q * n_out, -1).t()
    right_s = (sin_last[:, None, :] * last.weight).reshape(q * n_out, -1).t()
    bias = last.bias.repeat(q) if last.bias is not None else torch.zeros_like(right_c[0])

    z = model._level_grid0.unsqueeze(0)  # layer 0's input: one block, (1, *B_0, d)
    for i in range(k):  # the coarse levels, once for the whole signal
        z = _hidden(z, *layers[i], model.level_bases[i + 1], d)
    blocks = z[0]  # (*C_k, K_in): one activation per level-k cell

    out = torch.empty(*shape, n_out, dtype=z.dtype, device=z.device)
    sub = [n // c for n, c in zip(shape, cells[k])]  # samples per level-k cell
    out_cells = out.view(*_interleave(cells[k], sub), n_out)
    cpb = [a // b for a, b in zip(cells[hidden - 1], cells[k])]  # last-level cells per block
    b_last = model.level_bases[hidden]
    perm = ([p for j in range(d - 1) for p in (1 + j, 1 + d + j)] + [0, d, 2 * d, 2 * d + 1])
    for lead in itertools.product(*[range(c) for c in cells[k][:-1]]):
        for c0 in range(0, cells[k][-1], per):
            g = blocks[(*lead, slice(c0, c0 + per))]
            n = g.shape[0]
            z = g.reshape(n, *[1] * d, g.shape[-1])
            for i in range(k, hidden - 1):
                z = _hidden(z, *layers[i], model.level_bases[i + 1], d)
            a = torch.mm(z.reshape(-1, z.shape[-1]), wt_last)
            s = torch.sin(a)
            y = torch.addmm(bias, s, right_c)
            # out of place: the FLOP counter behind measured MACs does not count addmm_
            y = torch.addmm(y, a.cos_(), right_s)
            at = [x for j in lead for x in (j, slice(None))]
            dst = out_cells[(*at, slice(c0, c0 + n))]  # (*sub[:-1], n, sub[-1], O)
            dst = dst.view(*_interleave(cpb[:-1], b_last[:-1]), n, cpb[-1], b_last[-1], n_out)
            dst.copy_(y.view(n, *cpb, *b_last, n_out).permute(perm))
    return out
