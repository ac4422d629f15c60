"""CORP training samples: K augmented clips of one video, in time order (paper §3.2).

Per video: K clip starts by Eq. 3 (:mod:`.sampling`); each clip T frames at stride D,
decoded with the short side at ``decode_short`` pixels; then, per clip and identical for
every frame of the clip (§3.2, following CVRL):

1. random resized crop to ``crop x crop`` (done here, on the decoded frames);
2. horizontal flip with probability 0.5;
3. colour jitter with probability 0.8;
4. grayscale with probability 0.2;
5. Gaussian blur.

Steps 2-5 are *drawn* here (so a run is a function of the seed and resumes exactly) and
*applied* on the training device by :func:`apply_augmentations` (batched,
:mod:`vsslzoo.training.data.augment`), which keeps DataLoader workers on decoding.

The sample is a dict (the DataLoader stacks a batch dimension B in front):

=============  ====================  ==========================================
key            shape, dtype          meaning
=============  ====================  ==========================================
``clips``      (K, 3, T, S, S) uint8  the cropped clips, earliest first
``starts``     (K,) float32           start of each clip, in source frames
``flip``       (K,) bool              mirror the clip
``jitter``     (K, 4) float32         brightness, contrast, saturation factors, hue
``grayscale``  (K,) bool              replace by luma
``blur_sigma`` (K,) float32           Gaussian sigma in pixels (0: no blur)
=============  ====================  ==========================================

Choices (the paper cites CVRL [37] for the augmentations and gives no numbers):

* crop area uniform in [0.3, 1] of the frame and aspect ratio log-uniform in [0.5, 2]
  (CVRL's), torchvision's ten-attempt algorithm with a centre-crop fallback;
* jitter strengths (0.4, 0.4, 0.4, 0.1) (SimCLR's s = 0.5);
* blur with probability 0.5, sigma uniform in [0.1, 2.0] px at 224 px and scaled with the
  crop size, kernel 10% of the crop (odd), as SimCLR;
* frames decoded with the short side at ``decode_short`` (256 for a 224 crop) rather than
  at full resolution: bounded decode cost, and the crop is resized anyway.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vsslzoo.video.probe import probe
from vsslzoo.video.sampling import ClipPlan, ClipSpan

from ..data import augment
from ..data.frames import read_plans, resized_crop
from .sampling import SAMPLING_METHODS, draw_clip_starts


@dataclass(frozen=True)
class CorpDataConfig:
    num_clips: int = 2  # K: 2 for CORP_f, 2..4 for CORP_m
    num_frames: int = 16  # T
    frame_stride: int = 2  # D: 2 on K400, 1 on SSv2 (§4.1)
    decode_short: int = 256
    crop: int = 224
    crop_area: tuple[float, float] = (0.3, 1.0)
    crop_aspect: tuple[float, float] = (0.5, 2.0)
    flip_prob: float = 0.5
    jitter_prob: float = 0.8
    jitter_strength: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    grayscale_prob: float = 0.2
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)  # pixels at a 224 crop
    blur_kernel_fraction: float = 0.1
    sampling: str = "rejection"  # or "direct" (same law, see .sampling)

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, valid: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {valid}, got {getattr(self, name)!r}")

        check("num_clips", self.num_clips >= 2, ">= 2")
        check("num_frames", self.num_frames >= 1, ">= 1")
        check("frame_stride", self.frame_stride >= 1, ">= 1")
        check("crop", self.crop >= 8, ">= 8 pixels")
        check("decode_short", self.decode_short >= 1, ">= 1 pixel")
        lo, hi = self.crop_area
        check("crop_area", 0 < lo <= hi <= 1, "(low, high) with 0 < low <= high <= 1")
        lo, hi = self.crop_aspect
        check("crop_aspect", 0 < lo <= hi, "(low, high) with 0 < low <= high")
        for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob"):
            check(name, 0 <= getattr(self, name) <= 1, "in [0, 1]")
        check("jitter_strength", min(self.jitter_strength) >= 0 and self.jitter_strength[3]
              <= 0.5, "four values >= 0, the hue one <= 0.5")
        check("blur_sigma", 0 < self.blur_sigma[0] <= self.blur_sigma[1], "0 < low <= high")
        check("blur_kernel_fraction", 0 < self.blur_kernel_fraction < 1, "in (0, 1)")
        check("sampling", self.sampling in SAMPLING_METHODS, f"one of {SAMPLING_METHODS}")

    @property
    def blur_kernel(self) -> int:
        """Odd kernel width, ``blur_kernel_fraction`` of the crop (23 at 224)."""
        size = int(self.crop * self.blur_kernel_fraction)
        return max(3, size + 1 - size % 2)


def random_resized_crop_box(height: int, width: int, area: tuple[float, float],
                            aspect: tuple[float, float], rng: np.random.Generator
                            ) -> tuple[int, int, int, int]:
    """torchvision's ``RandomResizedCrop.get_params``: ``(top, left, h, w)`` of a crop
    with ``area`` fraction of the frame and ``aspect`` (w/h) log-uniform; ten attempts,
    then the largest centred crop whose aspect ratio is within range."""
    total = height * width
    log_lo, log_hi = math.log(aspect[0]), math.log(aspect[1])
    for _ in range(10):
        target = total * rng.uniform(*area)
        ratio = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    ratio = width / height
    if ratio < aspect[0]:
        w, h = width, int(round(width / aspect[0]))
    elif ratio > aspect[1]:
        h, w = height, int(round(height * aspect[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def draw_augmentations(num_clips: int, config: CorpDataConfig, rng: np.random.Generator
                       ) -> dict[str, torch.Tensor]:
    """Flip, colour jitter, grayscale and blur parameters for ``num_clips`` clips."""
    generator = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
    jitter = augment.sample_colour_jitter(num_clips, config.jitter_strength,
                                          p=config.jitter_prob, generator=generator)
    scale = config.crop / 224
    sigma = rng.uniform(config.blur_sigma[0], config.blur_sigma[1], num_clips) * scale
    blurred = rng.random(num_clips) < config.blur_prob
    return {
        "flip": torch.from_numpy(rng.random(num_clips) < config.flip_prob),
        "jitter": torch.stack([jitter.brightness, jitter.contrast, jitter.saturation,
                               jitter.hue], dim=1).float(),
        "grayscale": torch.from_numpy(rng.random(num_clips) < config.grayscale_prob),
        "blur_sigma": torch.from_numpy(np.where(blurred, sigma, 0.0)).float(),
    }


def apply_augmentations(clips: torch.Tensor, batch: dict[str, torch.Tensor],
                        blur_kernel: int) -> torch.Tensor:
    """Flip, colour jitter, grayscale, blur (§3.2 steps 2-5, in that order) on
    ``clips`` (N, 3, T, H, W), 0..255, with the parameters of ``batch`` flattened to N
    clips. Returns float32 pixels 0..255."""
    x = clips.float()
    x = augment.hflip(x, batch["flip"].reshape(-1))
    jitter = batch["jitter"].reshape(-1, 4).float()
    x = augment.colour_jitter(x, *jitter.unbind(1))
    x = augment.grayscale(x, batch["grayscale"].reshape(-1))
    sigma = batch["blur_sigma"].reshape(-1)
    if bool((sigma > 0).any()):
        x = augment.gaussian_blur(x, sigma, blur_kernel)
    return x


def build_sample(read: Callable[[list[ClipPlan]], dict[int, np.ndarray]],
                 num_video_frames: float, fps: float, config: CorpDataConfig,
                 rng: np.random.Generator) -> dict:
    """The sample of one video whose ``num_video_frames`` frames at ``fps`` are read by
    ``read(plans) -> {plan.span.index: (3, T, H, W) uint8}`` (the decoder, or frames
    already in memory)."""
    starts = draw_clip_starts(num_video_frames, config.num_frames, config.frame_stride,
                              config.num_clips, rng, method=config.sampling)
    plans = []
    for index, start in enumerate(starts):
        times = tuple((start + k * config.frame_stride) / fps for k in range(config.num_frames))
        plans.append(ClipPlan(ClipSpan(index, times[0], times[-1] + 1 / fps), times))
    decoded = read(plans)
    clips = []
    for index in range(config.num_clips):
        frames = decoded[index]
        box = random_resized_crop_box(frames.shape[2], frames.shape[3], config.crop_area,
                                      config.crop_aspect, rng)
        clips.append(resized_crop(frames, box, config.crop))
    return {"clips": torch.stack(clips), "starts": torch.from_numpy(starts).float(),
            **draw_augmentations(config.num_clips, config, rng)}


def video_frames(info) -> int:
    """L of Eq. 3: frames in the video, from its duration (a hundredth of a frame of
    timestamp rounding tolerated: a 32-frame file may report 31.99 frames)."""
    return math.floor(info.duration_s * info.fps + 0.01)


def corp_sample(path: str, rng: np.random.Generator, config: CorpDataConfig) -> dict:
    """One video's training sample (see the module docstring for the keys).

    Raises:
        ClipSamplingError: the video is too short for K clips (Eq. 3); the dataset skips it.
        VideoDecodeError: the file cannot be decoded; the dataset skips it.
    """
    info = probe(path)

    def read(plans: list[ClipPlan]) -> dict[int, np.ndarray]:
        return read_plans(path, plans, info, config.decode_short, at_least=config.crop)

    return build_sample(read, video_frames(info), info.fps, config, rng)
