"""Extraction on Ray Data: CPU decode tasks, a pool of model actors, any cluster size.

``vsslzoo extract ... --engine ray`` (or :func:`extract`) runs this pipeline::

    videos (one per block) --flat_map(decode, tasks, 1 CPU each)--> rows: one per clip
      (uint8 pixels as bytes) and one "end" row per video (probe, planned spans, damage or
      the error) --map_batches(_Embedder, actor pool: the model loaded once per actor,
      batch_size clips, GPUs per actor)--> rows with raw clip features
      --> the driver: a video is complete when its end row and all its clips came;
          VideoFeatures -> FeatureWriter (the Parquet / npy layout of the local engine)

Decoding is :func:`vsslzoo.video.pool.decode_video`, the local engine's, one video to
many clips; a task streams its clips out as it reads them (memory per task is bounded
by a chunk of clips, not by the video's length). Clips of several videos share a model
batch, as in :func:`vsslzoo.extract.extract_videos`, so embeddings match the local
engine's to float tolerance.

Failures. Open-source Ray Data has no job checkpoint; resuming is the feature folder's
job: the driver commits whole videos in parts, and a re-run skips the videos whose parts
are committed. Ray Data restarts a model actor that dies and retries its in-flight batch
(``max_restarts=-1, max_task_retries=-1`` are its defaults for actor pools:
ray-project/ray python/ray/data/_internal/execution/operators/actor_pool_map_operator.py),
and Ray retries a decode task whose process dies (3 times); rows that arrive twice are
counted once. A video whose task fails for good (a decoder that crashes on it every
time) is skipped (``max_errored_blocks=-1``) and recorded as failed in errors.jsonl with
that reason; the next run tries it again.

Ray Data's API changed in 2.51: ``map_batches(concurrency=N)`` gave way to
``compute=ActorPoolStrategy(size=N)`` / ``TaskPoolStrategy(size=N)``
(ray-project/ray python/ray/data/_internal/util.py, ``get_compute_strategy``);
:func:`pool_args` passes what the installed release takes.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..config import PreprocessConfig
from ..errors import ConfigError
from ..video.sampling import ClipSampling, ClipSpan
from . import ExtractStats, VideoFeatures, _finish, _Pending

# The releases the tests ran on (pyproject's `ray` extra pins this range).
TESTED_RAY = ((2, 50), (2, 60))
COMPUTE_STRATEGY_SINCE = (2, 51)
_INSTALL = 'pip install "vsslzoo[ray]"'


def require_ray():
    """Import Ray Data, or say how to install it (one line)."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--engine ray needs Ray Data, which is not installed ({exc}); "
                          f"install it with: {_INSTALL}") from None
    return ray


def ray_version() -> tuple[int, int]:
    import ray

    major, minor = ray.__version__.split(".")[:2]
    return int(major), int(minor)


def pool_args(*, actors: int | None = None, tasks: int | None = None,
              version: tuple[int, int] | None = None) -> dict[str, Any]:
    """``map_batches`` arguments for a pool of ``actors`` actors or at most ``tasks`` tasks
    at once, in the form the installed Ray takes: ``concurrency=`` before 2.51,
    ``compute=ActorPoolStrategy(size=)`` / ``TaskPoolStrategy(size=)`` from 2.51."""
    version = version or ray_version()
    size = actors if actors is not None else tasks
    if size is None:
        return {}
    if version < COMPUTE_STRATEGY_SINCE:
        return {"concurrency": size}
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    return {"compute": ActorPoolStrategy(size=size) if actors is not None
            else TaskPoolStrategy(size=size)}


def connect(address: str | None = None) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), else start a local one on
    this machine's cores; a session already started (``ray.init`` by the caller) is used
    as it is."""
    ray = require_ray()
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no report sent home
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    address = address or os.environ.get("RAY_ADDRESS")
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local cluster"
        raise ConfigError(f"cannot start or join Ray ({where}): {exc}") from None


# -- decode tasks ---------------------------------------------------------------------
def _decode_rows(row: dict[str, Any], *, sampling: ClipSampling,
                 preprocess: PreprocessConfig, chunk_clips: int) -> Iterator[dict[str, Any]]:
    """A video's rows, streamed as it is read: one per clip, then its end row."""
    from ..video.decode import set_decode_threads
    from ..video.pool import ClipChunk, VideoEnd, VideoFailed, VideoStart, decode_video

    set_decode_threads(1)  # one task per core: more FFmpeg threads would oversubscribe it
    path = str(row["video_path"])
    start: VideoStart | None = None
    for message in decode_video(0, path, sampling, preprocess, chunk_clips):
        if isinstance(message, VideoStart):
            start = message
        elif isinstance(message, ClipChunk):
            for offset, clip in enumerate(message.clips):
                yield {"video_path": path, "clip_index": message.first_index + offset,
                       "clip": clip.tobytes(), "meta": ""}
        else:
            if isinstance(message, VideoFailed):
                meta: dict[str, Any] = {"error": message.reason}
            else:
                assert isinstance(message, VideoEnd) and start is not None
                meta = {"info": dataclasses.asdict(start.info),
                        "spans": [dataclasses.astuple(s) for s in start.spans],
                        "missing": [s.index for s in message.missing],
                        "damage": [d.to_dict() for d in message.damage]}
            yield {"video_path": path, "clip_index": -1, "clip": b"",
                   "meta": json.dumps(meta)}


