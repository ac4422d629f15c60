"""Which clips to take from a video: ``uniform:N``, ``sliding:S`` and ``segment:A-B``.

A clip is ``num_frames`` frames ``frame_stride`` source frames apart (or ``1/fps``
seconds apart when the model's preprocessing fixes an fps), so its duration is
``num_frames * frame_stride / video_fps`` seconds. Clips are planned in *time*, not
frame indices: each of a clip's T sample times is later matched to the frame whose
presentation timestamp is nearest, which handles variable frame rate.

* ``uniform:N``: N clips whose starts are evenly spaced from 0 to ``duration - clip``
  (the VCOP/CtP retrieval protocol, N=10 by default).
* ``sliding:S``: a clip starting every S seconds while it fits in the video;
  ``sliding:clip``: every clip duration (consecutive, non-overlapping clips).
* ``segment:A-B``: the moment from A to B seconds: consecutive, non-overlapping clips
  covering it; a moment shorter than one clip gives one clip centred on it.

A video (or segment) shorter than one clip gives one clip whose missing frames repeat
the last frame; its span says ``padded=True`` and ends at the video's end.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..config import PreprocessConfig
from ..errors import ConfigError

DEFAULT_UNIFORM_CLIPS = 10
_EPS = 1e-6


@dataclass(frozen=True)
class ClipSampling:
    """A parsed sampling spec: ``kind`` is "uniform", "sliding" or "segment"."""

    kind: str
    count: int = DEFAULT_UNIFORM_CLIPS  # uniform
    step_s: float = 1.0  # sliding; 0 means "one clip duration"
    start_s: float = 0.0  # segment
    end_s: float = 0.0  # segment

    def __str__(self) -> str:
        if self.kind == "uniform":
            return f"uniform:{self.count}"
        if self.kind == "sliding":
            return f"sliding:{self.step_s:g}" if self.step_s else "sliding:clip"
        return f"segment:{self.start_s:g}-{self.end_s:g}"

    @classmethod
    def parse(cls, text: str | ClipSampling) -> ClipSampling:
        """Parse ``uniform[:N]``, ``sliding:S`` or ``segment:A-B`` (seconds)."""
        if isinstance(text, ClipSampling):
            return text
        spec = str(text).strip().lower()
        kind, _, value = spec.partition(":")
        try:
            if kind == "uniform":
                count = int(value) if value else DEFAULT_UNIFORM_CLIPS
                if count < 1:
                    raise ValueError
                return cls("uniform", count=count)
            if kind == "sliding":
                if value == "clip":
                    return cls("sliding", step_s=0.0)
                step = float(value)
                if not step > 0 or not math.isfinite(step):
                    raise ValueError
                return cls("sliding", step_s=step)
            if kind == "segment":
                match = re.fullmatch(r"([0-9.]+)-([0-9.]+)", value)
                if not match:
                    raise ValueError
                start, end = float(match.group(1)), float(match.group(2))
                if not end > start:
                    raise ValueError
                return cls("segment", start_s=start, end_s=end)
        except ValueError:
            pass
        raise ConfigError(
            f"clip sampling {text!r} not understood; use uniform:N (N >= 1), sliding:S "
            "(S seconds > 0, or 'clip' for one clip duration) or segment:A-B (seconds, B > A)"
        )


@dataclass(frozen=True)
class ClipSpan:
    """Which moment of the video a clip is.

    Attributes:
        index: clip number within the video (0-based, in time order).
        start_s, end_s: seconds from the first frame; ``end_s`` is the end of the last
            sampled frame's interval, clamped to the video's duration.
        padded: True when the clip ran past the end and repeats the last frame.
    """

    index: int
    start_s: float
    end_s: float
    padded: bool = False


@dataclass(frozen=True)
class ClipPlan:
    """A clip to read: its span and the T sample times (seconds from the first frame)."""

    span: ClipSpan
    times: tuple[float, ...]


def frame_step_s(preprocess: PreprocessConfig, video_fps: float) -> float:
    """Seconds between two sampled frames of a clip."""
    if preprocess.fps:
        return 1.0 / preprocess.fps
    return preprocess.frame_stride / video_fps


def clip_duration_s(preprocess: PreprocessConfig, video_fps: float) -> float:
    return preprocess.num_frames * frame_step_s(preprocess, video_fps)


def _starts(sampling: ClipSampling, duration: float, clip: float) -> list[float]:
    if sampling.kind == "uniform":
        last = max(duration - clip, 0.0)
        if last <= _EPS or sampling.count == 1:
            return [last / 2 if sampling.count == 1 else 0.0]
        return [last * k / (sampling.count - 1) for k in range(sampling.count)]
    if sampling.kind == "sliding":
        step = sampling.step_s or clip
        count = int(math.floor((duration - clip) / step + _EPS)) + 1
        return [k * step for k in range(max(count, 1))]
    # segment: clamp to the video, then tile it with whole clips
    start = min(max(sampling.start_s, 0.0), duration)
    end = min(max(sampling.end_s, start), duration)
    length = end - start
    if length < clip - _EPS:
        centred = start + length / 2 - clip / 2
        return [min(max(centred, 0.0), max(duration - clip, 0.0))]
    count = int(math.floor(length / clip + _EPS))
    offset = start + (length - count * clip) / 2
    return [offset + k * clip for k in range(count)]


def plan_clips(
    duration_s: float,
    video_fps: float,
    sampling: ClipSampling | str,
    preprocess: PreprocessConfig,
) -> list[ClipPlan]:
    """The clips ``sampling`` takes from a video of ``duration_s`` seconds at ``video_fps``."""
    sampling = ClipSampling.parse(sampling)
    step = frame_step_s(preprocess, video_fps)
    clip = preprocess.num_frames * step
    last_frame_time = max(duration_s - 1.0 / video_fps, 0.0)
    plans = []
    for index, start in enumerate(_starts(sampling, duration_s, clip)):
        times = tuple(start + k * step for k in range(preprocess.num_frames))
        padded = times[-1] > last_frame_time + 0.5 / video_fps
        end = min(start + clip, duration_s)
        plans.append(ClipPlan(ClipSpan(index, round(start, 6), round(end, 6), padded), times))
    return plans
