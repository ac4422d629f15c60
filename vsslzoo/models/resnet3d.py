"""3D ResNets: R3D-18, R(2+1)D-18 (torchvision and CtP mid-planes), R3D-50 (CVRL).

State-dict keys follow torchvision's video ResNets (``stem.0``, ``layer1.0.conv1.0.0``,
``downsample.0``...), so torchvision-layout checkpoints load without renaming.

* ``r3d_18``: torchvision ``r3d_18``. Stem conv (3,7,7) stride (1,2,2), no max-pool;
  stages 2-4 stride 2 in T, H and W.
* ``r2plus1d_18``: each 3x3x3 conv factorised into (1,3,3) -> BN -> ReLU -> (3,1,1) with
  ``mid = in*out*27 // (in*9 + 3*out)`` channels. ``midplanes="torchvision"`` computes
  it once per block from the block's input width (so conv2 of a stage's first block
  reuses conv1's value), ``midplanes="ctp"`` per conv (microsoft/CtP r3d.py). The CtP
  release also uses BatchNorm eps 1e-3 (``bn_eps``).
* ``output_stride=8`` keeps spatial stride 1 in the last stage (CtP pretraining); the
  weights are the same as at the default 16.
* ``r3d_50``: CVRL's R3D-50 (3D ResNet-50, I3D style): stem conv (5,7,7) stride (2,2,2)
  then max-pool (1,3,3)/(1,2,2); bottlenecks whose first 1x1 conv has temporal kernel
  1/1/3/3 in stages 2/3/4/5; spatial strides 1/2/2/2, no further temporal striding.
"""

from __future__ import annotations

from torch import nn

from ..config import PreprocessConfig
from .common import VideoBackbone, check_width, scale_channels


def _bn(channels: int, eps: float) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, eps=eps)


def _conv3x3x3(in_planes: int, out_planes: int, t_stride: int, s_stride: int) -> nn.Conv3d:
    return nn.Conv3d(
        in_planes, out_planes, 3, stride=(t_stride, s_stride, s_stride), padding=1, bias=False
    )


def _conv2plus1d(
    in_planes: int, out_planes: int, mid_planes: int, t_stride: int, s_stride: int, eps: float
) -> nn.Sequential:
    """(1,3,3) spatial conv -> BN -> ReLU -> (3,1,1) temporal conv."""
    return nn.Sequential(
        nn.Conv3d(
            in_planes, mid_planes, (1, 3, 3), (1, s_stride, s_stride), (0, 1, 1), bias=False
        ),
        _bn(mid_planes, eps),
        nn.ReLU(inplace=True),
        nn.Conv3d(mid_planes, out_planes, (3, 1, 1), (t_stride, 1, 1), (1, 0, 0), bias=False),
    )


def _midplanes(in_planes: int, out_planes: int) -> int:
    return (in_planes * out_planes * 27) // (in_planes * 9 + 3 * out_planes)


class BasicBlock(nn.Module):
    """Two convolutions with a residual connection (ResNet-18 block)."""

    def __init__(
        self,
        in_planes: int,
        planes: int,
        stride: int | tuple[int, int, int],
        conv: str,
        midplanes: str,
        eps: float,
    ) -> None:
        super().__init__()
        st, ss = (stride, stride) if isinstance(stride, int) else (stride[0], stride[1])
        if conv == "3d":
            conv1: nn.Module = _conv3x3x3(in_planes, planes, st, ss)
            conv2: nn.Module = _conv3x3x3(planes, planes, 1, 1)
        else:
            mid1 = _midplanes(in_planes, planes)
            mid2 = mid1 if midplanes == "torchvision" else _midplanes(planes, planes)
            conv1 = _conv2plus1d(in_planes, planes, mid1, st, ss, eps)
            conv2 = _conv2plus1d(planes, planes, mid2, 1, 1, eps)
        self.conv1 = nn.Sequential(conv1, _bn(planes, eps), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv2, _bn(planes, eps))
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if (st, ss) != (1, 1) or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, planes, 1, stride=(st, ss, ss), bias=False),
                _bn(planes, eps),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + identity)


