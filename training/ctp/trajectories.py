"""CtP trajectory synthesis (paper §3.3, §5.1 and Appendix G; details from the reference
code, ``PatchMask`` in microsoft/CtP ``pyvrl/models/pretraining/ctp/ctp_transforms.py``).

A trajectory is a box ``(cx, cy, w, h)`` (pixels) per frame of a clip:

1. Start box: side from ``scales`` x ``ratios`` (``w = s * sqrt(r)``, ``h = s / sqrt(r)``),
   each side jittered by ``exp(U(-0.18, 0.18))``, placed uniformly inside the frame.
2. Key frames: the first and last frame always, plus 1 / 2 / 3 inner key frames with
   equal probability (3 to 5 key frames, Appendix G), evenly spaced with a jitter of
   +-1/3 of the spacing (kept distinct and in order).
3. Frames between key frames are interpolated: linearly, or accelerating (u^2) or
   decelerating (1 - (1 - u)^2), chosen per trajectory; sizes geometrically.
4. Between neighbouring key frames ``dT`` apart: the size changes by one factor and the
   centre moves by an offset per axis, drawn so that the §5.1 limits hold between *every
   two successive frames*: at most 3 px of motion per axis and a size ratio within
   ``[e^-0.025, e^0.025]``. A linear segment makes ``1/dT`` of its change per frame, so
   that is ``U(-3 dT, 3 dT)`` px and ``exp(U(-0.025 dT, 0.025 dT))`` (Appendix G's key
   frame constraints, exactly); an eased segment makes up to ``(2 dT - 1) / dT^2`` of it
   in one frame (its last / first step), so its ranges shrink by that ratio. The centre
   range is restricted so that the box stays inside the frame.

Choices the paper leaves open, written here and switchable in :class:`TrajectoryConfig`:

* Key frames: the paper says "3 to 5" (Appendix G), with no distribution: default 1, 2
  or 3 inner key frames with equal probability. The reference code draws 2 to 4 (first,
  last and 0 / 1 / 2 inner ones with 0.5 / 0.3 / 0.2): ``inner_keyframe_probs=
  REFERENCE_CODE_KEYFRAMES``.
* Interpolation mode probabilities (the code: "mostly linear"): 0.6 / 0.2 / 0.2. The code
  bounds the motion between key frames only, so its eased segments move up to about
  twice the §5.1 speed in one frame; here the limits hold frame to frame (step 4).
* One size factor for both sides per segment (the aspect ratio stays the start box's).
* The box is kept inside the frame (its centre range is clamped, not the motion
  re-drawn), so the constraints hold exactly.

Trajectories of a clip are returned largest first (larger patches are pasted first).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# the reference code's key frames: P(0 / 1 / 2 inner key frames), i.e. 2 to 4 in all
REFERENCE_CODE_KEYFRAMES = (0.5, 0.3, 0.2)


@dataclass(frozen=True)
class TrajectoryConfig:
    num_trajectories: int = 3
    scales: tuple[float, ...] = (16, 24, 28, 32, 48, 64)
    ratios: tuple[float, ...] = (0.5, 0.67, 0.75, 1.0, 1.33, 1.5, 2.0)
    size_jitter: float = 0.18
    # P(0), P(1), P(2), ... inner key frames; the paper's 3 to 5 key frames by default
    inner_keyframe_probs: tuple[float, ...] = (0.0, 1 / 3, 1 / 3, 1 / 3)
    keyframe_jitter: float = 1.0 / 3
    max_speed: float = 3.0  # pixels of motion per axis between two successive frames
    max_scale_change: float = 0.025  # |log size ratio| between two successive frames
    interpolation_probs: tuple[float, float, float] = (0.6, 0.2, 0.2)  # lin / acc / dec

    def __post_init__(self) -> None:
        for name in ("inner_keyframe_probs", "interpolation_probs"):
            probs = getattr(self, name)
            if abs(sum(probs) - 1) > 1e-6 or min(probs) < 0:
                raise ValueError(f"{name} must be probabilities summing to 1, got {probs}")
        if self.num_trajectories < 1:
            raise ValueError("num_trajectories must be >= 1")


@dataclass
class Trajectories:
    """boxes ``(N, T, 4)`` cx/cy/w/h in pixels; keyframes: N sorted frame-index lists."""

    boxes: np.ndarray
    keyframes: list[list[int]]


_EASE = (lambda u: u, lambda u: u * u, lambda u: 1 - (1 - u) * (1 - u))


def _keyframes(num_frames: int, rng: np.random.Generator, config: TrajectoryConfig
               ) -> list[int]:
    last = num_frames - 1
    if last < 1:
        return [0]
    inner = int(rng.choice(len(config.inner_keyframe_probs), p=config.inner_keyframe_probs))
    inner = min(inner, last - 1)
    spacing = last / (inner + 1)
    frames = [0]
    for j in range(1, inner + 1):
        jitter = rng.uniform(-config.keyframe_jitter, config.keyframe_jitter) * spacing
        # after the previous key frame, leaving a frame for each one still to come
        frames.append(int(np.clip(round(j * spacing + jitter), frames[-1] + 1,
                                  last - 1 - (inner - j))))
    return [*frames, last]


def _largest_step(ease, frames: int) -> float:
    """The largest fraction of a segment's change that ``ease`` makes between two
    successive frames of a segment ``frames`` frames long (``1 / frames`` if linear)."""
    u = ease(np.arange(frames + 1) / frames)
    return float(np.diff(u).max())


def _start_box(height: int, width: int, rng: np.random.Generator, config: TrajectoryConfig
               ) -> np.ndarray:
    scale = rng.choice(config.scales)
    ratio = rng.choice(config.ratios)
    jitter = np.exp(rng.uniform(-config.size_jitter, config.size_jitter, size=2))
    w = min(scale * np.sqrt(ratio) * jitter[0], width)
    h = min(scale / np.sqrt(ratio) * jitter[1], height)
    cx = rng.uniform(w / 2, width - w / 2)
    cy = rng.uniform(h / 2, height - h / 2)
    return np.array([cx, cy, w, h])


def sample_trajectory(num_frames: int, height: int, width: int, rng: np.random.Generator,
                      config: TrajectoryConfig = TrajectoryConfig()
                      ) -> tuple[np.ndarray, list[int]]:
    """One trajectory ``(T, 4)`` and its key frames."""
    frames = _keyframes(num_frames, rng, config)
    ease = _EASE[int(rng.choice(3, p=config.interpolation_probs))]
    keys = [_start_box(height, width, rng, config)]
    for a, b in zip(frames, frames[1:]):
        # the segment's change may be 1 / step times the per-frame limit (step 4)
        step = _largest_step(ease, b - a)
        previous = keys[-1]
        for attempt in range(2):  # second attempt keeps the size: always feasible
            factor = 1.0 if attempt else np.exp(rng.uniform(-1, 1) * config.max_scale_change
                                                 / step)
            w = min(previous[2] * factor, width)
            h = min(previous[3] * factor, height)
            reach = config.max_speed / step
            lo = np.array([max(previous[0] - reach, w / 2), max(previous[1] - reach, h / 2)])
            hi = np.array([min(previous[0] + reach, width - w / 2),
                           min(previous[1] + reach, height - h / 2)])
            if (lo <= hi).all():
                break
        centre = rng.uniform(lo, hi)
        keys.append(np.array([centre[0], centre[1], w, h]))
    boxes = np.empty((num_frames, 4))
    for (a, b), start, end in zip(zip(frames, frames[1:]), keys, keys[1:]):
        for t in range(a, b + 1):
            u = ease((t - a) / (b - a))
            boxes[t, :2] = start[:2] + (end[:2] - start[:2]) * u
            boxes[t, 2:] = start[2:] * (end[2:] / start[2:]) ** u
    if len(frames) == 1:
        boxes[0] = keys[0]
    return boxes, frames


def sample_trajectories(num_frames: int, height: int, width: int, rng: np.random.Generator,
                        config: TrajectoryConfig = TrajectoryConfig()) -> Trajectories:
    """``config.num_trajectories`` trajectories for one clip, largest start box first."""
    drawn = [sample_trajectory(num_frames, height, width, rng, config)
             for _ in range(config.num_trajectories)]
    drawn.sort(key=lambda item: -item[0][0, 2] * item[0][0, 3])
    return Trajectories(np.stack([b for b, _ in drawn]), [k for _, k in drawn])
