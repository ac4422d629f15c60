"""The CtP network: a stride-8 backbone, the head, and the loss (paper §3.2)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vsslzoo.config import PreprocessConfig
from vsslzoo.models import build

from .head import CtPHead
from .targets import box_iou, ctp_loss, decode, encode


class CtPModel(nn.Module):
    """``forward(batch)`` with ``clip`` (B, 3, T, H, W) pixels and ``boxes`` (B, N, T, 4)
    -> dict of ``loss``, ``loss_centre``, ``loss_size`` and ``iou`` (mean IoU of decoded
    predictions with the true boxes)."""

    def __init__(self, architecture: str, model_args: dict[str, Any],
                 preprocess: PreprocessConfig, num_frames: int, crop: int) -> None:
        super().__init__()
        self.backbone = build(architecture, preprocess=preprocess,
                              **{**model_args, "output_stride": 8})
        with torch.no_grad():
            probe = self.backbone.forward_features(torch.zeros(1, 3, num_frames, crop, crop))
        self.head = CtPHead(probe.shape[1], probe.shape[2], num_frames,
                            spatial_scale=probe.shape[-1] / crop)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        boxes = batch["boxes"].float()
        features = self.backbone.forward_features(batch["clip"])
        predicted = self.head(features, boxes[:, :, 0]).float()
        loss = ctp_loss(predicted, encode(boxes))
        with torch.no_grad():
            iou = box_iou(decode(boxes[:, :, 0], predicted), boxes)[:, :, 1:].mean()
        return {"loss": loss.total, "loss_centre": loss.centre, "loss_size": loss.size,
                "iou": iou}
