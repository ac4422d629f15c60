"""Where the K clips of a video start: CORP's minimal-offset rule (paper §3.2, Eq. 3).

A video has ``L`` frames; a clip is ``T`` frames at dilation (frame stride) ``D``, so it
covers about ``D*T`` frames and may start anywhere in ``[0, L - D*T]``. The K clips of one
video must be at least

    Delta = min(max((L - D*T) / K, 1), D*T)                                  (Eq. 3)

frames apart (start to start), so that their order is neither trivial (overlapping clips)
nor impossible to draw. The paper draws the K starts independently and uniformly and
re-draws until every pair is at least Delta apart.

Choices (the paper is silent):

* Starts are real-valued frame positions (the decoder takes the nearest frame of every
  sample time), not integers: with integer starts and a fractional Delta a valid draw can
  fail to exist even when Eq. 3 promises one (K=4, L-DT=5: Delta=1.25 needs starts 2 apart).
* Rejection is capped (``max_draws``). When the cap is hit (videos where a valid draw is
  rare, e.g. ``L - D*T`` just above ``(K-1)``), the starts come from an exact direct
  sampler with the *same* distribution: K sorted points uniform on
  ``[0, R - (K-1)*Delta]`` (``R = L - D*T``) shifted by ``0, Delta, 2*Delta, ...``. Sorted
  rejection draws are uniform over the set of valid sorted configurations, and that map is
  a volume-preserving bijection onto it, so both give the same law; the direct sampler
  alone is available as ``method="direct"``.
* No valid draw exists when ``R < (K-1) * Delta``, which with Eq. 3 happens exactly when
  ``L < D*T + K - 1`` (with ``L < D*T`` not even one clip fits). Such a video raises
  :class:`ClipSamplingError` (a :class:`~vsslzoo.errors.VsslzooError`), so the training
  dataset skips it and counts it in ``skipped_videos``; it never loops or pads.
"""

from __future__ import annotations

import numpy as np

from vsslzoo.errors import VsslzooError

SAMPLING_METHODS = ("rejection", "direct")


class ClipSamplingError(VsslzooError):
    """A video too short for K clips at the minimal offset of Eq. 3."""


def minimal_offset(num_video_frames: float, num_frames: int, dilation: int,
                   num_clips: int) -> float:
    """Delta of Eq. 3, in frames."""
    covered = dilation * num_frames
    return min(max((num_video_frames - covered) / num_clips, 1.0), float(covered))


def draw_clip_starts(num_video_frames: float, num_frames: int, dilation: int, num_clips: int,
                     rng: np.random.Generator, *, max_draws: int = 1000,
                     method: str = "rejection") -> np.ndarray:
    """K clip starts (frames, float, sorted ascending) at least Delta (Eq. 3) apart.

    Args:
        num_video_frames: L, frames in the video.
        num_frames: T, frames per clip.
        dilation: D, source frames between two sampled frames of a clip.
        num_clips: K.
        rng: the random generator.
        max_draws: rejection rounds before the exact direct sampler takes over.
        method: "rejection" (the paper's, capped) or "direct".

    Raises:
        ClipSamplingError: no valid draw exists (``L < D*T + K - 1``).
        ValueError: an argument out of range.
    """
    if num_frames < 1 or dilation < 1:
        raise ValueError(f"num_frames and dilation must be >= 1, got {num_frames}, {dilation}")
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    if max_draws < 0:
        raise ValueError(f"max_draws must be >= 0, got {max_draws}")
    if method not in SAMPLING_METHODS:
        raise ValueError(f"method must be one of {SAMPLING_METHODS}, got {method!r}")
    covered = dilation * num_frames
    span = num_video_frames - covered  # R: the last frame a clip may start at
    delta = minimal_offset(num_video_frames, num_frames, dilation, num_clips)
    if span < 0 or span < (num_clips - 1) * delta - 1e-9:
        raise ClipSamplingError(
            f"a video of {num_video_frames:g} frames is too short for {num_clips} clips of "
            f"{num_frames} frames at stride {dilation} at least {delta:g} frames apart "
            f"(Eq. 3): it needs at least {covered + num_clips - 1} frames")
    if num_clips == 1:
        return np.array([rng.uniform(0.0, span)])
    if method == "rejection":
        for _ in range(max_draws):
            starts = np.sort(rng.uniform(0.0, span, num_clips))
            if np.all(np.diff(starts) >= delta):
                return starts
    free = max(span - (num_clips - 1) * delta, 0.0)
    return np.sort(rng.uniform(0.0, free, num_clips)) + delta * np.arange(num_clips)
