"""Small differentiable pieces more than one recipe uses.

* :func:`reverse_gradient`: identity forward, ``-scale x gradient`` backward (Ganin &
  Lempitsky, "Unsupervised Domain Adaptation by Backpropagation", 2015). ParamCrop puts
  it after its cropping MLP so the crops *maximise* the contrastive loss (§3.3);
  Controllable Augmentations before its MINE estimator so the estimator maximises Eq. 6
  while the encoder minimises it (§3.2).
"""

from __future__ import annotations

import torch


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
