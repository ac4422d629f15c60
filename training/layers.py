"""Small differentiable pieces more than one recipe uses.

* :func:`reverse_gradient`: identity forward, ``-scale x gradient`` backward (Ganin &
  Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", 2015). ParamCrop puts
  it after its cropping MLP so the crops *maximise* the contrastive loss (§3.3);
  Controllable Augmentations before its MINE estimator so the estimator maximises Eq. 6
  while the encoder minimises it (§3.2).
* :class:`ProjectionHead`: the MLP projection between the pooled backbone features and a
  contrastive loss (SimCLR's g(·); ParamCrop's one hidden layer, CORP's three).
"""

from __future__ import annotations

import torch
from torch import nn


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.scale * grad, None


def reverse_gradient(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Identity forward, ``-scale x gradient`` backward."""
    return _GradientReversal.apply(x, scale)


class ProjectionHead(nn.Module):
    """SimCLR's projection g(·) (Chen et al. 2020, §2; the deeper heads of SimCLR v2) on
    pooled features, ``(B, in_dim) -> (B, out_dim)``: ``layers`` hidden blocks
    Linear(·, ``hidden``) - BatchNorm1d - ReLU, then Linear(``hidden``, ``out_dim``).

    A hidden Linear followed by a BatchNorm has no bias (the BatchNorm's shift replaces
    it); with ``batch_norm=False`` a block is Linear (with bias) - ReLU. ParamCrop uses one
    hidden layer of the backbone's width (SimCLR's head), CORP three of 2048 (§3.1); the
    BatchNorms become global-batch ones under ``--sync-bn``. The parameters are named
    ``net.<index>.*`` (checkpoints hold those names)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, layers: int = 1,
                 batch_norm: bool = True) -> None:
        super().__init__()
        if min(in_dim, hidden, out_dim) < 1 or layers < 0:
            raise ValueError(f"ProjectionHead needs in_dim, hidden, out_dim >= 1 and "
                             f"layers >= 0, got {in_dim}, {hidden}, {out_dim}, {layers}")
        blocks: list[nn.Module] = []
        width = in_dim
        for _ in range(layers):
            blocks.append(nn.Linear(width, hidden, bias=not batch_norm))
            if batch_norm:
                blocks.append(nn.BatchNorm1d(hidden))
            blocks.append(nn.ReLU(inplace=True))
            width = hidden
        blocks.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
