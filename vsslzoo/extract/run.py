"""An extraction run into a feature folder: what ``vsslzoo extract`` does, on either engine.

List the inputs (folders, files, list files of paths or URLs), keep this job's shard,
skip the videos whose features the folder already holds (its committed parts), embed
the others (``engine="local"``: :func:`vsslzoo.extract.extract_videos`, decode processes
on this machine; ``engine="ray"``: :func:`vsslzoo.extract.ray.extract_videos`, a Ray
Data pipeline), and write them with a :class:`~vsslzoo.feature_store.FeatureWriter`:
the same parts, manifest and errors file whichever engine embedded them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..sharding import Shard
from . import ExtractStats, VideoFeatures

ENGINES = ("local", "ray")


@dataclass
class ExtractReport:
    """What a run did: ``videos`` listed (this shard's), ``skipped`` (already in the
    folder), ``failures`` and ``partials`` as (path, why), counters in ``stats``."""

    output: str
    videos: int = 0
    skipped: int = 0
    stats: ExtractStats = field(default_factory=ExtractStats)
    failures: list[tuple[str, str]] = field(default_factory=list)
    partials: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def extract_to_folder(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    model: str | None = None,
    backend: str = "torch",
    device: str | None = None,
    precision: str = "fp32",
    compile: bool = False,
    clips: str = "uniform:10",
    pooling: str = "avg",
    batch_size: int | None = None,
    fmt: str = "parquet",
    commit_every: int = 64,
    shard: Shard | str | None = None,
    recursive: bool = True,
    engine: str = "local",
    workers: int | None = None,
    ray_options: dict[str, Any] | None = None,
    report: ExtractReport | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_video: Callable[[VideoFeatures, ExtractStats], None] | None = None,
) -> ExtractReport:
    """Extract the features of the videos named by ``inputs`` into ``output``.

    Args:
        model: zoo name, ``hf-hub:`` reference or model folder (None: the default model);
            for backend "onnxruntime"/"tensorrt" a folder written by ``vsslzoo export``.
        backend: "torch", "onnxruntime", "tensorrt", or "auto"
            (:func:`vsslzoo.loading.auto_backend`; torch on the Ray engine).
        shard: only shard ``I/N`` of the listed videos (:mod:`vsslzoo.sharding`); its
            parts, errors file and lock carry the shard's name, so the N shards of an
            array job write into one folder at once.
        engine: "local" or "ray".
        workers: decode processes (local; 0: in this process) or concurrent decode
            tasks (ray); None: the engine's default.
        ray_options: keyword arguments of :func:`vsslzoo.extract.ray.extract_videos`
            (``address``, ``model_workers``, ``gpus_per_worker``, ...).
        report: filled as the run goes (a caller that catches Ctrl-C reads it then).
        on_start: called with (videos to embed, videos skipped) once listed.
        on_video: called with each video's result (after it is buffered for writing).

    Raises:
        ConfigError: no video found, unknown engine, bad shard.
        KeyboardInterrupt: after committing what was embedded.
    """
    from ..feature_store import FeatureWriter, feature_manifest
    from ..video.files import VIDEO_EXTENSIONS, list_videos, video_key
    from ..video.sampling import ClipSampling

    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    report = report if report is not None else ExtractReport(os.fspath(output))
    started = time.perf_counter()
    shard = Shard.parse(shard)
    sampling = ClipSampling.parse(clips)
    videos = list_videos(list(inputs), recursive=recursive)
    if not videos:
        raise ConfigError(
            f"no video files found in {', '.join(map(os.fspath, inputs))} (looked for "
            f"{', '.join(sorted(VIDEO_EXTENSIONS))}, and list files *.txt)")
    if shard is not None:
        videos = shard.select(videos)
    if backend == "auto":  # Ray's actors (GPUs among them) run torch
        from ..loading import auto_backend

        backend = "torch" if engine == "ray" else auto_backend(
            model, device=device, precision=precision, compile=compile)
    if engine == "ray":
        from . import ray as ray_engine

        ray_engine.require_ray()
        # the driver needs only the model's identity and preprocessing: the CPU will do
        encoder = load_encoder(model, backend=backend, device="cpu")
    else:
        encoder = load_encoder(model, backend=backend, device=device, precision=precision,
                               compile=compile)
    manifest = feature_manifest(encoder, sampling, pooling)
    with FeatureWriter(output, manifest=manifest, fmt=fmt, part_videos=commit_every,
                       shard=shard) as writer:
        todo = [video for video in videos if video_key(video) not in writer.done]
        report.videos, report.skipped = len(videos), len(videos) - len(todo)
        if on_start is not None:
            on_start(len(todo), report.skipped)
        if engine == "ray":
            results = ray_engine.extract_videos(
                model, todo, backend=backend, device=device, precision=precision,
                compile=compile, clips=sampling, pooling=pooling, batch_size=batch_size,
                decode_tasks=workers, preprocess=encoder.preprocess,
                embed_dim=encoder.output_dim(pooling), stats=report.stats,
                **(ray_options or {}))
        else:
            from . import extract_videos

            results = extract_videos(encoder, todo, clips=sampling, batch_size=batch_size,
                                     workers=default_workers() if workers is None else workers,
                                     pooling=pooling, stats=report.stats)
        try:
            for result in results:
                writer.add(result)
                if result.error is not None:
                    report.failures.append((result.path, result.error))
                elif result.partial:
                    report.partials.append((result.path, result.damage_report()))
                if on_video is not None:
                    on_video(result, report.stats)
        finally:
            report.seconds = time.perf_counter() - started
            if hasattr(encoder, "wait"):
                encoder.wait()  # never return while the loading thread imports torch
    return report


def load_encoder(model: str | None, *, backend: str = "torch", device: str | None = None,
                 precision: str = "fp32", compile: bool = False):
    """:func:`vsslzoo.loading.load_auto`: backend "auto" (ONNX Runtime for a model that
    ships its graph, else torch), torch (loaded in the background unless ``compile``), or
    onnxruntime / tensorrt (``model``: a ``vsslzoo export`` folder; fp32 means no reduced
    precision)."""
    from ..loading import load_auto

    return load_auto(model, backend=backend, device=device, precision=precision,
                     compile=compile)


def default_workers() -> int:
    """Decode processes on this machine: one core is left to the model (at most 8)."""
    return max(1, min(8, (os.cpu_count() or 2) - 1))
