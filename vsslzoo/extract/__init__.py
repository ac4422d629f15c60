"""Clip- and video-level embeddings of video files.

``extract_videos`` pipes decoded clips (from :class:`~vsslzoo.video.pool.DecodePool`,
worker processes overlapping with model compute) into batches that mix clips of several
videos, and yields one :class:`VideoFeatures` per video as soon as all of its clips are
embedded. Failed videos are yielded too (``error`` set) so callers can report them and
go on. A damaged video that still yields clips is *partial*: its intact clips are
embedded and ``damage`` says where the rest went.

Video-level embedding: the mean of the video's *un-normalised* clip features, then L2
normalisation (the VCOP/CoCLR retrieval protocol); clip embeddings are L2-normalised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..video.decode import DamagedSpan
from ..video.pool import ClipChunk, DecodePool, VideoEnd, VideoFailed, VideoStart
from ..video.probe import VideoInfo
from ..video.sampling import ClipSampling, ClipSpan

GPU_BATCH_SIZE = 16
# On the CPU a batch of R(2+1)D-18 buys little speed (one clip already fills the cores)
# and costs memory: +5 % clips/s and +0.3 GiB at 8 against 4; a small model such as the
# default needs a batch to fill the cores: 27 ms a clip in batches of 4, 16 ms in
# batches of 8 or 16 (bench/RESULTS.md, "CPU batch size").
CPU_BATCH_SIZE = 8
# Clips per message from a decode worker (at most a batch).
_CHUNK_CLIPS = 8
# While the model is still loading (vsslzoo.loading.load_in_background), decoded clips
# wait in memory up to this many bytes, so decoding goes on meanwhile.
READ_AHEAD_BYTES = 256 * 2**20


def default_batch_size(model) -> int:
    """Clips per model call when none is asked for: :data:`GPU_BATCH_SIZE` on a GPU,
    :data:`CPU_BATCH_SIZE` on the CPU."""
    device = str(getattr(model, "device", "cpu"))
    return GPU_BATCH_SIZE if device.startswith("cuda") else CPU_BATCH_SIZE


def l2_normalize(array: np.ndarray, axis: int = -1) -> np.ndarray:
    norm = np.linalg.norm(array, axis=axis, keepdims=True)
    return (array / np.maximum(norm, 1e-12)).astype(np.float32)


@dataclass
class VideoFeatures:
    """Embeddings of one video.

    Attributes:
        path: the video file.
        embeddings: ``(N, D)`` float32, L2-normalised, one row per clip.
        spans: N :class:`ClipSpan` (which moment each row is).
        video_embedding: ``(D,)`` float32, L2-normalised mean of the clip features.
        info: the video's probe result.
        video_mean: ``(D,)`` float32, the un-normalised mean of the clip features (for
            protocols that centre features before normalising).
        error: why the video failed (then the arrays are empty).
        damage: where the file is damaged (empty for an intact file); the clips that
            damage cost are not in ``embeddings`` but in ``missing_spans``.
        missing_spans: the planned clips left out because of damage.
    """

    path: str
    embeddings: np.ndarray
    spans: list[ClipSpan]
    video_embedding: np.ndarray | None
    info: VideoInfo | None = None
    error: str | None = None
    video_mean: np.ndarray | None = None
    damage: list[DamagedSpan] = field(default_factory=list)
    missing_spans: list[ClipSpan] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def partial(self) -> bool:
        """Embedded, but from a damaged file (some clips may be left out)."""
        return self.error is None and bool(self.damage or self.missing_spans)

    def damage_report(self) -> str | None:
        """One line on where a partial video is damaged and what it cost; None if intact."""
        if not self.partial:
            return None
        where = "; ".join(str(span) for span in self.damage) or "at an unknown place"
        planned = len(self.spans) + len(self.missing_spans)
        return f"damaged {where} ({len(self.missing_spans)} of {planned} clips left out)"


@dataclass
class _Pending:
    path: str
    info: VideoInfo
    spans: tuple[ClipSpan, ...]
    raw: np.ndarray  # (N, D) un-normalised features, filled as batches finish
    done: int = 0
    ended: bool = False  # its VideoEnd came: ``missing`` clips will not
    damage: tuple[DamagedSpan, ...] = ()
    missing: tuple[ClipSpan, ...] = ()

    @property
    def complete(self) -> bool:
        return self.ended and self.done == len(self.spans) - len(self.missing)


@dataclass
class ExtractStats:
    """Counters for progress bars and summaries."""

    videos_ok: int = 0
    videos_failed: int = 0
    videos_partial: int = 0  # counted in videos_ok too
    clips: int = 0
    started: float = field(default_factory=time.perf_counter)

    @property
    def clips_per_s(self) -> float:
        return self.clips / max(time.perf_counter() - self.started, 1e-9)


def extract_videos(
    model,
    paths: Sequence[str | os.PathLike[str]],
    *,
    clips: str | ClipSampling = "uniform:10",
    batch_size: int | None = None,
    workers: int = 0,
    pooling: str = "avg",
    stats: ExtractStats | None = None,
) -> Iterator[VideoFeatures]:
    """Embed every video of ``paths``; yields results as videos finish (any order).

    Args:
        model: a loaded :class:`~vsslzoo.encoder.VideoEncoder` (or any backend with
            ``embed_raw(clips, pooling) -> (B, D)`` and ``preprocess``).
        clips: sampling spec (``uniform:N``, ``sliding:S``, ``segment:A-B``).
        batch_size: clips per model call (clips of several videos share a batch);
            None: :func:`default_batch_size` (16 on a GPU, 8 on the CPU).
        workers: decoding processes (0: decode in this process).
        pooling: "avg" (global average) or "vcop" (adaptive pool to 2x3x3, flattened).
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    stats = stats if stats is not None else ExtractStats()
    paths = [os.fspath(p) for p in paths]
    pool = DecodePool(clips, model.preprocess, workers=workers,
                      chunk_clips=min(batch_size or _CHUNK_CLIPS, _CHUNK_CLIPS))
    pending: dict[int, _Pending] = {}
    batch: list[tuple[int, int, np.ndarray]] = []  # (video id, clip index, (n,3,T,H,W))
    batch_clips = 0

    def run_batch() -> Iterator[VideoFeatures]:
        nonlocal batch, batch_clips
        if not batch:
            return
        stacked = np.concatenate([chunk for _, _, chunk in batch]) if len(batch) > 1 \
            else batch[0][2]
        features = model.embed_raw(stacked, pooling=pooling)
        offset = 0
        finished = []
        for video_id, first, chunk in batch:
            n = len(chunk)
            entry = pending.get(video_id)
            if entry is not None:  # None: the video failed after this chunk was queued
                entry.raw[first:first + n] = features[offset:offset + n]
                entry.done += n
                if entry.complete:
                    finished.append(video_id)
            offset += n
        stats.clips += batch_clips
        batch, batch_clips = [], 0
        for video_id in finished:
            yield _finish(pending.pop(video_id), stats)

    for message in _read_ahead(pool.run(paths), model):
        if isinstance(message, VideoStart):
            pending[message.video_id] = _Pending(
                paths[message.video_id], message.info, message.spans,
                np.zeros((len(message.spans), 0), np.float32),
            )
        elif isinstance(message, ClipChunk):
            entry = pending.get(message.video_id)
            if entry is None:
                continue
            if entry.raw.shape[1] == 0:
                entry.raw = np.zeros((len(entry.spans), _dim(model, pooling)), np.float32)
            if batch_size is None:  # the device decides; known once the model is loaded
                batch_size = default_batch_size(model)
            # split chunks so a batch never exceeds batch_size clips
            start = 0
            while start < len(message.clips):
                take = min(batch_size - batch_clips, len(message.clips) - start)
                batch.append((message.video_id, message.first_index + start,
                              message.clips[start:start + take]))
                batch_clips += take
                start += take
                if batch_clips == batch_size:
                    yield from run_batch()
        elif isinstance(message, VideoEnd):
            entry = pending.get(message.video_id)
            if entry is None:
                continue
            entry.ended, entry.damage, entry.missing = True, message.damage, message.missing
            if entry.complete:  # its last clips were embedded already
                yield _finish(pending.pop(message.video_id), stats)
        elif isinstance(message, VideoFailed):
            pending.pop(message.video_id, None)
            stats.videos_failed += 1
            yield VideoFeatures(paths[message.video_id], np.zeros((0, 0), np.float32), [],
                                None, error=message.reason)
    yield from run_batch()


