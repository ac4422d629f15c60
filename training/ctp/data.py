"""CtP training samples: a clip with pasted patches and their trajectories.

Per video (paper §5.1 for the clip length, stride range and resolution; the rest is the
reference pipeline, microsoft/CtP ``configs/ctp/pretraining_runtime_ucf.py``): 16 frames
at a frame stride drawn from 1..5 starting at a random time; the short side scaled to
112 / 128 / 144, a random 112 x 112 crop, a horizontal flip with probability 0.5, mild
colour jitter; then three trajectories are synthesised in crop coordinates and their
patches pasted (with MRM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from vsslzoo.video.probe import probe
from vsslzoo.video.sampling import ClipPlan, ClipSpan

from ..data.frames import read_plans
from .paste import PasteConfig, paste_patches
from .trajectories import TrajectoryConfig, sample_trajectories


@dataclass(frozen=True)
class CtPDataConfig:
    num_frames: int = 16
    strides: tuple[int, ...] = (1, 2, 3, 4, 5)
    short_sides: tuple[int, ...] = (112, 128, 144)
    crop: int = 112
    flip_prob: float = 0.5
    brightness: float = 0.2  # "mild" jitter strengths (the reference gives no numbers)
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05  # fraction of a full turn
    trajectories: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    paste: PasteConfig = field(default_factory=PasteConfig)


def colour_jitter(clip: torch.Tensor, rng: np.random.Generator, config: CtPDataConfig
                  ) -> torch.Tensor:
    """Brightness, contrast, saturation and hue (YIQ rotation) on ``(3, T, H, W)`` 0..255,
    the same for every frame of the clip."""
    factor = 1 + rng.uniform(-config.brightness, config.brightness)
    clip = clip * factor
    mean = clip.mean()
    clip = (clip - mean) * (1 + rng.uniform(-config.contrast, config.contrast)) + mean
    grey = (0.299 * clip[0] + 0.587 * clip[1] + 0.114 * clip[2])[None]
    clip = grey + (clip - grey) * (1 + rng.uniform(-config.saturation, config.saturation))
    angle = 2 * math.pi * rng.uniform(-config.hue, config.hue)
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322],
                           [0.211, -0.523, 0.312]])
    cos, sin = math.cos(angle), math.sin(angle)
    rotate = torch.tensor([[1.0, 0, 0], [0, cos, -sin], [0, sin, cos]])
    matrix = torch.linalg.inv(to_yiq) @ rotate @ to_yiq
    clip = torch.einsum("ij,jthw->ithw", matrix, clip)
    return clip.clamp(0, 255)


def ctp_sample(path: str, rng: np.random.Generator, config: CtPDataConfig) -> dict:
    """One training sample: ``clip`` (3, T, crop, crop) float 0..255, ``boxes`` (N, T, 4)."""
    info = probe(path)
    stride = int(rng.choice(config.strides))
    step = stride / info.fps
    length = config.num_frames * step
    start = rng.uniform(0, max(info.duration_s - length, 0.0))
    plan = ClipPlan(ClipSpan(0, start, start + length),
                    tuple(start + k * step for k in range(config.num_frames)))
    short = int(rng.choice(config.short_sides))
    frames = read_plans(path, [plan], info, short, at_least=config.crop)[0]
    height, width = frames.shape[-2:]
    top = int(rng.integers(0, height - config.crop + 1))
    left = int(rng.integers(0, width - config.crop + 1))
    clip = torch.from_numpy(frames[:, :, top:top + config.crop, left:left + config.crop]).float()
    if rng.random() < config.flip_prob:
        clip = clip.flip(-1)
    clip = colour_jitter(clip, rng, config)
    trajectories = sample_trajectories(config.num_frames, config.crop, config.crop, rng,
                                       config.trajectories)
    clip, _ = paste_patches(clip, trajectories.boxes, rng, config.paste)
    return {"clip": clip, "boxes": torch.from_numpy(trajectories.boxes).float()}
