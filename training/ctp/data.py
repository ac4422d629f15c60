"""CtP training samples: a clip with pasted patches and their trajectories.

Per video (paper §5.1 for the clip length, stride range and resolution; the rest is the
reference pipeline, microsoft/CtP ``configs/ctp/pretraining_runtime_ucf.py``): 16 frames
at a frame stride drawn from 1..5 starting at a random time; the short side scaled to
112 / 128 / 144, a random 112 x 112 crop, a horizontal flip with probability 0.5, mild
colour jitter; then three trajectories are synthesised in crop coordinates and their
patches pasted (with MRM).

Colour (a deviation; the paper names no pretraining colour augmentation): the jitter is
the shared :func:`vsslzoo.training.data.augment.colour_jitter` (torchvision's
``ColorJitter`` operations), one draw per clip, always applied, before the pasting. The
reference pipeline instead applies, *after* pasting, ``RandomHueSaturation`` (p = 0.25,
hue ±12 OpenCV units, saturation x e^U(±0.1)) and ``DynamicBrightness`` (p = 0.5, ±30
levels) / ``DynamicContrast`` (p = 0.5, x e^U(±0.12)) whose values vary over the clip
between 2-3 key frames (microsoft/CtP ``pyvrl/datasets/transforms/color.py``); that is
not implemented here."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vsslzoo.video.probe import probe
from vsslzoo.video.sampling import ClipPlan, ClipSpan

from ..data import augment
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
    brightness: float = 0.2  # "mild" jitter strengths (not the reference's: module doc)
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.05  # fraction of a full turn
    trajectories: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    paste: PasteConfig = field(default_factory=PasteConfig)


def colour_jitter(clip: torch.Tensor, rng: np.random.Generator, config: CtPDataConfig
                  ) -> torch.Tensor:
    """:func:`vsslzoo.training.data.augment.colour_jitter` of ``(3, T, H, W)`` 0..255 (the
    same for every frame of the clip), always applied: brightness, contrast and
    saturation factors ``1 + U(-s, s)`` and a hue shift ``U(-h, h)`` turns, drawn from
    ``rng`` in that order."""
    factors = [1 + rng.uniform(-config.brightness, config.brightness),
               1 + rng.uniform(-config.contrast, config.contrast),
               1 + rng.uniform(-config.saturation, config.saturation),
               rng.uniform(-config.hue, config.hue)]
    params = torch.tensor(factors, dtype=torch.float32)[:, None]  # (4, B = 1)
    return augment.colour_jitter(clip[None], *params)[0]


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
