"""Video decoding with PyAV: probe, plan clips, read them as uint8 ``(3, T, H, W)``."""

from .decode import DamagedSpan, FrameGeometry, read_clips
from .probe import VideoInfo, open_container, probe
from .sampling import ClipPlan, ClipSampling, ClipSpan, clip_duration_s, plan_clips

__all__ = [
    "ClipPlan",
    "ClipSampling",
    "ClipSpan",
    "DamagedSpan",
    "FrameGeometry",
    "VideoInfo",
    "clip_duration_s",
    "open_container",
    "plan_clips",
    "probe",
    "read_clips",
]
