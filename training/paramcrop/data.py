"""ParamCrop training samples: the two views' input cubes (64 x 128^2 in the paper, §4).

Per video: ``input_frames`` consecutive frames (``input_stride`` source frames apart) from
a random start, decoded with the short side scaled to a random size in
``short_sides`` (inclusive range), then, independently per view, a random
``input_size`` x ``input_size`` window: the standard random crop that §4.2 / Table 2
inserts before ParamCrop ("Rand." + "P.C.", the paper's default thereafter). Both views
share the frames; all temporal disparity comes from ParamCrop. With
``random_crop=False`` both views are the centre ``input_size`` window of a
``input_size`` short side.

Returns ``video1``, ``video2``: ``(3, input_frames, input_size, input_size)`` uint8 (flip,
jitter and ParamCrop itself run batched on the training device, :mod:`.model`).

Choices where the paper is silent (:class:`ParamCropDataConfig` fields): frames
consecutive at the video's own rate (``input_stride`` 1, so a learnt ``s_t = 0.5`` is the
usual stride 2); random-crop short side 128..160 (the crop covers 80-100 % of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vsslzoo.video.probe import probe
from vsslzoo.video.sampling import ClipPlan, ClipSpan

from ..data.frames import VideoTooShortError, read_plans


@dataclass(frozen=True)
class ParamCropDataConfig:
    input_frames: int = 64
    input_stride: int = 1
    input_size: int = 128
    short_sides: tuple[int, int] = (128, 160)  # inclusive range for the random crop
    random_crop: bool = True

    def __post_init__(self) -> None:
        if self.input_frames < 1 or self.input_stride < 1:
            raise ValueError(f"input_frames and input_stride must be >= 1, got "
                             f"{self.input_frames}, {self.input_stride}")
        low, high = self.short_sides
        if not self.input_size <= low <= high:
            raise ValueError(f"short_sides must satisfy input_size ({self.input_size}) <= "
                             f"low <= high, got {self.short_sides}")


def paramcrop_sample(path: str, rng: np.random.Generator, config: ParamCropDataConfig
                     ) -> dict[str, torch.Tensor]:
    """Two views' input cubes of one video (see the module docstring); raises
    :class:`~vsslzoo.training.data.frames.VideoTooShortError` when the video has fewer
    frames than one input cube needs (the dataset skips and counts it)."""
    info = probe(path)
    needed = (config.input_frames - 1) * config.input_stride + 1
    if info.num_frames < needed:
        raise VideoTooShortError(f"{path}: {info.num_frames} frames; a ParamCrop input of "
                                 f"{config.input_frames} frames at stride "
                                 f"{config.input_stride} needs {needed}")
    step = config.input_stride / info.fps
    first = int(rng.integers(0, info.num_frames - needed + 1))
    start = first / info.fps
    plan = ClipPlan(ClipSpan(0, start, start + config.input_frames * step),
                    tuple(start + k * step for k in range(config.input_frames)))
    size = config.input_size
    short = int(rng.integers(config.short_sides[0], config.short_sides[1] + 1)) \
        if config.random_crop else size
    frames = torch.from_numpy(np.ascontiguousarray(
        read_plans(path, [plan], info, short, at_least=size)[0]))
    height, width = frames.shape[-2:]
    views = {}
    for key in ("video1", "video2"):
        if config.random_crop:
            top = int(rng.integers(0, height - size + 1))
            left = int(rng.integers(0, width - size + 1))
        else:
            top, left = (height - size) // 2, (width - size) // 2
        views[key] = frames[:, :, top:top + size, left:left + size].contiguous()
    return views
