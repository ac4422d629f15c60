"""Relation modules: what CORP computes from two projected clip features (paper §3.2-3.4).

* :class:`MixedAttention` (Eq. 1): ``r(x, y) = [<U_1 x, V_1 y>, ..., <U_h x, V_h y>]``,
  ``U_k, V_k`` of shape ``(d/h, d)``, h = 128 heads.
* :class:`DecouplingAttention` (Eq. 8 with the sums removed, §3.4):
  ``r(x, y) = [G x * G y ; P x * Q y - Q x * P y]``. The first part is symmetric in
  ``(x, y)`` (contrast: "x is like y" iff "y is like x"), the second antisymmetric (order:
  "x before y" iff "y after x"). Summing all entries of ``r`` gives the bilinear form
  ``x^T M y`` with ``M = G^T G + P^T Q - Q^T P`` (the theorem, Eq. 7).
* :class:`RelationHead`: attention, then the perceptron ``phi = mlp(r)`` (Eq. 2 and 4),
  3 classes for CORP_m, 2 for CORP_f's order.

Choices (the paper is silent):

* decoupling width: ``symmetric_dims = antisymmetric_dims = h / 2`` (64 + 64), so the
  perceptron sees an ``h``-vector as with mixed attention and the relation has fewer
  parameters (``2 * h/2 * d + h/2 * d`` vs ``2 * h * d/h * d``);
* projections have no bias (a bias would break Eq. 8's exact (anti)symmetry);
* their weights start N(0, 1) (mixed: N(0, (d/h)^-1/2)) so that every entry of ``r`` is
  of order 1 for the L2-normalised ``z``: with PyTorch's default init (std ~ 1/sqrt(3d))
  the entries are products of two ~0.05 numbers, the perceptron sees ~0, and the order
  loss does not move in a CPU smoke run (measured: stuck at 2 ln 2 for 40 steps);
* perceptron: Linear(h, ``mlp_hidden`` = h) - ReLU - Linear(hidden, classes) for the
  paper's 2 layers (Table 6d), a single Linear for 1 layer.

Both attentions broadcast: ``x`` of shape ``(N, 1, d)`` and ``y`` of ``(1, N, d)`` give
all ``N x N`` ordered pairs while each clip is projected once.
"""

from __future__ import annotations

import torch
from torch import nn

ATTENTIONS = ("decoupled", "mixed")


class MixedAttention(nn.Module):
    """Multi-head attention relation of Eq. 1: ``(..., d), (..., d) -> (..., heads)``."""

    def __init__(self, dim: int, heads: int = 128) -> None:
        super().__init__()
        if heads < 1 or dim % heads:
            raise ValueError(f"heads must divide the feature dim {dim}, got heads={heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.u = nn.Linear(dim, dim, bias=False)  # rows are U_1, ..., U_h stacked
        self.v = nn.Linear(dim, dim, bias=False)
        self.out_dim = heads
        for weight in (self.u.weight, self.v.weight):  # unit-scale heads on unit-norm input
            nn.init.normal_(weight, std=self.head_dim ** -0.25)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        ux = self.u(x).unflatten(-1, (self.heads, self.head_dim))
        vy = self.v(y).unflatten(-1, (self.heads, self.head_dim))
        return (ux * vy).sum(-1)


class DecouplingAttention(nn.Module):
    """Decoupling attention of Eq. 8: ``(..., d), (..., d) -> (..., n + l)``, the first
    ``n`` entries symmetric and the last ``l`` antisymmetric in ``(x, y)``."""

    def __init__(self, dim: int, symmetric_dims: int = 64, antisymmetric_dims: int = 64
                 ) -> None:
        super().__init__()
        if symmetric_dims < 0 or antisymmetric_dims < 0 or \
                symmetric_dims + antisymmetric_dims < 1:
            raise ValueError("symmetric_dims and antisymmetric_dims must be >= 0 and not both "
                             f"0, got {symmetric_dims}, {antisymmetric_dims}")
        self.symmetric_dims = symmetric_dims
        self.antisymmetric_dims = antisymmetric_dims
        self.g = nn.Linear(dim, symmetric_dims, bias=False)
        self.p = nn.Linear(dim, antisymmetric_dims, bias=False)
        self.q = nn.Linear(dim, antisymmetric_dims, bias=False)
        self.out_dim = symmetric_dims + antisymmetric_dims
        for weight in (self.g.weight, self.p.weight, self.q.weight):
            nn.init.normal_(weight)  # unit-scale entries on unit-norm input

    def symmetric(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``G x * G y``."""
        return self.g(x) * self.g(y)

    def antisymmetric(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``P x * Q y - Q x * P y``."""
        return self.p(x) * self.q(y) - self.q(x) * self.p(y)

    def bilinear_matrix(self) -> torch.Tensor:
        """``M`` with ``sum(r(x, y)) = x^T M y`` (Eq. 7): ``G^T G + P^T Q - Q^T P``."""
        g, p, q = self.g.weight, self.p.weight, self.q.weight
        return g.T @ g + p.T @ q - q.T @ p

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gx, gy = self.g(x), self.g(y)
        px, py, qx, qy = self.p(x), self.p(y), self.q(x), self.q(y)
        symmetric = gx * gy
        antisymmetric = px * qy - qx * py
        shape = torch.broadcast_shapes(symmetric.shape[:-1], antisymmetric.shape[:-1])
        return torch.cat([symmetric.expand(*shape, -1), antisymmetric.expand(*shape, -1)], -1)


class RelationHead(nn.Module):
    """``phi(x, y) = mlp(r(x, y))`` (Eq. 2 / Eq. 4): ``(..., d), (..., d) -> (..., classes)``
    logits."""

    def __init__(self, dim: int, classes: int, attention: str = "decoupled", heads: int = 128,
                 symmetric_dims: int | None = None, antisymmetric_dims: int | None = None,
                 mlp_layers: int = 2, mlp_hidden: int | None = None) -> None:
        super().__init__()
        if attention == "mixed":
            self.attention: nn.Module = MixedAttention(dim, heads)
        elif attention == "decoupled":
            half = heads // 2
            self.attention = DecouplingAttention(
                dim, half if symmetric_dims is None else symmetric_dims,
                heads - half if antisymmetric_dims is None else antisymmetric_dims)
        else:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if classes < 2:
            raise ValueError(f"classes must be >= 2, got {classes}")
        width = self.attention.out_dim
        if mlp_layers == 1:
            self.mlp = nn.Sequential(nn.Linear(width, classes))
        elif mlp_layers == 2:
            hidden = mlp_hidden or width
            self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True),
                                     nn.Linear(hidden, classes))
        else:
            raise ValueError(f"mlp_layers must be 1 or 2 (Table 6d), got {mlp_layers}")

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.attention(x, y))
