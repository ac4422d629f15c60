"""Backbone builders: ``build(architecture, **model_args) -> nn.Module``.

Every backbone takes pixels ``(B, 3, T, H, W)`` (uint8 or float on 0..255, RGB),
normalises them in its first module, and offers ``forward_features`` ->
``(B, C, T', H', W')`` and ``forward`` -> ``(B, C)`` (global average pooling).

=============  ================================================  ==========================
architecture   reference                                         model_args
=============  ================================================  ==========================
r3d_18         torchvision r3d_18                                width, output_stride, bn_eps
r2plus1d_18    torchvision r2plus1d_18 / microsoft CtP           midplanes, width,
                                                                 output_stride, bn_eps
s3dg           S3D-G (CoCLR layout)                              gating, width
r2d3d_18       DPC resnet18_2d3d_full                            width
r3d_50         CVRL R3D-50                                       width, bn_eps
=============  ================================================  ==========================

Every architecture also takes ``flip_invariant`` (default False): the feature map becomes
``0.5 * (f(x) + mirror(f(mirror(x))))`` (no new weights), so a horizontally flipped clip
gives the mirrored feature map and exactly the same pooled embedding.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import PreprocessConfig
from ..errors import ConfigError, UnknownArchitectureError
from .common import InputNormalization, VideoBackbone
from .r2d3d import ResNet2d3d18
from .resnet3d import VideoResNet18, VideoResNet50
from .s3dg import S3DG

__all__ = [
    "ArchitectureInfo",
    "InputNormalization",
    "VideoBackbone",
    "build",
    "get_architecture",
    "list_architectures",
]


@dataclass(frozen=True)
class ArchitectureInfo:
    name: str
    builder: Callable[..., VideoBackbone]
    description: str
    reference_input: tuple[int, int, int, int]  # (3, T, H, W) the reference was defined at


def _r3d_18(**kwargs: Any) -> VideoBackbone:
    return VideoResNet18("3d", **kwargs)


def _r2plus1d_18(**kwargs: Any) -> VideoBackbone:
    return VideoResNet18("2plus1d", **kwargs)


_ARCHITECTURES: dict[str, ArchitectureInfo] = {
    info.name: info
    for info in (
        ArchitectureInfo("r3d_18", _r3d_18, "3D ResNet-18 (torchvision r3d_18)", (3, 16, 112, 112)),
        ArchitectureInfo(
            "r2plus1d_18", _r2plus1d_18,
            "R(2+1)D-18 (torchvision, or CtP mid-planes with midplanes='ctp')", (3, 16, 112, 112),
        ),
        ArchitectureInfo("s3dg", S3DG, "S3D-G, separable Inception with self-gating",
                         (3, 16, 112, 112)),
        ArchitectureInfo("r2d3d_18", ResNet2d3d18, "R-2D3D-18 (DPC), 256-d", (3, 16, 128, 128)),
        ArchitectureInfo("r3d_50", VideoResNet50, "R3D-50 (CVRL), 2048-d", (3, 16, 224, 224)),
    )
}


def list_architectures() -> list[str]:
    """Names accepted by :func:`build`, sorted."""
    return sorted(_ARCHITECTURES)


def get_architecture(architecture: str) -> ArchitectureInfo:
    try:
        return _ARCHITECTURES[architecture]
    except KeyError:
        close = difflib.get_close_matches(architecture, list(_ARCHITECTURES), n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownArchitectureError(
            f"unknown architecture {architecture!r}{hint} "
            f"Available: {', '.join(list_architectures())}"
        ) from None


def _accepted_args(info: ArchitectureInfo) -> list[str]:
    target = VideoResNet18 if info.builder in (_r3d_18, _r2plus1d_18) else info.builder
    params = inspect.signature(target).parameters
    own = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY and n != "preprocess"]
    return [*own, "flip_invariant"]


def build(
    architecture: str, *, preprocess: PreprocessConfig | None = None, **model_args: Any
) -> VideoBackbone:
    """Build a randomly initialised backbone.

    Args:
        architecture: one of :func:`list_architectures`.
        preprocess: input statistics for the first module (default: Kinetics mean/std).
        **model_args: architecture options (``width``, ``output_stride``, ``midplanes``...).

    Returns:
        A :class:`VideoBackbone` taking ``(B, 3, T, H, W)`` pixels.
    """
    info = get_architecture(architecture)
    accepted = _accepted_args(info)
    unknown = sorted(set(model_args) - set(accepted))
    if unknown:
        raise ConfigError(
            f"architecture {architecture!r} does not take model_args {unknown}; "
            f"it takes {accepted}"
        )
    flip_invariant = model_args.pop("flip_invariant", False)
    if not isinstance(flip_invariant, bool):
        raise ConfigError(f"flip_invariant must be true or false, got {flip_invariant!r}")
    try:
        backbone = info.builder(preprocess=preprocess, **model_args)
    except ValueError as exc:
        raise ConfigError(f"architecture {architecture!r}: {exc}") from exc
    backbone.flip_invariant = flip_invariant
    return backbone
