"""Soft local-global correspondence S_k (paper §3.1, Eq. 1).

Each cell of a feature map stands for a *tube*: a box in (time, y, x) of the source
video. A view (the global video or a local clip) covers the time interval ``span``
(seconds) and the spatial box ``box = (x0, y0, x1, y1)`` (any unit shared by all views,
here fractions of the decoded frame); its ``(T', H', W')`` feature grid splits that
box into equal parts (the tubes partition the view; receptive fields are not modelled,
a choice: the paper's supplementary computation is not available). The encoders' maps
are pooled to that grid by :func:`pool_to_cells`, so that a pooled cell is the mean over
exactly its part of the map (``adaptive_avg_pool3d`` would mix overlapping windows when
the map is not a multiple of the grid: 7 -> 4 averages [0,2), [1,4), [3,6), [5,7)). A
horizontal flip
mirrors the columns: column ``w`` of a flipped view covers what column ``W' - 1 - w``
covers unflipped.

Eq. 1:  S_k(i, j) = inter(clip tube i, global tube j) / vol(clip tube i).

Tubes are axis-aligned boxes, so the intersection volume is the product of three 1-D
overlaps and S_k factorises into ``S_t (x) S_y (x) S_x`` (a Kronecker product), which is
how it is computed here. When the clip lies inside the global view (the sampler makes
sure it does) every row sums to 1.
"""

from __future__ import annotations

import torch


def cell_edges(low: torch.Tensor, high: torch.Tensor, cells: int,
               flip: torch.Tensor | None = None) -> torch.Tensor:
    """Edges of ``cells`` equal parts of the intervals ``[low, high]`` (any shape ``S``)
    -> ``(*S, cells, 2)`` (start, end) per cell in feature order; with ``flip`` (bool,
    shape ``S``) the order is mirrored (feature column 0 covers the right end)."""
    fractions = torch.linspace(0, 1, cells + 1, device=low.device, dtype=torch.float64)
    length = (high - low).double().unsqueeze(-1)
    points = low.double().unsqueeze(-1) + length * fractions  # (*S, cells + 1)
    edges = torch.stack((points[..., :-1], points[..., 1:]), dim=-1)
    if flip is not None:
        edges = torch.where(flip.bool()[..., None, None], edges.flip(-2), edges)
    return edges


def pool_to_cells(features: torch.Tensor, grid: tuple[int, ...]) -> torch.Tensor:
    """Average ``features`` ``(N, C, *S)`` over ``grid`` equal, disjoint parts of each of
    its last axes -> ``(N, C, *grid)``: part ``i`` of an axis of ``n`` cells covers
    ``[i n / g, (i + 1) n / g)``, a feature cell on a border counting with the share of it
    inside (area pooling with fractional edges; plain average pooling when ``g``
    divides ``n``). These are the cells :func:`cell_edges` describes."""
    for axis, cells in enumerate(grid, start=features.ndim - len(grid)):
        size = features.shape[axis]
        if size == cells:
            continue
        if cells > size:
            raise ValueError(f"cannot pool {size} cells into {cells}")
        bounds = torch.arange(cells + 1, dtype=torch.float64) * (size / cells)
        source = torch.arange(size + 1, dtype=torch.float64)
        overlap = overlap_1d(torch.stack((bounds[:-1], bounds[1:]), -1),
                             torch.stack((source[:-1], source[1:]), -1))
        weights = (overlap / (size / cells)).to(features.device, features.dtype)
        moved = features.movedim(axis, -1) @ weights.T  # (..., cells)
        features = moved.movedim(-1, axis)
    return features


def overlap_1d(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Lengths of the overlaps of intervals ``a`` (..., n, 2) and ``b`` (..., m, 2)
    -> (..., n, m)."""
    start = torch.maximum(a[..., :, None, 0], b[..., None, :, 0])
    end = torch.minimum(a[..., :, None, 1], b[..., None, :, 1])
    return (end - start).clamp_min(0)


def correspondence(clip_boxes: torch.Tensor, clip_spans: torch.Tensor,
                   clip_flips: torch.Tensor, global_box: torch.Tensor,
                   global_span: torch.Tensor, global_flip: torch.Tensor,
                   clip_grid: tuple[int, int, int], global_grid: tuple[int, int, int]
                   ) -> torch.Tensor:
    """S_k of Eq. 1 for every video and clip.

    Args:
        clip_boxes: (B, K, 4) clip crops ``(x0, y0, x1, y1)``, same frame as ``global_box``.
        clip_spans: (B, K, 2) clip time intervals ``(start, end)`` in seconds.
        clip_flips: (B, K) bool, clip mirrored after cropping.
        global_box: (B, 4), global_span: (B, 2), global_flip: (B,): the global view's.
        clip_grid, global_grid: ``(T', H', W')`` of the clip and global feature maps.

    Returns:
        (B, K, N_c, N_v) float32 with ``N = T' * H' * W'``, cells in row-major
        ``(t, y, x)`` order (``features.flatten(2)`` of a ``(C, T', H', W')`` map).
    """
    (tc, hc, wc), (tv, hv, wv) = clip_grid, global_grid
    batch, clips = clip_boxes.shape[:2]
    g_box = global_box[:, None].expand(batch, clips, 4)
    g_span = global_span[:, None].expand(batch, clips, 2)
    g_flip = global_flip[:, None].expand(batch, clips)
    axes = (
        (cell_edges(clip_spans[..., 0], clip_spans[..., 1], tc),
         cell_edges(g_span[..., 0], g_span[..., 1], tv)),
        (cell_edges(clip_boxes[..., 1], clip_boxes[..., 3], hc),
         cell_edges(g_box[..., 1], g_box[..., 3], hv)),
        (cell_edges(clip_boxes[..., 0], clip_boxes[..., 2], wc, clip_flips),
         cell_edges(g_box[..., 0], g_box[..., 2], wv, g_flip)),
    )
    # per axis: overlap / length of the clip cell -> the three factors of Eq. 1
    factors = []
    for clip_cells, global_cells in axes:
        length = (clip_cells[..., 1] - clip_cells[..., 0]).clamp_min(1e-12)
        factors.append(overlap_1d(clip_cells, global_cells) / length[..., None])
    s_t, s_y, s_x = factors
    s = torch.einsum("bkap,bkcq,bker->bkacepqr", s_t, s_y, s_x)
    return s.reshape(batch, clips, tc * hc * wc, tv * hv * wv).float()
