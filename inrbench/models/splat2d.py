"""A pure-PyTorch rasteriser for 2-D Gaussians summed without sorting or alpha blending
(GaussianImage's accumulated sum), with 16x16 tile culling and bounded memory.

Every quantity is in pixel units of the signal: pixel ``(i, j)`` (row, column) sits at
``(x, y) = (j, i)``, the convention of the CUDA rasteriser GaussianImage calls. Gaussian ``n``
has a centre ``mu_n``, a conic ``Sigma_n^-1 = [[A, B], [B, C]]`` and a colour ``c_n``; a point
``p`` receives

    out(p) = sum_n c_n w_n(p),   w_n(p) = exp(-s) if s <= CUTOFF else 0,
    s = 0.5 (A dx^2 + C dy^2) + B dx dy,   d = mu_n - p

``CUTOFF`` = 4.5 is a Mahalanobis distance of 3 (``s = d^2 / 2``): a Gaussian reaches only the
points within its 3-sigma ellipse. That ellipse lies inside the disc of radius
``3 sqrt(lambda_max)`` (``lambda_max`` the covariance's larger eigenvalue), so the tiles that
disc's bounding square touches hold every point a Gaussian reaches: culling by tiles changes
nothing, and the sum equals the dense sum over all Gaussians exactly (up to float order). The
CUDA kernel cuts instead where ``exp(-s) < 1/255`` (``s > 5.54``) inside the touched tiles,
which makes its result depend on where the tile edges fall; the two differ only by terms of
at most ``exp(-4.5)`` = 0.011 each, between 3 and 3.33 sigma.

Evaluation: Gaussians are binned into every tile their 3-sigma square touches and the
(tile, Gaussian) pairs sorted by tile; each pair is evaluated at its tile's points only.
:func:`splat_sum` takes any query points (binned into the same tiles, segment-summed with
``index_add``); :func:`splat_grid`, the whole image, evaluates each pair on its tile's fixed
16x16 block as one row of 256 (no per-point gathers) and sums the rows per tile, as the CUDA
kernel's thread blocks do. Pairs are processed in chunks of at most ``CHUNK_EVALS``
Gaussian-point evaluations; each chunk is checkpointed (recomputed in the backward pass), so
training holds one chunk's intermediates at a time, never a tensor of Gaussians x pixels.
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

#: tile side in pixels, as the CUDA rasteriser's 16x16 blocks
TILE = 16
#: s = 0.5 d^T Sigma^-1 d at a Mahalanobis distance of 3: the support of each Gaussian
CUTOFF = 4.5
#: radius of the culling square, in standard deviations along the major axis
SIGMAS = 3.0
#: Gaussian-point evaluations per chunk (memory: a few float tensors of this length)
CHUNK_EVALS = 2**21


def conics_and_radii(chol: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(conic (N, 3) = (A, B, C), radius (N,) in pixels, valid (N,))`` of the covariances
    ``L L^T``, ``L = [[l11, 0], [l21, l22]]`` from ``chol = (l11, l21, l22)``. The radius is
    ``ceil(3 sqrt(lambda_max))`` with the CUDA kernel's floor of 0.1 under the eigenvalue
    spread; a singular covariance is not rendered (``valid`` false), as there."""
    l11, l21, l22 = chol.unbind(-1)
    a, b, c = l11 * l11, l11 * l21, l21 * l21 + l22 * l22
    det = a * c - b * b
    valid = det > 0
    inv = torch.where(valid, 1.0 / torch.where(valid, det, torch.ones_like(det)),
                      torch.zeros_like(det))
    conic = torch.stack([c * inv, -b * inv, a * inv], dim=-1)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt(torch.clamp(mid * mid - det, min=0.1))
        radius = torch.ceil(SIGMAS * torch.sqrt(lam))
    return conic, radius, valid