class VideoResNet18(VideoBackbone):
    """R3D-18 or R(2+1)D-18. See the module docstring for the variants."""

    def __init__(
        self,
        conv: str = "3d",
        *,
        midplanes: str = "torchvision",
        width: float = 1.0,
        output_stride: int = 16,
        bn_eps: float = 1e-5,
        preprocess: PreprocessConfig | None = None,
    ) -> None:
        super().__init__(preprocess)
        if conv not in ("3d", "2plus1d"):
            raise ValueError(f"conv must be '3d' or '2plus1d', got {conv!r}")
        if midplanes not in ("torchvision", "ctp"):
            raise ValueError(f"midplanes must be 'torchvision' or 'ctp', got {midplanes!r}")
        if output_stride not in (8, 16):
            raise ValueError(f"output_stride must be 8 or 16, got {output_stride}")
        width = check_width(width)
        widths = [scale_channels(c, width) for c in (64, 128, 256, 512)]
        if conv == "3d":
            self.stem = nn.Sequential(
                nn.Conv3d(3, widths[0], (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False),
                _bn(widths[0], bn_eps),
                nn.ReLU(inplace=True),
            )
        else:
            stem_mid = scale_channels(45, width)
            self.stem = nn.Sequential(
                nn.Conv3d(3, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
                _bn(stem_mid, bn_eps),
                nn.ReLU(inplace=True),
                nn.Conv3d(stem_mid, widths[0], (3, 1, 1), (1, 1, 1), (1, 0, 0), bias=False),
                _bn(widths[0], bn_eps),
                nn.ReLU(inplace=True),
            )
        last_spatial = 2 if output_stride == 16 else 1
        strides = [(1, 1), (2, 2), (2, 2), (2, last_spatial)]
        in_planes = widths[0]
        for index, (planes, (st, ss)) in enumerate(zip(widths, strides), start=1):
            blocks = [BasicBlock(in_planes, planes, (st, ss), conv, midplanes, bn_eps)]
            blocks.append(BasicBlock(planes, planes, 1, conv, midplanes, bn_eps))
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            in_planes = planes
        self.embed_dim = widths[-1]
        _init_weights(self)

    def forward_body(self, x):
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)


class Bottleneck(nn.Module):
    """1x1 (temporal kernel kt) -> (1,3,3) strided -> 1x1, x4 expansion."""

    expansion = 4

    def __init__(
        self, in_planes: int, planes: int, spatial_stride: int, temporal_kernel: int, eps: float
    ) -> None:
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv3d(
            in_planes, planes, (temporal_kernel, 1, 1), padding=(temporal_kernel // 2, 0, 0),
            bias=False,
        )
        self.bn1 = _bn(planes, eps)
        self.conv2 = nn.Conv3d(
            planes, planes, (1, 3, 3), (1, spatial_stride, spatial_stride), (0, 1, 1), bias=False
        )
        self.bn2 = _bn(planes, eps)
        self.conv3 = nn.Conv3d(planes, out_planes, 1, bias=False)
        self.bn3 = _bn(out_planes, eps)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if spatial_stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(
                    in_planes, out_planes, 1, stride=(1, spatial_stride, spatial_stride),
                    bias=False,
                ),
                _bn(out_planes, eps),
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class VideoResNet50(VideoBackbone):
    """CVRL R3D-50 (3D ResNet-50, 2048-d at width 1)."""

    def __init__(
        self,
        *,
        width: float = 1.0,
        bn_eps: float = 1e-5,
        preprocess: PreprocessConfig | None = None,
    ) -> None:
        super().__init__(preprocess)
        width = check_width(width)
        stem_width = scale_channels(64, width)
        self.stem = nn.Sequential(
            nn.Conv3d(3, stem_width, (5, 7, 7), (2, 2, 2), (2, 3, 3), bias=False),
            _bn(stem_width, bn_eps),
            nn.ReLU(inplace=True),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        depths = (3, 4, 6, 3)
        temporal_kernels = (1, 1, 3, 3)
        spatial_strides = (1, 2, 2, 2)
        in_planes = stem_width
        for index, (depth, kt, ss, base) in enumerate(
            zip(depths, temporal_kernels, spatial_strides, (64, 128, 256, 512)), start=1
        ):
            planes = scale_channels(base, width)
            blocks = []
            for block_index in range(depth):
                blocks.append(
                    Bottleneck(in_planes, planes, ss if block_index == 0 else 1, kt, bn_eps)
                )
                in_planes = planes * Bottleneck.expansion
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
        self.embed_dim = in_planes
        _init_weights(self)

    def forward_body(self, x):
        x = self.stem(x)
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)


def _init_weights(module: nn.Module) -> None:
    """Kaiming-normal convs (fan_out, ReLU), BN weight 1 / bias 0, as torchvision."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
