"""CtP regression targets, their inverse, the loss and the IoU (paper §3.2: the box
decoding and Smooth-L1 distance equations; the reference loss is ``CtPHead.loss`` in
microsoft/CtP ``pyvrl/models/pretraining/ctp/ctp_head.py``).

Boxes are ``(cx, cy, w, h)`` in pixels. For frame i of a trajectory whose query box in
frame 1 is ``(x1, y1, w1, h1)`` the targets are (the inverse of the paper's decoding
equation)::

    t = ((x_i - x1) / s_x, (y_i - y1) / s_y, log(w_i / w1) / s_w, log(h_i / h1) / s_h)

with ``s = (0.8, 0.8, 0.04, 0.04)``. (The paper prints the tuple as
``(s_x, s_h, s_w, s_h)``, a typo; these are the values the reference code uses.) The loss
is smooth-L1 (beta 1) of predicted minus true targets, which equals the paper's
``L((x_i - x̂_i) / s_x)`` and ``L(log(w_i / ŵ_i) / s_w)``; the centre terms and the size
terms are each summed and divided by (#trajectories x #frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DEFAULT_STDS = (0.8, 0.8, 0.04, 0.04)


def encode(boxes: torch.Tensor, stds: tuple[float, ...] = DEFAULT_STDS) -> torch.Tensor:
    """``(..., T, 4)`` cx/cy/w/h trajectories -> ``(..., T, 4)`` targets w.r.t. frame 0."""
    first = boxes[..., :1, :]
    std = boxes.new_tensor(stds)
    centre = (boxes[..., :2] - first[..., :2])
    size = torch.log(boxes[..., 2:] / first[..., 2:])
    return torch.cat([centre, size], dim=-1) / std


def decode(query: torch.Tensor, targets: torch.Tensor,
           stds: tuple[float, ...] = DEFAULT_STDS) -> torch.Tensor:
    """The paper's equation: query ``(..., 4)`` + targets ``(..., T, 4)`` -> boxes."""
    std = targets.new_tensor(stds)
    scaled = targets * std
    centre = query[..., None, :2] + scaled[..., :2]
    size = query[..., None, 2:] * torch.exp(scaled[..., 2:])
    return torch.cat([centre, size], dim=-1)


@dataclass
class CtPLoss:
    total: torch.Tensor
    centre: torch.Tensor
    size: torch.Tensor


def ctp_loss(predicted: torch.Tensor, target: torch.Tensor) -> CtPLoss:
    """Smooth-L1 (beta 1) over ``(B, N, T, 4)`` targets, normalised per trajectory-frame."""
    if predicted.shape != target.shape or predicted.shape[-1] != 4:
        raise ValueError(f"expected equal (..., T, 4) shapes, got {tuple(predicted.shape)} "
                         f"and {tuple(target.shape)}")
    count = predicted[..., 0].numel()  # trajectories x frames (x batch)
    per_value = F.smooth_l1_loss(predicted, target, beta=1.0, reduction="none")
    centre = per_value[..., :2].sum() / count
    size = per_value[..., 2:].sum() / count
    return CtPLoss(centre + size, centre, size)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Element-wise IoU of cx/cy/w/h boxes ``(..., 4)``."""
    a1, a2 = a[..., :2] - a[..., 2:] / 2, a[..., :2] + a[..., 2:] / 2
    b1, b2 = b[..., :2] - b[..., 2:] / 2, b[..., :2] + b[..., 2:] / 2
    inter = (torch.minimum(a2, b2) - torch.maximum(a1, b1)).clamp(min=0).prod(-1)
    union = a[..., 2:].prod(-1) + b[..., 2:].prod(-1) - inter
    return inter / union.clamp(min=1e-9)
