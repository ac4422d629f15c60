"""Reading the frames of planned clips with PyAV: seek or stream, select, resize, crop.

For each clip the decoder needs T frames, the ones whose presentation timestamps are
nearest to the clip's sample times (ties go to the earlier frame), which handles
variable frame rate. Two ways to get there, chosen per file from its keyframe spacing:

* **seek**: for each run of nearby clips, seek to the keyframe before the run's first
  sample time and decode forward until its last one;
* **sequential**: one pass from the first sample time, for dense clips or long GOPs
  (x264's default keyframe interval is 250 frames: seeking would decode it repeatedly).

Both select exactly the same frames (the tests check it against a full decode). Only
selected frames are converted: FFmpeg's scaler (swscale, bilinear) resizes them so the
display short side equals ``resize``, rotation metadata is applied, then a centre crop.
Memory is bounded by the clips in flight, never by the video's length: a finished clip
is yielded at once.

FFmpeg decodes with frame and slice threads. Left alone it starts one thread per core in
every decoder, so a pool of decode workers beside the model oversubscribes the cores
many times over; a pool caps each worker (:func:`set_decode_threads`,
:func:`threads_per_worker`) so that workers x threads <= cores.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import VideoDecodeError
from .probe import VideoInfo, _short, open_container, probe
from .sampling import ClipPlan

STRATEGIES = ("auto", "seek", "sequential")
_CACHE_FRAMES = 64
_decode_threads: int | None = None  # this process's cap (None: FFmpeg's choice)


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def threads_per_worker(workers: int, cores: int | None = None) -> int:
    """FFmpeg threads for each of ``workers`` decode processes: workers x threads <= cores
    (at least one thread each)."""
    cores = available_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


def set_decode_threads(threads: int | None) -> None:
    """Cap FFmpeg's decoding threads in this process (None or 0: FFmpeg's choice, one per
    core). Decode workers call it once at start."""
    global _decode_threads
    _decode_threads = threads or None


@dataclass(frozen=True)
class FrameGeometry:
    """How a decoded frame becomes a crop.

    Attributes:
        scaled: (width, height) to ask swscale for, in the *coded* orientation.
        rotation: counter-clockwise degrees applied after scaling (0/90/180/270).
        crop: (height, width) of the centre crop after rotation.
    """

    scaled: tuple[int, int]
    rotation: int
    crop: tuple[int, int]

    @classmethod
    def for_video(cls, info: VideoInfo, resize: int, crop: tuple[int, int]) -> FrameGeometry:
        """Scale so the display short side is ``resize`` (and both crop sides fit)."""
        disp_w, disp_h = info.width, info.height
        scale = max(resize / min(disp_w, disp_h), crop[0] / disp_h, crop[1] / disp_w)
        out_w = max(crop[1], int(round(disp_w * scale)))
        out_h = max(crop[0], int(round(disp_h * scale)))
        if info.rotation in (90, 270):
            out_w, out_h = out_h, out_w  # swscale works on the coded (unrotated) frame
        return cls((out_w, out_h), info.rotation, tuple(crop))

    def apply(self, frame) -> np.ndarray:
        """av.VideoFrame -> (H, W, 3) uint8 RGB crop."""
        image = frame.to_ndarray(
            width=self.scaled[0], height=self.scaled[1], format="rgb24",
            interpolation="BILINEAR",
        )
        if self.rotation:
            image = np.rot90(image, k=self.rotation // 90)
        height, width = image.shape[:2]
        top = (height - self.crop[0]) // 2
        left = (width - self.crop[1]) // 2
        return image[top:top + self.crop[0], left:left + self.crop[1]]


@dataclass
class _Run:
    """Consecutive clips decoded in one pass after (at most) one seek."""

    plans: list[ClipPlan]
    first_s: float
    last_s: float


def _plan_runs(plans: Sequence[ClipPlan], info: VideoInfo, strategy: str) -> list[_Run]:
    ordered = sorted(plans, key=lambda p: p.times[0])
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    whole = _Run(list(ordered), ordered[0].times[0], max(p.times[-1] for p in ordered))
    if strategy == "sequential" or len(ordered) == 1 and whole.first_s <= 0:
        return [whole]
    gop = info.keyframe_interval_s
    if strategy == "auto" and gop is None:
        return [whole]  # one keyframe in hundreds of frames: every seek decodes from it
    gap = gop if gop is not None else 1.0
    runs: list[_Run] = []
    for plan in ordered:
        if runs and plan.times[0] <= runs[-1].last_s + gap:
            runs[-1].plans.append(plan)
            runs[-1].last_s = max(runs[-1].last_s, plan.times[-1])
        else:
            runs.append(_Run([plan], plan.times[0], plan.times[-1]))
    if strategy == "seek":
        return runs
    seek_cost = sum(gap / 2 + (r.last_s - r.first_s) for r in runs) + gap / 2
    sequential_cost = whole.last_s
    return runs if seek_cost < 0.8 * sequential_cost else [whole]


def read_clips(
    path: str | os.PathLike[str],
    plans: Sequence[ClipPlan],
    *,
    resize: int,
    crop: tuple[int, int],
    info: VideoInfo | None = None,
    strategy: str = "auto",
    threads: int | None = None,
) -> Iterator[tuple[ClipPlan, np.ndarray]]:
    """Yield ``(plan, clip)`` for every plan, in time order.

    Args:
        path: the video file.
        plans: clips from :func:`~vsslzoo.video.sampling.plan_clips`.
        resize: display short side in pixels before cropping.
        crop: (height, width) of the centre crop.
        info: the file's :func:`probe` result (probed if None).
        strategy: "auto" (by keyframe spacing), "seek" or "sequential".
        threads: FFmpeg decoding threads (None: this process's cap set by
            :func:`set_decode_threads`, else FFmpeg's choice).

    Yields:
        The plan and its clip, ``(3, T, H, W)`` uint8 RGB.

    Raises:
        VideoDecodeError: the file cannot be decoded, or ends (truncated) before the
            frames its header promises.
    """
    if not plans:
        return
    path = os.fspath(path)
    info = info or probe(path)
    geometry = FrameGeometry.for_video(info, resize, crop)
    runs = _plan_runs(plans, info, strategy)
    import av

    container = open_container(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        threads = threads or _decode_threads
        if threads:
            stream.codec_context.thread_count = threads
        for run in runs:
            yield from _decode_run(container, stream, run, info, geometry, av)
    finally:
        container.close()


def _decode_run(container, stream, run: _Run, info: VideoInfo, geometry: FrameGeometry, av
                ) -> Iterator[tuple[ClipPlan, np.ndarray]]:
    frame_s = 1.0 / info.fps
    # (absolute time, clip slot) for every sample of the run, in time order
    targets = sorted(
        (info.start_s + t, clip_no, slot)
        for clip_no, plan in enumerate(run.plans)
        for slot, t in enumerate(plan.times)
    )
    num_frames = len(run.plans[0].times)
    clips: dict[int, np.ndarray] = {}
    filled = [0] * len(run.plans)
    next_to_yield = 0
    cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def image_of(frame) -> np.ndarray:
        key = frame.pts if frame.pts is not None else id(frame)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        image = geometry.apply(frame)
        cache[key] = image
        if len(cache) > _CACHE_FRAMES:
            cache.popitem(last=False)
        return image

    def assign(target_index: int, frame) -> None:
        _, clip_no, slot = targets[target_index]
        clip = clips.get(clip_no)
        if clip is None:
            clip = clips[clip_no] = np.empty((3, num_frames, *geometry.crop), np.uint8)
        clip[:, slot] = image_of(frame).transpose(2, 0, 1)
        filled[clip_no] += 1

    def finished() -> Iterator[tuple[ClipPlan, np.ndarray]]:
        nonlocal next_to_yield
        while next_to_yield < len(run.plans) and filled[next_to_yield] == num_frames:
            yield run.plans[next_to_yield], clips.pop(next_to_yield)
            next_to_yield += 1

    seek_s = run.first_s + info.start_s - 1.5 * frame_s
    frames = _frames_from(container, stream, seek_s, info, av)
    pending = 0
    prev = None
    prev_time = None
    try:
        for frame in frames:
            time = float(frame.time) if frame.time is not None else prev_time or 0.0
            while pending < len(targets) and targets[pending][0] <= time:
                target_time = targets[pending][0]
                use_prev = prev is not None and target_time - prev_time <= time - target_time
                assign(pending, prev if use_prev else frame)
                pending += 1
            yield from finished()
            if pending == len(targets):
                return
            prev, prev_time = frame, time
    except av.FFmpegError as exc:
        where = f"{prev_time - info.start_s:.2f} s" if prev_time is not None else "its start"
        raise VideoDecodeError(info.path, f"corrupt video data near {where} ({_short(exc)})"
                               ) from None
    if prev is None:
        raise VideoDecodeError(info.path, "no frame could be decoded")
    expected_last = info.start_s + info.duration_s - frame_s
    first_missing = targets[pending][0]
    if first_missing < expected_last and prev_time + max(0.5, 3 * frame_s) < expected_last:
        raise VideoDecodeError(
            info.path,
            f"truncated: frames end at {prev_time - info.start_s:.2f} s but the header says "
            f"{info.duration_s:.2f} s",
        )
    while pending < len(targets):  # past the end: repeat the last frame (padding)
        assign(pending, prev)
        pending += 1
    yield from finished()


def _frames_from(container, stream, seek_s: float, info: VideoInfo, av):
    """Decoded frames starting at the keyframe at or before ``seek_s`` (absolute seconds)."""
    time_base = float(stream.time_base)
    if seek_s > info.start_s:
        container.seek(int(seek_s / time_base), stream=stream, backward=True, any_frame=False)
        decoded = container.decode(stream)
        first = next(decoded, None)
        if first is not None and first.time is not None and float(first.time) <= seek_s + 1e-6:
            yield first
            yield from decoded
            return
        # The demuxer landed after the requested time (imprecise index): start over.
    container.seek(0, stream=stream, backward=True, any_frame=False)
    yield from container.decode(stream)
