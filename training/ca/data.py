"""Controllable sampling tau_p (paper §3, §3.1, §4.2): one global view and K local clips
per video, with every crop, flip and time interval recorded.

Per video of duration T seconds:

* **global view**: ``num_frames`` frames sampled sparsely over the whole video (TSN
  style: the video is cut into ``num_frames`` equal segments and one frame is taken from
  each, at a random time inside it, or at its centre with ``global_jitter=False``), so
  frame m stands for ``[m T / F, (m + 1) T / F)`` and the view spans ``[0, T]``; a *weak*
  random crop (area ``global_scale`` of the frame, aspect ``aspect``), flipped with
  probability ``flip_prob``.
* **local clips** k = 1..K: ``num_frames`` consecutive frames ``clip_stride`` source
  frames apart whose centre time lies in ``[(k-1) T / K, k T / K]`` (§3.1; clamped so
  the clip stays inside the video); a random crop *inside the global crop* (area
  ``local_scale`` of the global crop), flipped independently.
* all crops are resized to ``crop x crop`` (bilinear, antialiased).

Choices (the paper gives none): the local clips' frame stride (2, the stride of the
evaluation protocol), the crop scales, and the decode size (short side 128, centre
128 x 171, the usual UCF/K400 pretraining frame).

A sample is a dict: ``global`` (3, F, crop, crop) uint8, ``clips`` (K, 3, F, crop, crop)
uint8, ``global_box`` (4,) and ``clip_boxes`` (K, 4) as ``(x0, y0, x1, y1)`` fractions
of the decoded frame, ``global_span`` (2,) and ``clip_spans`` (K, 2) in seconds,
``global_flip`` () and ``clip_flips`` (K,) bool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from vsslzoo.video.probe import probe
from vsslzoo.video.sampling import ClipPlan, ClipSpan

from ..data.frames import VideoTooShortError, read_plans, resized_crop


@dataclass(frozen=True)
class CADataConfig:
    num_frames: int = 16
    clips: int = 4  # K
    clip_stride: int = 2  # source frames between two frames of a local clip
    crop: int = 112
    decode_short: int = 128
    decode_size: tuple[int, int] = (128, 171)  # (H, W) centre crop of the decoded frame
    global_scale: tuple[float, float] = (0.5, 1.0)  # "weak" crop: area fraction of frame
    local_scale: tuple[float, float] = (0.2, 0.8)  # area fraction of the global crop
    aspect: tuple[float, float] = (3 / 4, 4 / 3)
    flip_prob: float = 0.5
    global_jitter: bool = True

    def __post_init__(self) -> None:
        if self.num_frames < 1 or self.clips < 1 or self.clip_stride < 1:
            raise ValueError("num_frames, clips and clip_stride must be >= 1, got "
                             f"{self.num_frames}, {self.clips}, {self.clip_stride}")
        for name in ("global_scale", "local_scale"):
            low, high = getattr(self, name)
            if not 0 < low <= high <= 1:
                raise ValueError(f"{name} must satisfy 0 < low <= high <= 1, got {(low, high)}")
        if not 0 < self.aspect[0] <= self.aspect[1]:
            raise ValueError(f"aspect must satisfy 0 < low <= high, got {self.aspect}")
        if self.crop > min(self.decode_size):
            raise ValueError(f"crop {self.crop} is larger than decode_size {self.decode_size}")
        if not 0 <= self.flip_prob <= 1:
            raise ValueError(f"flip_prob must lie in [0, 1], got {self.flip_prob}")


def random_box(rng: np.random.Generator, height: int, width: int,
               scale: tuple[float, float], aspect: tuple[float, float]
               ) -> tuple[int, int, int, int]:
    """A RandomResizedCrop-style box ``(x0, y0, x1, y1)`` in integer pixels of a
    ``height x width`` region: area fraction in ``scale``, aspect (w/h) log-uniform in
    ``aspect``, clipped to the region."""
    area = height * width * rng.uniform(*scale)
    ratio = math.exp(rng.uniform(math.log(aspect[0]), math.log(aspect[1])))
    box_w = int(round(min(max(math.sqrt(area * ratio), 1), width)))
    box_h = int(round(min(max(math.sqrt(area / ratio), 1), height)))
    x0 = int(rng.integers(0, width - box_w + 1))
    y0 = int(rng.integers(0, height - box_h + 1))
    return x0, y0, x0 + box_w, y0 + box_h


def clip_centres(duration: float, clip_length: float, clips: int,
                 rng: np.random.Generator) -> np.ndarray:
    """Centre time of each local clip: uniform in ``[(k-1) T/K, k T/K]`` intersected
    with ``[L/2, T - L/2]`` (the clip must fit), or the nearest time that fits."""
    half = clip_length / 2
    centres = []
    for k in range(clips):
        low = max(k * duration / clips, half)
        high = min((k + 1) * duration / clips, duration - half)
        centres.append(rng.uniform(low, high) if low <= high else
                       min(max((k + 0.5) * duration / clips, half), duration - half))
    return np.asarray(centres)


def _crop_resize(frames: np.ndarray, box: tuple[int, int, int, int], size: int,
                 flip: bool) -> torch.Tensor:
    """(3, T, H, W) uint8, pixel box ``(x0, y0, x1, y1)`` -> (3, T, size, size) uint8."""
    x0, y0, x1, y1 = box
    clip = resized_crop(frames, (y0, x0, y1 - y0, x1 - x0), size)
    return clip.flip(-1) if flip else clip


def ca_sample(path: str, rng: np.random.Generator, config: CADataConfig) -> dict:
    """One training sample (see the module docstring); raises
    :class:`VideoTooShortError` when a local clip does not fit in the video."""
    info = probe(path)
    duration = info.duration_s
    step = config.clip_stride / info.fps
    clip_length = config.num_frames * step
    if duration < clip_length:
        raise VideoTooShortError(
            f"{path}: {duration:.2f} s is shorter than one local clip ({config.num_frames} "
            f"frames every {config.clip_stride}, {clip_length:.2f} s)")
    frames = config.num_frames
    segment = duration / frames
    offsets = rng.uniform(0, 1, frames) if config.global_jitter else np.full(frames, 0.5)
    global_times = tuple(float(min((m + u) * segment, duration - 1e-3))
                         for m, u in enumerate(offsets))
    plans = [ClipPlan(ClipSpan(0, 0.0, duration), global_times)]
    starts = clip_centres(duration, clip_length, config.clips, rng) - clip_length / 2
    for k, start in enumerate(starts):
        plans.append(ClipPlan(ClipSpan(k + 1, float(start), float(start + clip_length)),
                              tuple(float(start + n * step) for n in range(frames))))
    decoded = read_plans(path, plans, info, config.decode_short, crop=config.decode_size)
    height, width = config.decode_size
    g_box = random_box(rng, height, width, config.global_scale, config.aspect)
    g_flip = bool(rng.random() < config.flip_prob)
    clips, boxes, flips = [], [], []
    for k in range(config.clips):
        gx0, gy0, gx1, gy1 = g_box
        x0, y0, x1, y1 = random_box(rng, gy1 - gy0, gx1 - gx0, config.local_scale,
                                    config.aspect)
        box = (gx0 + x0, gy0 + y0, gx0 + x1, gy0 + y1)
        flip = bool(rng.random() < config.flip_prob)
        clips.append(_crop_resize(decoded[k + 1], box, config.crop, flip))
        boxes.append(box)
        flips.append(flip)
    scale = np.array([width, height, width, height], dtype=np.float64)
    return {
        "global": _crop_resize(decoded[0], g_box, config.crop, g_flip),
        "clips": torch.stack(clips),
        "global_box": torch.from_numpy(np.asarray(g_box) / scale).float(),
        "clip_boxes": torch.from_numpy(np.asarray(boxes) / scale).float(),
        "global_span": torch.tensor([0.0, duration], dtype=torch.float32),
        "clip_spans": torch.from_numpy(np.stack([starts, starts + clip_length], 1)).float(),
        "global_flip": torch.tensor(g_flip),
        "clip_flips": torch.tensor(flips),
    }
