"""Reading the frames of planned clips with PyAV: seek or stream, select, resize, crop.

For each clip the decoder needs T frames, the ones whose presentation timestamps are
nearest to the clip's sample times (ties go to the earlier frame), which handles
variable frame rate. Two ways to get there, chosen per file from its keyframe spacing:

* **seek**: for each run of nearby clips, seek to the keyframe before the run's first
  sample time and decode forward until its last one;
* **sequential**: one pass from the first sample time, for dense clips or long GOPs
  (x264's default keyframe interval is 250 frames: seeking would decode it repeatedly).

Damage need not cost the whole video (archives are full of it, and FFmpeg's own tools
decode through it): given a ``damage`` list, decoding skips the packets that fail and
goes on, a stretch from the last good frame to the next clean keyframe is damaged when a
packet fails, FFmpeg marks a frame corrupt, frames are missing or go back in time, or the
file ends before its header says; the clips with a sample time in a damaged stretch are
left out and the stretches reported.

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

import math
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

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

    def apply(self, frame, reformatter=None) -> np.ndarray:
        """av.VideoFrame -> (H, W, 3) uint8 RGB crop.

        ``reformatter``: a :func:`frame_reformatter` to reuse for every frame of a video
        (the scaler is set up once, not per frame; the pixels are the same).
        """
        if reformatter is None:
            reformatter = frame_reformatter()
        image = reformatter(frame, self.scaled)
        if self.rotation:
            image = np.rot90(image, k=self.rotation // 90)
        height, width = image.shape[:2]
        top = (height - self.crop[0]) // 2
        left = (width - self.crop[1]) // 2
        return image[top:top + self.crop[0], left:left + self.crop[1]]


def frame_reformatter():
    """A converter ``(frame, (width, height)) -> (H, W, 3) uint8 RGB`` (swscale, bilinear)
    that keeps one scaler for all frames of the same size and format.

    ``VideoFrame.to_ndarray(width=..., height=...)`` builds a new scaler for every frame,
    and since PyAV 17 that scaler also starts its own threads: on 360p h264 the
    conversion then cost more than decoding (``bench/extract.py --default-model``). One
    ``VideoReformatter`` caches the scaler (``sws_getCachedContext``); it runs in the
    caller's thread, since decode workers already share the cores out
    (:func:`threads_per_worker`).
    """
    import av
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    options = {"threads": 1} if int(av.__version__.split(".")[0]) >= 17 else {}

    def convert(frame, size: tuple[int, int]) -> np.ndarray:
        return reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24",
                                    interpolation="BILINEAR", **options).to_ndarray()

    return convert


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


@dataclass(frozen=True)
class DamagedSpan:
    """A stretch of a video whose frames could not be decoded intact.

    Attributes:
        start_s, end_s: seconds from the first frame; ``end_s`` is where decoding was
            clean again (a keyframe), or the video's end.
        reason: what was wrong ("corrupt video data (...)", "frames missing",
            "truncated: ...").
    """

    start_s: float
    end_s: float
    reason: str

    def __str__(self) -> str:
        return f"{self.start_s:.2f}-{self.end_s:.2f} s: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def merge_damage(spans: Sequence[DamagedSpan]) -> list[DamagedSpan]:
    """Overlapping or touching spans merged (their distinct reasons joined), in time order."""
    merged: list[DamagedSpan] = []
    for span in sorted(spans, key=lambda s: (s.start_s, s.end_s)):
        if merged and span.start_s <= merged[-1].end_s + 1e-6:
            last = merged[-1]
            reasons = last.reason.split("; ")
            reason = last.reason if span.reason in reasons else f"{last.reason}; {span.reason}"
            merged[-1] = DamagedSpan(last.start_s, max(last.end_s, span.end_s), reason)
        else:
            merged.append(span)
    return merged


class _Damage:
    """The damage met while reading one file, in absolute stream seconds.

    A stretch is open from the last good frame (exclusive) until a clean keyframe: frames
    in between may be missing, or decoded from broken references. Strict (what callers
    that want all of a clip or nothing ask for): a decoding error, unreadable data or a
    truncation raises :class:`VideoDecodeError` at once, as it always did; the other
    signs are ignored.
    """

    def __init__(self, info: VideoInfo, *, strict: bool) -> None:
        self.info = info
        self.strict = strict
        self.closed: list[tuple[float, float, str]] = []  # (after, before, reason)
        self.open: tuple[float, str] | None = None

    def _raise(self, since: float | None, reason: str, detail: str | None) -> None:
        where = f"{since - self.info.start_s:.2f} s" if since is not None else "its start"
        raise VideoDecodeError(self.info.path, f"{reason} near {where}"
                               + (f" ({detail})" if detail else ""))

    def note(self, since: float | None, reason: str, detail: str | None = None, *,
             decode_error: bool = False) -> None:
        """Frames after ``since`` (the last good frame's time; None: from the start) are
        not trustworthy until a clean keyframe."""
        if self.strict:
            if decode_error:
                self._raise(since, reason, detail)
            return
        if self.open is None:
            reason = f"{reason} ({detail})" if detail else reason
            self.open = (-math.inf if since is None else since, reason)

    def clean_keyframe(self, time: float) -> None:
        if self.open is not None and time > self.open[0]:
            self.closed.append((self.open[0], time, self.open[1]))
            self.open = None

    def end_run(self, until: float) -> None:
        """The pass stops at ``until``: a stretch still open ends there as far as seen."""
        if self.open is not None:
            self.closed.append((self.open[0], max(until, self.open[0]), self.open[1]))
            self.open = None

    def unreadable(self, since: float | None, until: float | None, reason: str,
                   detail: str | None = None) -> None:
        """Nothing could be read after ``since`` (until ``until``; None: the end)."""
        if self.strict:
            self._raise(since, reason, detail)
        reason = f"{reason} ({detail})" if detail else reason
        since = -math.inf if since is None else since
        if until is None:
            self.open = self.open or (since, reason)
        else:
            self.closed.append((since, until, reason))

    def truncated(self, since: float, until: float, reason: str) -> None:
        if self.strict:
            raise VideoDecodeError(self.info.path, reason)
        self.closed.append((since, until, reason))

    def hits(self, first: float, last: float) -> bool:
        """Whether a sample time in [first, last] (absolute seconds) falls in the damage."""
        stretches = self.closed + ([(self.open[0], math.inf, "")] if self.open else [])
        return any(after < last and first < before for after, before, _ in stretches)

    def spans(self) -> list[DamagedSpan]:
        """The damage in seconds from the first frame, clamped to the video, merged."""
        start, duration = self.info.start_s, self.info.duration_s
        stretches = self.closed + ([(self.open[0], math.inf, self.open[1])]
                                   if self.open else [])
        return merge_damage([
            DamagedSpan(round(min(max(after - start, 0.0), duration), 3),
                        round(min(max(before - start, 0.0), duration), 3), reason)
            for after, before, reason in stretches
        ])


def _is_intra(frame) -> bool:
    kind = frame.pict_type  # an int in PyAV >= 14 (AV_PICTURE_TYPE_I == 1), else an enum
    return kind == 1 or getattr(kind, "name", kind) == "I"


def read_clips(
    path: str | os.PathLike[str],
    plans: Sequence[ClipPlan],
    *,
    resize: int,
    crop: tuple[int, int],
    damage: list[DamagedSpan] | None = None,
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
        damage: None: damage raises (below). A list: decoding goes on past damage
            (corrupt packets are skipped), a clip with a sample time in a damaged stretch
            is left out (not yielded), and the damaged stretches are appended to the list
            (:class:`DamagedSpan`, merged, seconds from the first frame).
        info: the file's :func:`probe` result (probed if None).
        strategy: "auto" (by keyframe spacing), "seek" or "sequential".
        threads: FFmpeg decoding threads (None: this process's cap set by
            :func:`set_decode_threads`, else FFmpeg's choice).

    Yields:
        The plan and its clip, ``(3, T, H, W)`` uint8 RGB.

    Raises:
        VideoDecodeError: the file cannot be opened; or (``damage`` None) its data is
            corrupt, or it ends (truncated) before the frames its header promises.
    """
    if not plans:
        return
    path = os.fspath(path)
    info = info or probe(path)
    geometry = FrameGeometry.for_video(info, resize, crop)
    runs = _plan_runs(plans, info, strategy)
    import av

    tracker = _Damage(info, strict=damage is None)
    container = open_container(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        threads = threads or _decode_threads
        if threads:
            stream.codec_context.thread_count = threads
        for run in runs:
            yield from _decode_run(container, stream, run, info, geometry, av, tracker)
    finally:
        container.close()
        if damage is not None:
            damage.extend(tracker.spans())


def _decode_run(container, stream, run: _Run, info: VideoInfo, geometry: FrameGeometry, av,
                damage: _Damage) -> Iterator[tuple[ClipPlan, np.ndarray]]:
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
    reformatter = frame_reformatter()

    def image_of(frame) -> np.ndarray:
        key = frame.pts if frame.pts is not None else id(frame)
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        image = geometry.apply(frame, reformatter)
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
            plan = run.plans[next_to_yield]
            clip = clips.pop(next_to_yield)
            next_to_yield += 1
            # a sample time in a damaged stretch has no trustworthy frame: leave it out
            if not damage.hits(info.start_s + plan.times[0], info.start_s + plan.times[-1]):
                yield plan, clip

    seek_s = run.first_s + info.start_s - 1.5 * frame_s
    frames = _frames_from(container, stream, seek_s, info, av, damage)
    pending = 0
    prev = None
    prev_time = None
    for frame, time in frames:
        while pending < len(targets) and targets[pending][0] <= time:
            target_time = targets[pending][0]
            use_prev = prev is not None and target_time - prev_time <= time - target_time
            assign(pending, prev if use_prev else frame)
            pending += 1
        yield from finished()
        if pending == len(targets):
            damage.end_run(time)
            return
        prev, prev_time = frame, time
    if prev is None:
        damage.unreadable(run.first_s + info.start_s - frame_s, run.last_s + info.start_s,
                          "no frame could be decoded")
        return
    expected_last = info.start_s + info.duration_s - frame_s
    first_missing = targets[pending][0]
    if first_missing < expected_last and prev_time + max(0.5, 3 * frame_s) < expected_last:
        damage.truncated(prev_time, info.start_s + info.duration_s,
                         f"truncated: frames end at {prev_time - info.start_s:.2f} s but the "
                         f"header says {info.duration_s:.2f} s")
    damage.end_run(max(prev_time, info.start_s + info.duration_s))  # damage open at the end
    while pending < len(targets):  # past the end: repeat the last frame (padding)
        assign(pending, prev)
        pending += 1
    yield from finished()


def _frames_from(container, stream, seek_s: float, info: VideoInfo, av, damage: _Damage):
    """(frame, absolute time) from the keyframe at or before ``seek_s`` (absolute seconds)."""
    time_base = float(stream.time_base)
    if seek_s > info.start_s:
        container.seek(int(seek_s / time_base), stream=stream, backward=True, any_frame=False)
        # damage met before the first good frame starts at the seek point: the frames
        # before it belong to earlier runs, which saw for themselves
        decoded = _decoded(container, stream, info, av, damage, since=seek_s)
        first = next(decoded, None)
        if first is not None and first[1] <= seek_s + 1e-6:
            yield first
            yield from decoded
            return
        decoded.close()
        # The demuxer landed after the requested time (imprecise index): start over.
    container.seek(0, stream=stream, backward=True, any_frame=False)
    yield from _decoded(container, stream, info, av, damage)


def _decoded(container, stream, info: VideoInfo, av, damage: _Damage,
             since: float | None = None):
    """(frame, absolute time) in presentation order from the container's position, decoding
    on past damage: a packet that fails to decode is skipped, and the damage (a decoding
    error, a frame FFmpeg marks corrupt, frames missing or going back in time) is noted in
    ``damage`` from the last good frame (before the first one: ``since``, None for the
    file's start) until the next clean keyframe."""
    time_base = float(stream.time_base)
    last_time = None
    good = since  # the last good frame's time, for the damage notes
    last_duration = 0.0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.FFmpegError, OSError) as exc:  # the demuxer cannot go on
            damage.unreadable(good, None, "unreadable data", _short(exc))
            return
        if packet.is_corrupt:
            damage.note(good, "corrupt packet")
        try:
            frames = stream.decode(packet)
        except EOFError:
            return
        except av.FFmpegError as exc:
            damage.note(good, "corrupt video data", _short(exc), decode_error=True)
            continue
        for frame in frames:
            if frame.time is None:
                time = (last_time or info.start_s) + (last_duration or 1.0 / info.fps)
            else:
                time = float(frame.time)
            if last_time is not None and time <= last_time:
                damage.note(good, "timestamps go back (repeated or misplaced data)")
                continue
            if last_time is not None and last_duration and \
                    time - last_time > 2.5 * last_duration + 1e-3:
                damage.note(good, "frames missing")
            if frame.is_corrupt:
                damage.note(good, "corrupt frame")
            elif frame.key_frame or _is_intra(frame):
                damage.clean_keyframe(time)
            last_time = good = time
            last_duration = (frame.duration or 0) * time_base
            yield frame, time