# -- model actors ---------------------------------------------------------------------
class _Embedder:
    """A model actor: loads the model once, embeds the clip rows of each batch (end rows
    pass through with zero features)."""

    def __init__(self, model: str | None, backend: str, device: str | None, precision: str,
                 compile: bool, pooling: str) -> None:
        from .run import load_encoder

        self.encoder = load_encoder(model, backend=backend, device=device,
                                    precision=precision, compile=compile)
        if str(device).startswith("cpu") and backend == "torch":
            import torch

            # Ray sets OMP_NUM_THREADS to the actor's CPUs (1): a CPU model then runs
            # ~2-4x slower than the local engine's, whose torch uses every core while the
            # decoders run beside it. Do as the local engine does.
            torch.set_num_threads(len(os.sched_getaffinity(0)))
        self.pooling = pooling
        self.shape = self.encoder.preprocess.input_shape
        self.dim = self.encoder.output_dim(pooling)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = np.flatnonzero(batch["clip_index"] >= 0)
        features = np.zeros((len(batch["clip_index"]), self.dim), np.float32)
        if len(rows):
            clips = np.stack([np.frombuffer(batch["clip"][i], np.uint8).reshape(self.shape)
                              for i in rows])
            features[rows] = self.encoder.embed_raw(clips, pooling=self.pooling)
        return {"video_path": batch["video_path"], "clip_index": batch["clip_index"],
                "meta": batch["meta"], "features": features}