def tile_grid(height: int, width: int) -> tuple[int, int]:
    """Tiles per row and per column of an image of ``height x width`` pixels."""
    return -(-width // TILE), -(-height // TILE)


def gaussian_tile_pairs(xy: torch.Tensor, radius: torch.Tensor, valid: torch.Tensor,
                        tiles_x: int, tiles_y: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(tile, gaussian)`` of every tile each Gaussian's square ``[mu - r, mu + r]`` touches,
    sorted by tile (int64, no gradient)."""
    with torch.no_grad():
        lo = torch.floor((xy - radius[:, None]) / TILE)
        hi = torch.floor((xy + radius[:, None]) / TILE) + 1
        x0 = lo[:, 0].clamp(0, tiles_x).long()
        x1 = hi[:, 0].clamp(0, tiles_x).long()
        y0 = lo[:, 1].clamp(0, tiles_y).long()
        y1 = hi[:, 1].clamp(0, tiles_y).long()
        nx, ny = x1 - x0, y1 - y0
        count = torch.where(valid, nx * ny, torch.zeros_like(nx))
        gid = torch.repeat_interleave(torch.arange(len(xy), device=xy.device), count)
        local = torch.arange(len(gid), device=xy.device) - torch.repeat_interleave(
            torch.cumsum(count, 0) - count, count)
        tile = (y0[gid] + local // nx[gid]) * tiles_x + x0[gid] + local % nx[gid]
        order = torch.argsort(tile, stable=True)
        return tile[order], gid[order]


def point_tiles(points: torch.Tensor, tiles_x: int, tiles_y: int) -> torch.Tensor:
    """The tile of each query point ``(x, y)`` (points off the image: the nearest tile)."""
    with torch.no_grad():
        tx = torch.floor(points[:, 0] / TILE).clamp(0, tiles_x - 1).long()
        ty = torch.floor(points[:, 1] / TILE).clamp(0, tiles_y - 1).long()
        return ty * tiles_x + tx


class Binning:
    """The evaluation layout of a set of query points against a set of Gaussians: per
    (tile, Gaussian) pair, the tile's query points. ``evals`` is the number of Gaussian-point
    evaluations the sum does (the rasteriser's cost)."""

    def __init__(self, points, xy, radius, valid, height: int, width: int):
        tiles_x, tiles_y = tile_grid(height, width)
        n_tiles = tiles_x * tiles_y
        with torch.no_grad():
            ptile = point_tiles(points, tiles_x, tiles_y)
            self.order = torch.argsort(ptile, stable=True)
            qcount = torch.bincount(ptile, minlength=n_tiles)
            self.qstart = torch.cumsum(qcount, 0) - qcount
            self.pair_tile, self.pair_gid = gaussian_tile_pairs(xy, radius, valid,
                                                                tiles_x, tiles_y)
            self.pair_count = qcount[self.pair_tile]
            ends = torch.cumsum(self.pair_count, 0)
            self.evals = int(ends[-1]) if len(ends) else 0
            # chunk boundaries over pairs: each chunk at most CHUNK_EVALS evaluations (a pair
            # bigger than that, a tile with more points, is a chunk of its own)
            bounds, start = [0], 0
            n = len(ends)
            while start < n:
                base = int(ends[start - 1]) if start else 0
                stop = int(torch.searchsorted(ends, base + CHUNK_EVALS, right=True))
                stop = max(stop, start + 1)
                bounds.append(min(stop, n))
                start = bounds[-1]
            self.bounds = bounds

    def chunks(self):
        """``(pair_tile, pair_gid, pair_count)`` slices, one per chunk."""
        for a, b in zip(self.bounds[:-1], self.bounds[1:]):
            yield self.pair_tile[a:b], self.pair_gid[a:b], self.pair_count[a:b]


def _chunk_sum(xy, conic, colour, points, pair_tile, pair_gid, pair_count, order, qstart):
    """The chunk's contributions summed per query point: ``(Q, channels)``."""
    pair = torch.repeat_interleave(torch.arange(len(pair_gid), device=xy.device), pair_count)
    local = torch.arange(len(pair), device=xy.device) - torch.repeat_interleave(
        torch.cumsum(pair_count, 0) - pair_count, pair_count)
    point = order[qstart[pair_tile[pair]] + local]
    g = pair_gid[pair]
    d = xy[g] - points[point]
    k = conic[g]
    s = 0.5 * (k[:, 0] * d[:, 0] * d[:, 0] + k[:, 2] * d[:, 1] * d[:, 1]) \
        + k[:, 1] * d[:, 0] * d[:, 1]
    inside = (s >= 0) & (s <= CUTOFF)
    w = torch.where(inside, torch.exp(-s.clamp(min=0)), torch.zeros_like(s))
    out = torch.zeros(len(points), colour.shape[-1], dtype=colour.dtype, device=colour.device)
    return out.index_add(0, point, w[:, None] * colour[g])


def splat_sum(points: torch.Tensor, xy: torch.Tensor, chol: torch.Tensor,
              colour: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, int]:
    """``(out (Q, channels), evaluations)``: the accumulated sum at ``points`` (Q, 2) in pixel
    ``(x, y)`` of Gaussians centred at ``xy`` (N, 2) with Cholesky factors ``chol`` (N, 3)
    and colours ``colour`` (N, channels), on an image of ``height x width`` pixels (which sets
    the tiles)."""
    conic, radius, valid = conics_and_radii(chol)
    binning = Binning(points.detach(), xy.detach(), radius, valid, height, width)
    out = torch.zeros(len(points), colour.shape[-1], dtype=colour.dtype, device=colour.device)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (xy, chol, colour, points))
    for pair_tile, pair_gid, pair_count in binning.chunks():
        args = (xy, conic, colour, points, pair_tile, pair_gid, pair_count, binning.order,
                binning.qstart)
        if grad:
            out = out + checkpoint(_chunk_sum, *args, use_reentrant=False)
        else:
            out += _chunk_sum(*args)
    return out, binning.evals


def dense_sum(points, xy, chol, colour) -> torch.Tensor:
    """The same sum over every Gaussian at every point, no tiles: ``(Q, N)`` weights, for
    checking the tiled sum on small cases only."""
    conic, _, valid = conics_and_radii(chol)
    d = xy[None, :, :] - points[:, None, :]
    s = 0.5 * (conic[:, 0] * d[..., 0] ** 2 + conic[:, 2] * d[..., 1] ** 2) \
        + conic[:, 1] * d[..., 0] * d[..., 1]
    w = torch.where((s >= 0) & (s <= CUTOFF) & valid, torch.exp(-s.clamp(min=0)),
                    torch.zeros_like(s))
    return w @ colour



def tile_chunk(xy, conic, colour, pair_tile, pair_gid, tiles_x: int, n_tiles: int):
    """One chunk of (tile, Gaussian) pairs over their tiles' full 16x16 pixel blocks:
    ``(n_tiles, 256, channels)``."""
    offs = torch.arange(TILE, dtype=xy.dtype, device=xy.device)
    oy, ox = (t.reshape(-1) for t in torch.meshgrid(offs, offs, indexing="ij"))
    origin_x = ((pair_tile % tiles_x) * TILE).to(xy.dtype)
    origin_y = ((pair_tile // tiles_x) * TILE).to(xy.dtype)
    g = xy[pair_gid]
    dx = (g[:, 0] - origin_x)[:, None] - ox
    dy = (g[:, 1] - origin_y)[:, None] - oy
    k = conic[pair_gid]
    s = 0.5 * (k[:, 0:1] * dx * dx + k[:, 2:3] * dy * dy) + k[:, 1:2] * dx * dy
    w = torch.where((s >= 0) & (s <= CUTOFF), torch.exp(-s.clamp(min=0)), torch.zeros_like(s))
    out = torch.zeros(n_tiles, TILE * TILE, colour.shape[-1], dtype=colour.dtype,
                      device=colour.device)
    return out.index_add(0, pair_tile, w[:, :, None] * colour[pair_gid][:, None, :])


def grid_pairs(xy, chol, height: int, width: int):
    """``(conic, pair_tile, pair_gid, evaluations)`` of a whole-image render: every pair is
    evaluated on its tile's 256 pixels."""
    conic, radius, valid = conics_and_radii(chol)
    tiles_x, tiles_y = tile_grid(height, width)
    pair_tile, pair_gid = gaussian_tile_pairs(xy.detach(), radius, valid, tiles_x, tiles_y)
    return conic, pair_tile, pair_gid, len(pair_gid) * TILE * TILE


def splat_grid(xy: torch.Tensor, chol: torch.Tensor, colour: torch.Tensor, height: int,
               width: int) -> tuple[torch.Tensor, int]:
    """``(image (height, width, channels), evaluations)``: :func:`splat_sum` at every pixel
    ``(j, i)``, tile by tile. A tile's pixels are a fixed 16x16 block, so a pair is evaluated
    as one row of 256 without gathering points (pixels past the image's edge are computed and
    dropped); chunks of ``CHUNK_EVALS // 256`` pairs, checkpointed when training."""
    conic, pair_tile, pair_gid, evals = grid_pairs(xy, chol, height, width)
    tiles_x, tiles_y = tile_grid(height, width)
    n_tiles = tiles_x * tiles_y
    out = torch.zeros(n_tiles, TILE * TILE, colour.shape[-1], dtype=colour.dtype,
                      device=colour.device)
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (xy, chol, colour))
    step = max(1, CHUNK_EVALS // (TILE * TILE))
    for a in range(0, len(pair_gid), step):
        args = (xy, conic, colour, pair_tile[a:a + step], pair_gid[a:a + step], tiles_x,
                n_tiles)
        if grad:
            out = out + checkpoint(tile_chunk, *args, use_reentrant=False)
        else:
            out += tile_chunk(*args)
    image = out.reshape(tiles_y, tiles_x, TILE, TILE, -1).permute(0, 2, 1, 3, 4)
    return image.reshape(tiles_y * TILE, tiles_x * TILE, -1)[:height, :width], evals
