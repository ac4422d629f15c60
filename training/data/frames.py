"""Decoding and cropping steps the recipes' samplers share.

* :func:`read_plans`: decode a video's clips (after the recipe has probed it and drawn
  its clip plans from the probe) with the frames' short side scaled to a size, aspect
  ratio kept (neither side below a minimum: CtP, ParamCrop, CORP) or centre-cropped to a
  fixed window (CA), by clip index;
* :func:`resized_crop`: one box of a decoded clip, resized (bilinear, antialiased when
  shrinking) to a square, as uint8;
* :class:`VideoTooShortError`: a video shorter than a recipe's clip sampling needs
  (:class:`~.datasets.ClipDataset` skips and counts it like a broken file).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from vsslzoo.errors import VsslzooError


class VideoTooShortError(VsslzooError):
    """The video is shorter than what one training sample needs (skipped, counted)."""


def short_side_shape(height: int, width: int, short_side: int, at_least: int
                     ) -> tuple[int, int]:
    """``(H, W)`` of a ``height x width`` frame scaled so that its short side is
    ``short_side`` pixels, each side at least ``at_least``."""
    scale = short_side / min(width, height)
    return max(at_least, round(height * scale)), max(at_least, round(width * scale))


def read_plans(path: str, plans: list, info, short_side: int, *, at_least: int = 1,
               crop: tuple[int, int] | None = None) -> dict[int, np.ndarray]:
    """:func:`vsslzoo.video.decode.read_clips` of ``plans`` with the frames scaled to a
    short side of ``short_side`` pixels: the whole scaled frame, each side at least
    ``at_least`` (:func:`short_side_shape`), or with ``crop`` ``(H, W)`` its centre crop of
    that size. ``info`` is the video's probe (the plans are drawn from it). Returns
    ``{plan.span.index: (3, T, H, W) uint8}``."""
    from vsslzoo.video.decode import read_clips

    shape = crop or short_side_shape(info.height, info.width, short_side, at_least)
    return {plan.span.index: frames for plan, frames in
            read_clips(path, plans, resize=short_side, crop=shape, info=info)}


def resized_crop(frames: np.ndarray, box: tuple[int, int, int, int], size: int) -> torch.Tensor:
    """(3, T, H, W) uint8 -> (3, T, size, size) uint8: the box ``(top, left, height,
    width)`` in pixels, bilinearly resized (antialiased when shrinking)."""
    top, left, h, w = box
    region = torch.from_numpy(np.ascontiguousarray(frames[:, :, top:top + h, left:left + w]))
    region = region.permute(1, 0, 2, 3).float()  # (T, 3, h, w)
    out = F.interpolate(region, size=(size, size), mode="bilinear", align_corners=False,
                        antialias=True)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(1, 0, 2, 3)
