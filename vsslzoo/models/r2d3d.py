"""R-2D3D-18 (DPC / MemDPC ``backbone/resnet_2d3d.py``, ``resnet18_2d3d_full``).

A ResNet-18 whose stem and first two stages are 2D (1x3x3 kernels, spatial stride only)
and whose last two stages are 3D (3x3x3 kernels, stride 2 in T, H and W). Quirks kept
from the reference: stem conv (1,7,7) stride (1,2,2) + max-pool (1,3,3)/(1,2,2),
**layer4 has 256 channels**, and the last block of layer4 has no final ReLU. Keys follow
the reference (``conv1``, ``bn1``, ``layerX.Y.conv1``, ``downsample.0``), so DPC/MemDPC
checkpoints load after stripping their ``module.backbone.`` prefix. 16x128^2 -> 256x4x4x4.
"""

from __future__ import annotations

from torch import nn

from ..config import PreprocessConfig
from .common import VideoBackbone, check_width, scale_channels


class _Block(nn.Module):
    """ResNet basic block, 2D (1x3x3) or 3D (3x3x3); optional final ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int, is_3d: bool, final_relu: bool):
        super().__init__()
        if is_3d:
            kernel, pad, first_stride = (3, 3, 3), (1, 1, 1), (stride, stride, stride)
        else:
            kernel, pad, first_stride = (1, 3, 3), (0, 1, 1), (1, stride, stride)
        self.conv1 = nn.Conv3d(in_planes, planes, kernel, first_stride, pad, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(planes, planes, kernel, 1, pad, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.final_relu = final_relu
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, 1, first_stride, bias=False),
                nn.BatchNorm3d(planes),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + identity
        return self.relu(out) if self.final_relu else out


class ResNet2d3d18(VideoBackbone):
    """R-2D3D-18: 256-d features at width 1."""

    def __init__(self, *, width: float = 1.0, preprocess: PreprocessConfig | None = None):
        super().__init__(preprocess)
        width = check_width(width)
        stem = scale_channels(64, width)
        self.conv1 = nn.Conv3d(3, stem, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))
        in_planes = stem
        stages = ((64, 1, False), (128, 2, False), (256, 2, True), (256, 2, True))
        for index, (base, stride, is_3d) in enumerate(stages, start=1):
            planes = scale_channels(base, width)
            is_last = index == len(stages)
            blocks = [
                _Block(in_planes, planes, stride, is_3d, final_relu=True),
                _Block(planes, planes, 1, is_3d, final_relu=not is_last),
            ]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            in_planes = planes
        self.embed_dim = in_planes
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_body(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)
