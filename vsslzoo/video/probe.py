"""Opening a video with PyAV and reading its facts (duration, fps, size, rotation).

Every way a file can fail to be a video (missing, zero bytes, not a media file, corrupt
header, audio only, undecodable stream) becomes a :class:`VideoDecodeError` whose
``reason`` is short enough for a summary table.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import VideoDecodeError
from .files import TRANSPORT_STREAM_EXTENSIONS, is_transport_stream, is_url


@dataclass(frozen=True)
class VideoInfo:
    """Facts about a video's first video stream.

    Attributes:
        path: the file.
        duration_s: seconds from the first frame's timestamp to the end of the stream.
        fps: average frame rate (frames per second).
        num_frames: frame count (exact when the container records it, else estimated).
        width, height: display size in pixels, after rotation.
        rotation: counter-clockwise display rotation in degrees (0, 90, 180, 270).
        start_s: presentation time of the first frame (timestamps are relative to it).
        codec: decoder name.
        keyframe_interval_s: mean distance between keyframes seen in the first packets
            (None when only one keyframe was seen there: a long GOP).
    """

    path: str
    duration_s: float
    fps: float
    num_frames: int
    width: int
    height: int
    rotation: int
    start_s: float
    codec: str
    keyframe_interval_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def open_container(path: str | os.PathLike[str]):
    """``av.open`` with the failure modes turned into :class:`VideoDecodeError`."""
    path = os.fspath(path)
    if is_url(path):  # FFmpeg's protocols (http, https, ...) say what is wrong
        return _open(path)
    if not os.path.exists(path):
        raise VideoDecodeError(path, "no such file")
    if os.path.isdir(path):
        raise VideoDecodeError(path, "is a folder, not a video file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "zero-byte file")
    try:
        if os.path.splitext(path)[1].lower() in TRANSPORT_STREAM_EXTENSIONS \
                and not is_transport_stream(path):
            raise VideoDecodeError(path, "not a video (not an MPEG transport stream; a "
                                         "TypeScript source?)")
    except OSError:
        pass  # av.open says why
    return _open(path)


def _open(path: str):
    import av

    try:
        container = av.open(path, metadata_errors="ignore")
    except PermissionError:
        raise VideoDecodeError(path, "permission denied") from None
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoDecodeError(
            path, f"cannot be opened as media: corrupt, truncated or not a video ({_short(exc)})"
        ) from None
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        container.close()
        what = "audio only" if kinds == ["audio"] else "streams: " + ", ".join(kinds)
        raise VideoDecodeError(path, f"no video stream ({what})")
    return container


def _short(exc: BaseException) -> str:
    text = (getattr(exc, "strerror", None) or str(exc)).strip() or exc.__class__.__name__
    return text if len(text) <= 120 else text[:117] + "..."


def normalise_rotation(degrees: float | int | None) -> int:
    """Display rotation rounded to a multiple of 90, in [0, 360)."""
    if not degrees:
        return 0
    return int(round(float(degrees) / 90.0)) * 90 % 360


_KEYFRAME_PROBE_PACKETS = 300


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Read a video's facts; decodes its first frame to prove the stream is decodable."""
    import av

    path = os.fspath(path)
    container = open_container(path)
    try:
        stream = container.streams.video[0]
        time_base = float(stream.time_base) if stream.time_base else 1e-6
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        first, error, skipped = _first_frame(container, stream, av)
        if first is None and error is not None:
            raise VideoDecodeError(path, f"corrupt video stream ({_short(error)})")
        if first is None:
            raise VideoDecodeError(path, "video stream has no decodable frame")
        start_s = float(first.time) if first.time is not None else 0.0
        if skipped and stream.start_time is not None:  # the first frames are damaged
            start_s = min(start_s, float(stream.start_time) * time_base)
        rotation = normalise_rotation(getattr(first, "rotation", 0))

        if stream.duration is not None:
            end_s = float(stream.start_time or 0) * time_base + stream.duration * time_base
        elif container.duration is not None:
            end_s = container.duration / 1_000_000 + (container.start_time or 0) / 1_000_000
        else:
            end_s = start_s
        duration_s = max(end_s - start_s, 0.0)
        fps = float(rate) if rate else 0.0
        if stream.frames:
            num_frames = int(stream.frames)
            if duration_s > 0 and (fps <= 0 or fps > 1000):
                fps = num_frames / duration_s
        else:
            num_frames = max(1, int(round(duration_s * fps))) if fps > 0 else 1
        if fps <= 0:
            fps = num_frames / duration_s if duration_s > 0 else 25.0
        if duration_s <= 0:
            duration_s = num_frames / fps
        keyframe_interval = _keyframe_interval(container, stream, time_base)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        return VideoInfo(
            path=path, duration_s=duration_s, fps=fps, num_frames=num_frames,
            width=width, height=height, rotation=rotation, start_s=start_s,
            codec=stream.codec_context.name, keyframe_interval_s=keyframe_interval,
        )
    finally:
        container.close()


_FIRST_FRAME_PACKETS = 300


def _first_frame(container, stream, av):
    """(first decodable frame or None, the last error, packets skipped before it): corrupt
    packets at the start are skipped, as decoding does later on."""
    error = None
    skipped = 0
    try:
        for count, packet in enumerate(container.demux(stream)):
            if count >= _FIRST_FRAME_PACKETS:
                break
            try:
                frames = stream.decode(packet)
            except EOFError:
                break
            except av.FFmpegError as exc:
                error, skipped = exc, skipped + 1
                continue
            if frames:
                return frames[0], error, skipped
    except (av.FFmpegError, OSError) as exc:
        error = exc
    return None, error, skipped


def _keyframe_interval(container, stream, time_base: float) -> float | None:
    """Mean keyframe spacing among the first packets (demux only, no decoding)."""
    import av

    try:
        container.seek(0, stream=stream)
        key_times = []
        for count, packet in enumerate(container.demux(stream)):
            if packet.pts is not None and packet.is_keyframe:
                key_times.append(packet.pts * time_base)
            if count >= _KEYFRAME_PROBE_PACKETS:
                break
    except (av.FFmpegError, OSError):
        return None
    if len(key_times) < 2:
        return None
    key_times.sort()
    return (key_times[-1] - key_times[0]) / (len(key_times) - 1)