def _read_ahead(messages: Iterator, model, max_bytes: int | None = None) -> Iterator:
    """The decode pool's messages, in order; while ``model`` is still loading (it has
    ``ready()``, as :class:`~vsslzoo.loading.LoadingEncoder`), they are taken from the
    workers at once and held here, up to ``max_bytes`` of clips (default
    :data:`READ_AHEAD_BYTES`), so that the workers decode on instead of waiting for the
    model."""
    ready = getattr(model, "ready", None)
    if ready is None:
        yield from messages
        return
    limit = READ_AHEAD_BYTES if max_bytes is None else max_bytes
    held: list = []
    size = 0
    for message in messages:
        if not held and ready():
            yield message
            continue
        held.append(message)
        size += message.clips.nbytes if isinstance(message, ClipChunk) else 0
        if size >= limit or ready():
            yield from held
            held, size = [], 0
    yield from held


def _dim(model, pooling: str) -> int:
    return model.output_dim(pooling)


def _finish(entry: _Pending, stats: ExtractStats) -> VideoFeatures:
    stats.videos_ok += 1
    missing = {span.index for span in entry.missing}
    kept = [i for i, span in enumerate(entry.spans) if span.index not in missing]
    raw = entry.raw[kept] if missing else entry.raw
    if entry.damage or missing:
        stats.videos_partial += 1
    return VideoFeatures(
        path=entry.path,
        embeddings=l2_normalize(raw),
        spans=[entry.spans[i] for i in kept],
        video_embedding=l2_normalize(raw.mean(axis=0)),
        info=entry.info,
        video_mean=raw.mean(axis=0).astype(np.float32),
        damage=list(entry.damage),
        missing_spans=list(entry.missing),
    )
