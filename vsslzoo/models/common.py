"""Pieces every backbone shares: the uint8 input module, the embedding head, widths.

Input convention (DESIGN.md): a backbone takes *pixels*, ``(B, 3, T, H, W)`` in RGB on
the 0..255 scale, as uint8 (what the decoder produces) or as a float tensor on the same
scale (what GPU augmentations produce during training). Its first module turns them into
normalised floats, ``(x / 255 - mean) / std``, folded into one multiply-add. Mean and std
come from the model's :class:`~vsslzoo.config.PreprocessConfig`; they are not weights
(non-persistent buffers), so checkpoints from other code bases load unchanged.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import Sequence

import torch
from torch import nn

from ..config import PreprocessConfig


def scale_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Channels of a layer in a model of relative ``width``.

    ``width == 1`` returns ``channels`` unchanged (so full-size models match their
    reference exactly); otherwise rounds to a multiple of ``divisor`` (at least one
    ``divisor``) to keep kernels efficient.
    """
    if width == 1.0:
        return channels
    scaled = int(channels * width + divisor / 2) // divisor * divisor
    return max(divisor, scaled)


def check_width(width: float) -> float:
    if not (0 < float(width) <= 4):
        raise ValueError(f"width multiplier must be in (0, 4], got {width}")
    return float(width)


class InputNormalization(nn.Module):
    """Pixels ``(B, 3, T, H, W)`` (uint8 or float, 0..255, RGB) -> normalised float32.

    Computes ``(x / 255 - mean) / std`` as ``x * scale + shift``; reorders channels to
    BGR first when the network was trained on BGR. With ``statistics="clip"`` (preprocess
    ``normalize="clip"``) each clip is instead standardised by its own statistics over
    (C, T, H, W): ``(x - m) / sqrt(v + 1)`` on the 0..255 scale (``v`` the variance; the
    +1 keeps flat clips finite and the gradient bounded: ``sqrt`` at 0 has an infinite
    slope, which turned a training run's crop network into NaN), invariant to a
    brightness offset and nearly to a contrast gain applied to the whole clip. With
    ``statistics="frame"`` (``normalize="frame"``) the same is done per frame, over
    (C, H, W): invariant also to offsets and gains that change from frame to frame
    (flicker, auto-exposure).
    """

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        channel_order: str = "rgb",
        statistics: str = "dataset",
    ) -> None:
        super().__init__()
        if statistics not in ("dataset", "clip", "frame"):
            raise ValueError(f"statistics must be 'dataset', 'clip' or 'frame', "
                             f"got {statistics!r}")
        self.statistics = statistics
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1, 1)
        if channel_order == "bgr":
            # mean/std are given in the network's order; the input is RGB.
            self.flip_channels = True
        elif channel_order == "rgb":
            self.flip_channels = False
        else:
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}")
        self.register_buffer("scale", 1.0 / (255.0 * std_t), persistent=False)
        self.register_buffer("shift", -mean_t / std_t, persistent=False)

    @classmethod
    def from_config(cls, preprocess: PreprocessConfig) -> InputNormalization:
        return cls(preprocess.mean, preprocess.std, preprocess.channel_order,
                   statistics=preprocess.normalize)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        if pixels.dim() != 5 or pixels.shape[1] != 3:
            raise ValueError(
                f"expected clips of shape (B, 3, T, H, W), got {tuple(pixels.shape)}"
            )
        if self.flip_channels:
            pixels = pixels.flip(1)
        # Compute in float32 (never in uint8, never in the autocast dtype: a 0..255
        # range loses precision in fp16); the first convolution casts as autocast says.
        if self.statistics != "dataset":
            x = pixels.to(self.scale.dtype)
            dims = (1, 2, 3, 4) if self.statistics == "clip" else (1, 3, 4)
            variance, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
            return (x - mean) * (variance + 1.0).rsqrt()
        return pixels.to(self.scale.dtype) * self.scale + self.shift


class VideoBackbone(nn.Module, metaclass=ABCMeta):
    """Base class: pixels -> ``forward_features`` (B, C, T', H', W') -> ``forward`` (B, C).

    Subclasses set ``self.embed_dim`` and implement ``forward_body(x)`` on normalised
    float input. The embedding head is global average pooling over (T', H', W').
    """

    embed_dim: int
    # model_args ``flip_invariant=True`` (set by :func:`vsslzoo.models.build`): the
    # feature map is symmetrised, 0.5 * (f(x) + mirror(f(mirror(x)))), so a horizontally
    # flipped clip gives the mirrored map and exactly the same pooled embedding (costs a
    # second pass through the body)
    flip_invariant: bool = False

    def __init__(self, preprocess: PreprocessConfig | None = None) -> None:
        super().__init__()
        self.normalize = InputNormalization.from_config(preprocess or PreprocessConfig())

    @abstractmethod
    def forward_body(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (B, 3, T, H, W) float -> (B, C, T', H', W') features."""

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) pixels -> (B, C, T', H', W') feature map."""
        x = self.normalize(pixels)
        if self.flip_invariant:  # two passes, not one of 2B: keeps the batch dim dynamic
            # normalising commutes with the mirror (per-pixel affine, or statistics over
            # whole frames), so the input is normalised once
            mirrored = self.forward_body(x.flip(-1))
            return 0.5 * (self.forward_body(x) + mirrored.flip(-1))
        return self.forward_body(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C, T', H', W') -> (B, C) by global average pooling."""
        return features.mean(dim=(2, 3, 4))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) pixels -> (B, embed_dim) embedding (not L2-normalised)."""
        return self.forward_head(self.forward_features(pixels))
