"""S3D-G (Xie et al., "Rethinking Spatiotemporal Feature Learning", ECCV 2018).

Layout of the PyTorch form in TengdaHan/CoCLR ``backbone/s3dg.py`` (the one ParamCrop's
family of papers uses): Inception-v1 with every 3x3x3 conv separated into (1,k,k) and
(k,1,1) convs, each followed by BN + ReLU, and *self-gating* on every inception branch
(``x * sigmoid(fc(mean over T, H, W))``). 1024-d features; at 16x112^2 the map is
1024x2x3x3 (the last max-pool floors 7 -> 3).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..config import PreprocessConfig
from .common import VideoBackbone, check_width, scale_channels

_BN_EPS = 1e-3  # as the CoCLR / TF S3D-G implementations


class BasicConv3d(nn.Module):
    """Conv (no bias) -> BN -> ReLU."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv3d(in_planes, out_planes, kernel_size, stride, padding, bias=False)
        self.bn = nn.BatchNorm3d(out_planes, eps=_BN_EPS)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class STConv3d(nn.Module):
    """Separable conv: (1,k,k) -> BN -> ReLU -> (k,1,1) -> BN -> ReLU."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int, stride: int = 1,
                 padding: int = 0):
        super().__init__()
        k, s, p = kernel_size, stride, padding
        self.conv1 = nn.Conv3d(in_planes, out_planes, (1, k, k), (1, s, s), (0, p, p), bias=False)
        self.bn1 = nn.BatchNorm3d(out_planes, eps=_BN_EPS)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(out_planes, out_planes, (k, 1, 1), (s, 1, 1), (p, 0, 0), bias=False)
        self.bn2 = nn.BatchNorm3d(out_planes, eps=_BN_EPS)
        self.relu2 = nn.ReLU(inplace=True)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(x)))


class SelfGating(nn.Module):
    """x * sigmoid(W mean_{T,H,W}(x) + b), per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * weights[:, :, None, None, None]


class SepInception(nn.Module):
    """Inception block with separable 3x3x3 convs; ``planes`` = (b0, b1a, b1b, b2a, b2b, b3)."""

    def __init__(self, in_planes: int, planes: Sequence[int], gating: bool):
        super().__init__()
        b0, b1a, b1b, b2a, b2b, b3 = planes
        self.branch0 = BasicConv3d(in_planes, b0, 1)
        self.branch1 = nn.Sequential(BasicConv3d(in_planes, b1a, 1), STConv3d(b1a, b1b, 3, 1, 1))
        self.branch2 = nn.Sequential(BasicConv3d(in_planes, b2a, 1), STConv3d(b2a, b2b, 3, 1, 1))
        self.branch3 = nn.Sequential(nn.MaxPool3d(3, 1, 1), BasicConv3d(in_planes, b3, 1))
        self.out_channels = b0 + b1b + b2b + b3
        self.gating = gating
        if gating:
            self.gating_b0 = SelfGating(b0)
            self.gating_b1 = SelfGating(b1b)
            self.gating_b2 = SelfGating(b2b)
            self.gating_b3 = SelfGating(b3)

    def forward(self, x):
        outs = [self.branch0(x), self.branch1(x), self.branch2(x), self.branch3(x)]
        if self.gating:
            gates = (self.gating_b0, self.gating_b1, self.gating_b2, self.gating_b3)
            outs = [gate(out) for gate, out in zip(gates, outs)]
        return torch.cat(outs, dim=1)


# (name, in-block planes) in order; in_planes follow from the previous block's output.
_INCEPTION = {
    "Mixed_3b": (64, 96, 128, 16, 32, 32),
    "Mixed_3c": (128, 128, 192, 32, 96, 64),
    "Mixed_4b": (192, 96, 208, 16, 48, 64),
    "Mixed_4c": (160, 112, 224, 24, 64, 64),
    "Mixed_4d": (128, 128, 256, 24, 64, 64),
    "Mixed_4e": (112, 144, 288, 32, 64, 64),
    "Mixed_4f": (256, 160, 320, 32, 128, 128),
    "Mixed_5b": (256, 160, 320, 32, 128, 128),
    "Mixed_5c": (384, 192, 384, 48, 128, 128),
}


class S3DG(VideoBackbone):
    """S3D (``gating=False``) or S3D-G (``gating=True``, the default)."""

    def __init__(
        self,
        *,
        gating: bool = True,
        width: float = 1.0,
        preprocess: PreprocessConfig | None = None,
    ) -> None:
        super().__init__(preprocess)
        width = check_width(width)
        c = lambda n: scale_channels(n, width)  # noqa: E731
        self.Conv_1a = STConv3d(3, c(64), 7, 2, 3)
        self.MaxPool_2a = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        self.Conv_2b = BasicConv3d(c(64), c(64), 1)
        self.Conv_2c = STConv3d(c(64), c(192), 3, 1, 1)
        self.MaxPool_3a = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        in_planes = c(192)
        for name, planes in _INCEPTION.items():
            if name == "Mixed_4b":
                self.MaxPool_4a = nn.MaxPool3d(3, 2, 1)
            if name == "Mixed_5b":
                self.MaxPool_5a = nn.MaxPool3d(2, 2, 0)
            block = SepInception(in_planes, [c(p) for p in planes], gating)
            setattr(self, name, block)
            in_planes = block.out_channels
        self.embed_dim = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_body(self, x):
        x = self.Conv_1a(x)
        x = self.MaxPool_2a(x)
        x = self.Conv_2c(self.Conv_2b(x))
        x = self.MaxPool_3a(x)
        for name in _INCEPTION:
            if name == "Mixed_4b":
                x = self.MaxPool_4a(x)
            if name == "Mixed_5b":
                x = self.MaxPool_5a(x)
            x = getattr(self, name)(x)
        return x
