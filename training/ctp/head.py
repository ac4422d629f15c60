"""CtP's prediction head (paper §3.2 and §5.1; layer details and initialisation from
microsoft/CtP ``pyvrl/models/pretraining/ctp/ctp_head.py``).

features ``(B, C, T', H', W')`` --Conv3d (T', 1, 1) + bias, ReLU: squeeze time-->
``(B, C, 1, H', W')`` --RoIAlign 5x5 at the backbone's stride (1/8 with CtP's
stride-8 backbone), sampling ratio 2, aligned--> ``(B*N, C, 5, 5)`` --fc C*25 -> 512,
ReLU--> --fc 512 -> T*4--> targets ``(B, N, T, 4)`` for the N query boxes of each clip.
Initialisation as the reference: Kaiming for the convolution, normal(std 0.001) for both
fully connected layers, zero biases.
"""

from __future__ import annotations

import torch
from torch import nn

from .roi_align import roi_align


class CtPHead(nn.Module):
    def __init__(
        self,
        in_channels: int,
        temporal_size: int,
        num_frames: int,
        *,
        hidden: int = 512,
        roi_size: int = 5,
        spatial_scale: float = 1.0 / 8,
        sampling_ratio: int = 2,
    ) -> None:
        super().__init__()
        self.num_frames = num_frames
        self.roi_size = roi_size
        self.spatial_scale = spatial_scale
        self.sampling_ratio = sampling_ratio
        self.squeeze = nn.Conv3d(in_channels, in_channels, (temporal_size, 1, 1), bias=True)
        self.fc1 = nn.Linear(in_channels * roi_size * roi_size, hidden)
        self.fc2 = nn.Linear(hidden, num_frames * 4)
        nn.init.kaiming_normal_(self.squeeze.weight, mode="fan_out", nonlinearity="relu")
        nn.init.zeros_(self.squeeze.bias)
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, std=0.001)
            nn.init.zeros_(fc.bias)

    def forward(self, features: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
        """features ``(B, C, T', H', W')``; query boxes ``(B, N, 4)`` cx/cy/w/h in input
        pixels -> predicted targets ``(B, N, T, 4)``."""
        batch, num_boxes = query.shape[:2]
        if features.shape[2] != self.squeeze.kernel_size[0]:
            raise ValueError(f"features have {features.shape[2]} time steps; the head was "
                             f"built for {self.squeeze.kernel_size[0]}")
        squeezed = torch.relu(self.squeeze(features)).squeeze(2)  # (B, C, H', W')
        corners = torch.cat([query[..., :2] - query[..., 2:] / 2,
                             query[..., :2] + query[..., 2:] / 2], dim=-1)
        index = torch.arange(batch, device=query.device, dtype=query.dtype)
        rois = torch.cat([index.repeat_interleave(num_boxes)[:, None],
                          corners.reshape(-1, 4)], dim=1)
        pooled = roi_align(squeezed, rois, (self.roi_size, self.roi_size),
                           self.spatial_scale, self.sampling_ratio, aligned=True)
        hidden = torch.relu(self.fc1(pooled.flatten(1)))
        return self.fc2(hidden).view(batch, num_boxes, self.num_frames, 4)