# -- the pipeline ---------------------------------------------------------------------
def default_pool(gpus_per_worker: float, model_workers: int | None,
                 decode_tasks: int | None, cpus_per_worker: float) -> tuple[int, int]:
    """(model actors, decode tasks at once) for the connected cluster: an actor per
    ``gpus_per_worker`` GPUs (one actor on CPUs), and the CPUs the actors leave for
    decoding (at least one): never more worker processes than cores."""
    import ray

    resources = ray.cluster_resources()
    cpus = int(resources.get("CPU", 1))
    if model_workers is None:
        gpus = resources.get("GPU", 0)
        if gpus_per_worker > 0:
            if gpus < gpus_per_worker:
                raise ConfigError(
                    f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has {gpus:g} "
                    "GPU(s); leave it at 0 to embed on CPUs")
            model_workers = int(gpus // gpus_per_worker)
        else:
            model_workers = 1
    if decode_tasks is None:
        decode_tasks = max(1, cpus - int(np.ceil(model_workers * cpus_per_worker)))
    return model_workers, decode_tasks


def clip_dataset(
    model: str | None,
    paths: Sequence[str],
    *,
    preprocess: PreprocessConfig,
    backend: str = "torch",
    device: str | None = None,
    precision: str = "fp32",
    compile: bool = False,
    clips: str | ClipSampling = "uniform:10",
    pooling: str = "avg",
    batch_size: int | None = None,
    model_workers: int | None = None,
    gpus_per_worker: float = 0,
    cpus_per_worker: float = 1,
    decode_tasks: int | None = None,
):
    """The lazy Ray Dataset of raw clip features of ``paths``.

    Rows: ``video_path``; ``clip_index`` (-1 on a video's end row); ``features``
    (float32 ``(D,)``, un-normalised; zeros on end rows); ``meta`` (on end rows: JSON
    with ``info``, ``spans``, ``missing``, ``damage``, or ``error``). The caller is
    connected to Ray (:func:`connect`). :func:`extract_videos` turns it into
    :class:`~vsslzoo.extract.VideoFeatures`.
    """
    import ray.data

    from . import CPU_BATCH_SIZE, GPU_BATCH_SIZE

    sampling = ClipSampling.parse(clips)
    model_workers, decode_tasks = default_pool(gpus_per_worker, model_workers, decode_tasks,
                                               cpus_per_worker)
    if batch_size is None:
        batch_size = GPU_BATCH_SIZE if gpus_per_worker > 0 else CPU_BATCH_SIZE
    on_gpu = gpus_per_worker > 0
    videos = ray.data.from_items([{"video_path": path} for path in paths],
                                 override_num_blocks=max(1, len(paths)))
    # flat_map (one video -> many rows) before a batched map_batches: Ray Data keeps them
    # apart (decode tasks, then actors) instead of fusing decoding into the actors
    # (ray-project/ray python/ray/data/_internal/logical/rules/operator_fusion.py).
    decoded = videos.flat_map(
        _decode_rows, num_cpus=1,
        fn_kwargs={"sampling": sampling, "preprocess": preprocess,
                   "chunk_clips": min(batch_size, 8)},
        **pool_args(tasks=decode_tasks))
    embedded = decoded.map_batches(
        _Embedder, batch_size=batch_size, batch_format="numpy",
        num_cpus=cpus_per_worker, num_gpus=gpus_per_worker if on_gpu else None,
        fn_constructor_kwargs={"model": model, "backend": backend,
                               "device": device or ("cuda" if on_gpu else "cpu"),
                               "precision": precision, "compile": compile,
                               "pooling": pooling},
        **pool_args(actors=model_workers))
    context = embedded.context
    context.max_errored_blocks = -1  # a video that fails for good is reported, not fatal
    context.enable_progress_bars = False  # the caller shows progress (videos written)
    if hasattr(context, "print_on_execution_start"):
        context.print_on_execution_start = False
    return embedded


def extract_videos(
    model: str | None,
    paths: Sequence[str | os.PathLike[str]],
    *,
    preprocess: PreprocessConfig,
    embed_dim: int,
    address: str | None = None,
    stats: ExtractStats | None = None,
    **options: Any,
) -> Iterator[VideoFeatures]:
    """As :func:`vsslzoo.extract.extract_videos`, on Ray: yields one
    :class:`~vsslzoo.extract.VideoFeatures` per video as it completes (any order).

    ``model`` is what the actors load (zoo name, ``hf-hub:``, a folder every node can
    read, or an export folder for the onnxruntime/tensorrt backends); ``preprocess`` and
    ``embed_dim`` are that model's (the driver loaded it to write the manifest).
    ``options``: those of :func:`clip_dataset`. A video lost to a task that failed for
    good is yielded with ``error`` set.
    """
    stats = stats if stats is not None else ExtractStats()
    paths = [os.fspath(p) for p in paths]
    if not paths:
        return  # nothing to do (a re-run of a finished job): no cluster to start
    connect(address)
    dataset = clip_dataset(model, paths, preprocess=preprocess, **options)
    pending: dict[str, dict[int, np.ndarray]] = {}
    ends: dict[str, dict[str, Any]] = {}
    finished: set[str] = set()
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for row, (path, index) in enumerate(zip(batch["video_path"], batch["clip_index"])):
            path = str(path)
            if path in finished:
                continue  # a retried task sent it again
            if index >= 0:
                pending.setdefault(path, {})[int(index)] = batch["features"][row]
            else:
                ends[path] = json.loads(batch["meta"][row])
            result = _complete(path, ends.get(path), pending.get(path, {}), embed_dim, stats)
            if result is not None:
                finished.add(path)
                ends.pop(path, None)
                pending.pop(path, None)
                yield result
    for path in paths:
        if path not in finished:
            stats.videos_failed += 1
            yield VideoFeatures(path, np.zeros((0, 0), np.float32), [], None,
                                error="lost: its Ray task failed for good (see the Ray "
                                      "logs); run the same command again to retry it")


def _complete(path: str, end: dict[str, Any] | None, clips: dict[int, np.ndarray],
              embed_dim: int, stats: ExtractStats) -> VideoFeatures | None:
    """The video's features once its end row and every clip it kept came; else None."""
    if end is None:
        return None
    if "error" in end:
        stats.videos_failed += 1
        return VideoFeatures(path, np.zeros((0, 0), np.float32), [], None,
                             error=end["error"])
    from ..video.decode import DamagedSpan
    from ..video.probe import VideoInfo

    if len(clips) < len(end["spans"]) - len(end["missing"]):
        return None
    spans = tuple(ClipSpan(*span) for span in end["spans"])
    missing = set(end["missing"])
    kept = [span.index for span in spans if span.index not in missing]
    if any(index not in clips for index in kept):
        return None
    raw = np.zeros((len(spans), embed_dim), np.float32)
    for position, span in enumerate(spans):
        if span.index in clips:
            raw[position] = clips[span.index]
    entry = _Pending(path, VideoInfo(**end["info"]), spans, raw, done=len(kept), ended=True,
                     damage=tuple(DamagedSpan(**d) for d in end["damage"]),
                     missing=tuple(span for span in spans if span.index in missing))
    stats.clips += len(kept)
    return _finish(entry, stats)


def extract(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    address: str | None = None,
    model_workers: int | None = None,
    gpus_per_worker: float = 0,
    cpus_per_worker: float = 1,
    **options: Any,
):
    """``vsslzoo extract INPUTS -o OUTPUT --engine ray`` from Python: list the inputs
    (folders, files, list files of paths or URLs), skip what ``output`` holds, embed the
    rest on Ray and write the feature folder. Returns the
    :class:`~vsslzoo.extract.run.ExtractReport`.

    ``options``: those of :func:`vsslzoo.extract.run.extract_to_folder` (``model``,
    ``backend``, ``clips``, ``batch_size``, ``shard``, ``workers`` (decode tasks at
    once), ...). For the dataset itself (to write it elsewhere, or to join it with other
    columns) use :func:`clip_dataset`.
    """
    from .run import extract_to_folder

    return extract_to_folder(
        inputs, output, engine="ray",
        ray_options={"address": address, "model_workers": model_workers,
                     "gpus_per_worker": gpus_per_worker, "cpus_per_worker": cpus_per_worker},
        **options)
