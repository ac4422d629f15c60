"""Decoding many videos in worker processes, streaming their clips in bounded chunks.

Each worker takes one video at a time: probe, plan the clips, read them, and send them
to the parent in chunks of ``chunk_clips``. The result queue is bounded, so memory is
bounded by the chunks in flight whatever the videos' lengths. Workers are started with
the ``spawn`` method: a pool forked after PyAV/FFmpeg threads ran in the parent can hang
(a forked child inherits the locks of those threads but not the threads; Python's
``multiprocessing`` docs, "Contexts and start methods"). A worker that dies (a crash
inside FFmpeg) costs only the video it was on: that video is reported as an error and a
new worker takes its place. A worker dies with its parent
(:func:`~vsslzoo.lifetime.exit_with_parent`), even one killed with -9.

This module imports no torch, so workers start light.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_module
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..config import PreprocessConfig
from ..errors import VideoDecodeError, VsslzooError
from ..lifetime import exit_with_parent
from .decode import DamagedSpan, read_clips, set_decode_threads, threads_per_worker
from .probe import VideoInfo, probe
from .sampling import ClipSampling, ClipSpan, plan_clips


@dataclass(frozen=True)
class VideoStart:
    """A video was probed: ``spans`` lists every clip that will follow."""

    video_id: int
    info: VideoInfo
    spans: tuple[ClipSpan, ...]


@dataclass(frozen=True)
class ClipChunk:
    """Clips ``first_index .. first_index + len(clips) - 1`` of a video, (n, 3, T, H, W)."""

    video_id: int
    first_index: int
    clips: np.ndarray


@dataclass(frozen=True)
class VideoFailed:
    """A video that could not be decoded; clips already sent for it must be discarded."""

    video_id: int
    reason: str


@dataclass(frozen=True)
class VideoEnd:
    """A video's last message after its chunks: ``damage`` says where the file is
    damaged (empty: intact), ``missing`` which clips of :class:`VideoStart`'s spans it
    cost (they will not come)."""

    video_id: int
    damage: tuple[DamagedSpan, ...] = ()
    missing: tuple[ClipSpan, ...] = ()


Message = VideoStart | ClipChunk | VideoFailed | VideoEnd


def decode_video(
    video_id: int,
    path: str,
    sampling: ClipSampling,
    preprocess: PreprocessConfig,
    chunk_clips: int,
) -> Iterator[Message]:
    """All messages for one video (used inline and inside workers).

    A video ends with :class:`VideoEnd`, or :class:`VideoFailed`. Decoding goes on past
    damage: the clips it costs are left out (chunks stay runs of consecutive clips) and
    ``VideoEnd`` says which and why; a video that yields no clip at all fails.
    """
    try:
        info = probe(path)
        plans = plan_clips(info.duration_s, info.fps, sampling, preprocess)
        yield VideoStart(video_id, info, tuple(p.span for p in plans))
        damage: list[DamagedSpan] = []
        buffer: list[np.ndarray] = []
        first = 0
        kept: set[int] = set()
        for plan, clip in read_clips(path, plans, resize=preprocess.resize,
                                     crop=preprocess.crop, info=info, damage=damage):
            index = plan.span.index
            if buffer and index != first + len(buffer):  # clips left out in between
                yield ClipChunk(video_id, first, np.stack(buffer))
                buffer = []
            if not buffer:
                first = index
            buffer.append(clip)
            kept.add(index)
            if len(buffer) == chunk_clips:
                yield ClipChunk(video_id, first, np.stack(buffer))
                buffer = []
        if buffer:
            yield ClipChunk(video_id, first, np.stack(buffer))
        if not kept:
            where = "; ".join(str(span) for span in damage[:3]) or "unknown"
            yield VideoFailed(video_id, f"no clip could be decoded intact (damaged {where})")
        else:
            yield VideoEnd(video_id, tuple(damage),
                           tuple(p.span for p in plans if p.span.index not in kept))
    except VideoDecodeError as exc:
        yield VideoFailed(video_id, exc.reason)
    except VsslzooError as exc:
        yield VideoFailed(video_id, str(exc))
    except (OSError, ValueError, RuntimeError, MemoryError) as exc:
        yield VideoFailed(video_id, f"{type(exc).__name__}: {exc}")


def _worker(worker_id: int, tasks, results, sampling, preprocess, chunk_clips,
            decode_threads: int = 0) -> None:
    # A worker blocked on the full result queue would outlive a parent killed with -9.
    exit_with_parent()
    set_decode_threads(decode_threads)  # workers x FFmpeg threads <= cores
    while True:
        task = tasks.get()
        if task is None:
            return
        video_id, path = task
        results.put(("begin", worker_id, video_id))
        for message in decode_video(video_id, path, sampling, preprocess, chunk_clips):
            results.put(message)
        results.put(("end", worker_id, video_id))


class DecodePool:
    """Decode ``paths`` with ``workers`` processes (0: in this process).

    Iterating over :meth:`run` yields :class:`VideoStart`, :class:`ClipChunk` and
    :class:`VideoFailed` messages; videos interleave, chunks of one video are in order.
    """

    def __init__(
        self,
        sampling: ClipSampling | str,
        preprocess: PreprocessConfig,
        *,
        workers: int = 0,
        chunk_clips: int = 8,
        chunks_in_flight: int | None = None,
        start_method: str = "spawn",
    ) -> None:
        if workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        self.sampling = ClipSampling.parse(sampling)
        self.preprocess = preprocess
        self.workers = workers
        self.chunk_clips = max(1, chunk_clips)
        self.chunks_in_flight = chunks_in_flight or max(4, 3 * workers)
        self.start_method = start_method
        self.processes: dict[int, mp.process.BaseProcess] = {}

    def run(self, paths: Sequence[str]) -> Iterator[Message]:
        if self.workers == 0:
            for video_id, path in enumerate(paths):
                yield from decode_video(video_id, path, self.sampling, self.preprocess,
                                        self.chunk_clips)
            return
        yield from self._run_processes(paths)

    def _start(self, context, worker_id: int, tasks, results):
        process = context.Process(
            target=_worker,
            args=(worker_id, tasks, results, self.sampling, self.preprocess, self.chunk_clips,
                  threads_per_worker(self.workers)),
            daemon=True,
            name=f"vsslzoo-decode-{worker_id}",
        )
        process.start()
        return process

    def _run_processes(self, paths: Sequence[str]) -> Iterator[Message]:
        context = mp.get_context(self.start_method)
        tasks = context.Queue()
        results = context.Queue(maxsize=self.chunks_in_flight)
        workers = {i: self._start(context, i, tasks, results) for i in range(self.workers)}
        self.processes = workers  # live view, for monitoring (and tests that kill one)
        current: dict[int, int] = {}  # worker id -> video id it is decoding
        next_video = 0
        finished = 0
        queued = 0

        def feed() -> None:
            nonlocal next_video, queued
            # Keep few tasks queued, so a crashed worker takes little work with it.
            while next_video < len(paths) and queued < len(workers):
                tasks.put((next_video, os.fspath(paths[next_video])))
                next_video += 1
                queued += 1

        try:
            feed()
            while finished < len(paths):
                try:
                    message = results.get(timeout=1.0)
                except queue_module.Empty:
                    for worker_id, process in list(workers.items()):
                        if process.is_alive():
                            continue
                        video_id = current.pop(worker_id, None)
                        workers[worker_id] = self._start(context, worker_id, tasks, results)
                        if video_id is not None:
                            finished += 1
                            yield VideoFailed(
                                video_id,
                                f"decoder process crashed (exit code {process.exitcode})",
                            )
                            feed()
                    continue
                if isinstance(message, tuple):
                    kind, worker_id, video_id = message
                    if kind == "begin":
                        current[worker_id] = video_id
                        queued -= 1
                    else:
                        current.pop(worker_id, None)
                        finished += 1
                    feed()
                    continue
                yield message
        finally:
            for _ in workers:
                tasks.put(None)
            for process in workers.values():
                process.join(timeout=2)
                if process.is_alive():
                    process.terminate()
            tasks.cancel_join_thread()
            results.cancel_join_thread()
