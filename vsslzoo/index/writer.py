"""``vsslzoo index``: build or update an index folder, incrementally and crash-safely.

One run: take the folder's lock; write the manifest (the model's identity) if the folder
has none, before anything is committed; compare the files under the inputs with the
database (unchanged: same size and mtime, or same content fingerprint -> skipped; changed ->
re-embedded, old vectors removed; gone -> removed); embed the new and changed videos;
commit them to SQLite in batches (each batch one transaction that also bumps the
generation); at the end write the FAISS files of the final generation and the manifest.

Killing the process at any moment leaves the last committed generation: its videos are
in the database, and if the FAISS files are older than it they are rebuilt from the
database (the embeddings are stored there). The next run skips what was committed, so
nothing is embedded twice and nothing is lost.

:func:`update_index_from_features` fills the same database from a feature folder
(``vsslzoo extract`` output, made on any machine or cluster) instead of embedding
videos: same transactions, same guarantees.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..encoder import model_source
from ..errors import VsslzooError
from ..locking import FolderLock
from ..sharding import Shard
from ..video.files import not_video_message, scan_videos
from . import vectors as vx
from .layout import (
    LEVELS,
    MANIFEST,
    IndexFolderError,
    faiss_path,
    read_manifest,
    stale_files,
    write_manifest,
)
from .metadata import INDEXED, MetadataDB, content_fingerprint

LEVEL_CHOICES = ("video", "clip", "both")
# A new index's clips (with a clip level): one every second, as the retrieval benchmark
# embeds (bench/retrieval.py) and as the speed budget is set (bench/extract.py
# --default-model): a moment's granularity is a second, and a model whose clips last
# under a second is not run back to back over every frame.
CLIP_SAMPLING = "sliding:1"
# A new index's clips without a clip level: the video retrieval protocol's.
VIDEO_SAMPLING = "uniform:10"


@dataclass
class IndexReport:
    """What a run did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    partial: list[tuple[str, str]] = field(default_factory=list)  # (path, where damaged)
    skipped_failed: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    clips: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Todo:
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    replaces: int | None  # video id of the old version of a changed file


def _levels(level: str) -> tuple[str, ...]:
    if level not in LEVEL_CHOICES:
        raise IndexFolderError(f"--level must be one of {LEVEL_CHOICES}, got {level!r}")
    return LEVELS if level == "both" else (level,)


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made an index's vectors: what its manifest records and checks."""

    source: str  # how to load it again (zoo name, hf-hub:..., absolute folder path)
    name: str | None
    weights_sha256: str | None
    architecture: str
    embed_dim: int
    preprocess: dict[str, Any]

    @classmethod
    def of(cls, model) -> ModelIdentity:
        """The identity of a loaded :class:`~vsslzoo.encoder.VideoEncoder`."""
        return cls(model_source(model), model.config.name, model.weights_sha256,
                   model.config.architecture, model.embed_dim, model.preprocess.to_dict())

    @classmethod
    def of_features(cls, manifest: dict[str, Any], folder: str) -> ModelIdentity:
        """The identity recorded in a feature folder's manifest (``vsslzoo extract``)."""
        if manifest.get("pooling", "avg") != "avg":
            raise IndexFolderError(
                f"{folder} holds {manifest['pooling']!r}-pooled features; an index holds "
                "average-pooled ones: extract again with --pooling avg (the default)")
        source = manifest["model"]
        if not os.path.isabs(source) and os.path.isdir(source):  # older manifests
            source = os.path.abspath(source)
        return cls(source, manifest.get("model_name"), manifest.get("weights_sha256"),
                   manifest["architecture"], int(manifest["embed_dim"]),
                   manifest["preprocess"])


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class IndexWriter:
    """Updates one index folder with one model. Use :func:`update_index` or
    :func:`update_index_from_features`.

    ``sampling``: the clips the vectors come from (features: what they were extracted
    with); None: :data:`CLIP_SAMPLING` (a clip every second) with a clip level, else
    :data:`VIDEO_SAMPLING`, or what an existing index records.
    """

    def __init__(self, folder: Path, model: ModelIdentity, *, level: str,
                 factory: str | None, exact_below: int, sampling: str | None = None) -> None:
        self.folder = folder
        self.model = model
        self.levels = _levels(level)
        self.factory = factory
        self.exact_below = exact_below
        self.dim = model.embed_dim
        self.sampling = sampling
        self.video_sampling = sampling or (
            CLIP_SAMPLING if "clip" in self.levels else VIDEO_SAMPLING)
        self.db: MetadataDB | None = None
        self.indices: dict[str, Any] = {}
        self.rebuild: set[str] = set()
        self._touch: list[tuple[int, int]] = []  # (video id, new mtime) of touched files
        self._manifest_pending = False  # a new index's manifest, written at its 1st commit

    # -- opening -----------------------------------------------------------------------
    def open(self) -> None:
        manifest_path = self.folder / MANIFEST
        if manifest_path.exists():
            self.manifest = read_manifest(self.folder)
            self._check_compatible()
            self.video_sampling = self.manifest.get("video_sampling", self.video_sampling)
            self.db = MetadataDB(self.folder)
        else:
            self.db = MetadataDB(self.folder)
            if self.db.generation > 0:
                raise IndexFolderError(
                    f"{self.folder} holds an index database but no {MANIFEST} (a run of an "
                    "older vsslzoo killed before it finished?), so which model made its "
                    "vectors is unknown; delete the folder to start over, or build into "
                    "another folder with -o"
                )
            self.manifest = {
                "format": "vsslzoo-index/1",
                "model": self.model.source,
                "model_name": self.model.name,
                "weights_sha256": self.model.weights_sha256,
                "architecture": self.model.architecture,
                "embed_dim": self.dim,
                "preprocess": self.model.preprocess,
                "metric": "cosine (inner product of L2-normalised vectors)",
                "normalization": "l2",
                "pooling": "avg",
                "levels": list(self.levels),
                "clip_sampling": self.video_sampling if "clip" in self.levels else None,
                "video_sampling": self.video_sampling,
                "video_embedding": "L2-normalised mean of the clip features",
                "factory_override": self.factory,
                "generation": 0,
            }
            # Written with the first commit (below), not now: a run killed before
            # finish() must leave the model's identity behind, or the next run could add
            # another model's vectors (or other levels) to the ones committed; and a run
            # that commits nothing (its model failed to load, say) must leave no
            # identity behind, or the next run with the right model would be refused.
            self._manifest_pending = True
        generation = self.db.generation
        for level in self.levels:
            path = faiss_path(self.folder, level, generation)
            if path.exists():
                self.indices[level] = vx.load_index(path)
            elif generation > 0:  # files behind the database: a killed run
                self.indices[level] = self._built(level)
            else:
                self.indices[level] = vx.new_index(self.dim, self._factory_for(level, 0))
            if self.factory and self.manifest.get("factory_override") != self.factory:
                self.rebuild.add(level)
        for path in stale_files(self.folder, generation):
            path.unlink(missing_ok=True)

    def _check_compatible(self) -> None:
        mine = {"weights_sha256": self.model.weights_sha256, "embed_dim": self.dim,
                "architecture": self.model.architecture, "levels": list(self.levels)}
        differing = {k: (self.manifest.get(k), v) for k, v in mine.items()
                     if self.manifest.get(k) != v}
        if differing:
            detail = "; ".join(f"{k}: {old!r} in the index vs {new!r} now"
                               for k, (old, new) in differing.items())
            source = "features of the same model" if self.sampling else "the same model"
            raise IndexFolderError(
                f"{self.folder} was built differently ({detail}). Update it with {source} "
                f"and --level (model: {self.manifest.get('model')}), or build a new "
                "index with -o ANOTHER_FOLDER"
            )
        indexed = self.manifest.get("video_sampling")
        if self.sampling and indexed and self.sampling != indexed:
            raise IndexFolderError(
                f"{self.folder} holds vectors of {indexed} clips; these features were "
                f"extracted with --clips {self.sampling}. Extract with --clips {indexed} "
                "to add to it, or build a new index with -o ANOTHER_FOLDER")

    def _factory_for(self, level: str, count: int) -> str:
        return self.factory or vx.auto_factory(count, self.exact_below)

    def _built(self, level: str):
        count = self.db.count(level)
        return vx.build_index(self.dim, self._factory_for(level, count),
                              self.db.iter_vectors(level, self.dim))

    # -- planning ----------------------------------------------------------------------
    def plan(self, inputs: Sequence[str], report: IndexReport, shard: Shard | None = None
             ) -> tuple[list[_Todo], list[int]]:
        scan = scan_videos(list(inputs))  # an input folder that cannot be listed raises
        if scan.missing:
            raise IndexFolderError(
                f"{scan.missing[0]} does not exist (an unmounted drive? moved?); nothing was "
                f"changed in {self.folder}. Mount it, or leave it out of the inputs (the "
                "videos indexed under it stay as they are)"
            )
        files = [os.path.abspath(p) for p in scan.files]
        roots = [os.path.abspath(p) for p in inputs]
        present = set(files)
        rows = [row for row in self.db.videos(status=None) if _under(row.path, roots)]
        if shard is not None:  # the other shards' videos are theirs to add and remove
            files = [path for path in files if shard.owns(path)]
            rows = [row for row in rows if shard.owns(row.path)]
        # Videos under a folder that cannot be listed are unknown, not gone; an input
        # folder with no entry at all is what an unmounted mount point looks like.
        unseen = [(folder, f"cannot be listed ({reason})") for folder, reason in scan.unreadable]
        unseen += [(folder, "is empty (an unmounted drive?)") for folder in scan.empty_inputs]
        for folder, why in unseen:
            kept = sum(_under(row.path, [folder]) for row in rows)
            if kept:
                warnings.warn(f"{folder} {why}: its {kept} indexed video(s) are kept as "
                              "they are", UserWarning, stacklevel=3)
        if scan.not_video:
            warnings.warn(not_video_message(scan.not_video), UserWarning, stacklevel=3)
        unseen_folders = [folder for folder, _ in unseen]
        gone = [row.id for row in rows
                if row.path not in present and not _under(row.path, unseen_folders)]
        todo: list[_Todo] = []
        hashes: dict[str, str] = {}
        for path in files:
            try:
                stat = os.stat(path)
                fingerprint = None
            except OSError:
                stat, fingerprint = None, ""
            row = self.db.video_by_path(path)
            size = stat.st_size if stat else -1
            mtime = stat.st_mtime_ns if stat else -1
            if row is not None and row.size == size and row.mtime_ns == mtime:
                if row.status in INDEXED:
                    report.unchanged += 1
                else:
                    report.skipped_failed += 1
                continue
            if fingerprint is None:
                try:
                    fingerprint = content_fingerprint(path)
                except OSError:
                    fingerprint = ""
            if row is not None and row.status in INDEXED and fingerprint \
                    and fingerprint == row.content_hash:
                self._touch.append((row.id, mtime))  # touched, not changed
                report.unchanged += 1
                continue
            if fingerprint:
                twin = hashes.get(fingerprint) or self._indexed_twin(fingerprint, path)
                if twin:
                    report.duplicates.append((path, twin))
                hashes.setdefault(fingerprint, path)
            todo.append(_Todo(path, size, mtime, fingerprint, row.id if row else None))
        return todo, gone

    def _indexed_twin(self, fingerprint: str, path: str) -> str | None:
        row = self.db.conn.execute(
            "SELECT path FROM videos WHERE content_hash = ? AND path != ? AND status IN "
            "('ok', 'partial') LIMIT 1", (fingerprint, path)).fetchone()
        return row[0] if row else None

    # -- committing --------------------------------------------------------------------
    def commit(self, results: list[tuple[_Todo, Any]], remove: Sequence[int] = ()) -> None:
        """One transaction: remove ``remove`` and replaced videos, insert ``results``."""
        db = self.db
        if self._manifest_pending:
            write_manifest(self.folder, self.manifest)
            self._manifest_pending = False
        old_ids = list(remove) + [t.replaces for t, _ in results if t.replaces is not None]
        old_clip_ids = db.clip_ids_of(old_ids) if "clip" in self.levels else []
        added: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {lv: [] for lv in self.levels}
        with db.conn:  # BEGIN ... COMMIT (ROLLBACK on error)
            for video_id, mtime in self._touch:
                db.touch_video(video_id, mtime)
            db.delete_videos(old_ids)
            for todo, features in results:
                ok = features.error is None
                partial = ok and getattr(features, "partial", False)
                video_id = db.insert_video(
                    path=todo.path, size=todo.size, mtime_ns=todo.mtime_ns,
                    content_hash=todo.content_hash,
                    duration_s=_duration_s(features) if ok else None,
                    fps=features.info.fps if ok and features.info else None,
                    status="partial" if partial else "ok" if ok else "failed",
                    error=features.damage_report() if partial else features.error,
                    embedding=features.video_embedding if ok and "video" in self.levels
                    else None,
                    damage=json.dumps([span.to_dict() for span in features.damage])
                    if partial else None,
                )
                if not ok:
                    continue
                if "video" in self.levels:
                    added["video"].append((np.array([video_id], np.int64),
                                           features.video_embedding[None, :]))
                if "clip" in self.levels:
                    clip_ids = db.insert_clips(video_id, features.spans, features.embeddings)
                    added["clip"].append((clip_ids, features.embeddings))
            db.bump_generation()
        self._touch = []
        # the in-memory FAISS indices follow the committed database
        for level in self.levels:
            index = self.indices[level]
            if level not in self.rebuild:
                ids = old_ids if level == "video" else old_clip_ids
                if not vx.remove_ids(index, ids):
                    self.rebuild.add(level)
            if level in self.rebuild:
                continue  # rebuilt from the database at the end
            for ids, vectors in added[level]:
                if not index.is_trained:
                    self.rebuild.add(level)
                    break
                index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids)

    def finish(self) -> dict[str, int]:
        """Write the FAISS files of the final generation and the manifest."""
        db = self.db
        generation = db.generation
        counts = {"videos": len(db.videos()), "failed": len(db.videos(status="failed")),
                  "partial": len(db.videos(status="partial")),
                  "clips": db.count("clip") if "clip" in self.levels else 0,
                  "video_vectors": db.count("video") if "video" in self.levels else 0}
        factories = {}
        for level in self.levels:
            count = db.count(level)
            wanted = self._factory_for(level, count)
            index = self.indices[level]
            current = self.manifest.get("factory", {}).get(level)
            if level in self.rebuild or (current is not None and current != wanted) \
                    or index.ntotal != count:
                index = self.indices[level] = vx.build_index(
                    self.dim, wanted, db.iter_vectors(level, self.dim))
            vx.save_index(index, faiss_path(self.folder, level, generation))
            factories[level] = wanted
        self.manifest.update({
            "factory": factories,
            "factory_override": self.factory,
            "exact_below": self.exact_below,
            "counts": counts,
            "generation": generation,
            "vsslzoo_version": __version__,
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
        write_manifest(self.folder, self.manifest)
        for path in stale_files(self.folder, generation):
            path.unlink(missing_ok=True)
        return counts

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


def _duration_s(features) -> float:
    """A video's duration: its probe result's, or what a feature folder recorded."""
    return features.info.duration_s if features.info is not None else features.duration_s


def _open_writer(folder: Path, identity: ModelIdentity, *, level: str | None,
                 factory: str | None, exact_below: int, sampling: str | None = None
                 ) -> tuple[IndexWriter, Any]:
    """Take ``folder``'s lock and open an :class:`IndexWriter` on it: (writer, lock)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = FolderLock(folder, what="index").acquire()
    except VsslzooError:
        raise
    except OSError as exc:
        raise IndexFolderError(
            f"cannot write the index folder {folder} ({exc.strerror or exc}); a read-only "
            "filesystem or missing permission? Choose another folder with -o"
        ) from None
    writer = None
    try:
        if (folder / MANIFEST).exists():
            existing = read_manifest(folder)
            if level is None:
                levels = existing.get("levels", ["video", "clip"])
                level = "both" if len(levels) == 2 else levels[0]
            if factory is None:
                factory = existing.get("factory_override")
        writer = IndexWriter(folder, identity, level=level or "both", factory=factory,
                             exact_below=exact_below, sampling=sampling)
        writer.open()
    except BaseException:
        if writer is not None:
            writer.close()
        lock.release()
        raise
    return writer, lock


def _index_all(writer: IndexWriter, results: Iterable[tuple[_Todo, Any]], report: IndexReport,
               *, commit_every: int, on_video: Callable[[str, str | None], None] | None
               ) -> None:
    """Commit ``results`` (todo, features) in transactions of ``commit_every`` videos,
    count them in ``report``, then write the final generation's FAISS files. Ctrl-C
    commits what is done first (then raises KeyboardInterrupt)."""
    pending: list[tuple[_Todo, Any]] = []
    try:
        for item, features in results:
            pending.append((item, features))
            if features.error is not None:
                report.failed.append((item.path, features.error))
            else:
                if features.partial:
                    report.partial.append((item.path, features.damage_report()))
                report.clips += len(features.spans)
                if item.replaces is None:
                    report.added += 1
                else:
                    report.updated += 1
            if on_video is not None:
                on_video(item.path, features.error)
            if len(pending) >= commit_every:
                writer.commit(pending)
                pending = []
    except KeyboardInterrupt:
        report.interrupted = True
    if pending:
        writer.commit(pending)
    report.counts = writer.finish()
    if report.interrupted:
        raise KeyboardInterrupt


def update_index(
    folder: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    model,
    *,
    level: str | None = None,
    factory: str | None = None,
    batch_size: int | None = None,
    workers: int = 0,
    commit_every: int = 32,
    exact_below: int = vx.EXACT_BELOW,
    on_video: Callable[[str, str | None], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    shard: Shard | str | None = None,
) -> IndexReport:
    """Index the videos under ``inputs`` into ``folder`` (created), incrementally.

    Args:
        folder: the index folder.
        inputs: video files and folders (searched recursively).
        model: a loaded :class:`~vsslzoo.encoder.VideoEncoder`; must be the index's model.
        level: "video", "clip" or "both" (default: the existing index's, else "both").
        factory: a FAISS factory string (default: the existing index's override, else
            chosen from the vector count).
        batch_size: clips per forward pass (default: 16 on a GPU, 4 on the CPU, as
            :func:`vsslzoo.extract.extract_videos`).
        commit_every: videos per database transaction.
        on_video: called with (path, error or None) after each video (progress bars).
        on_plan: called with the number of videos to embed, once planned.
        shard: index only shard ``I/N`` of the videos (:mod:`vsslzoo.sharding`): the
            other shards' videos in the index are left as they are.
    """
    from ..extract import extract_videos

    folder = Path(folder)
    report = IndexReport()
    started = time.perf_counter()
    writer, lock = _open_writer(folder, ModelIdentity.of(model), level=level,
                                factory=factory, exact_below=exact_below)
    try:
        todo, gone = writer.plan([os.fspath(p) for p in inputs], report, Shard.parse(shard))
        if on_plan is not None:
            on_plan(len(todo))
        if gone or writer._touch:
            writer.commit([], remove=gone)
            report.removed = len(gone)
        by_path = {t.path: t for t in todo}
        results = ((by_path[os.path.abspath(features.path)], features)
                   for features in extract_videos(model, [t.path for t in todo],
                                                  clips=writer.video_sampling,
                                                  batch_size=batch_size, workers=workers))
        _index_all(writer, results, report, commit_every=commit_every, on_video=on_video)
    finally:
        writer.close()
        lock.release()
        report.seconds = time.perf_counter() - started
    return report


@dataclass(frozen=True)
class _FailedVideo:
    """A video that an extraction run could not embed (its errors file says why)."""

    path: str
    error: str


def features_fingerprint(video) -> str:
    """``features:`` + sha256 of a stored video's vectors and spans: tells whether the
    index holds exactly these features for the path (a video file's rows hold the file's
    fingerprint instead, so features replace them)."""
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(video.video_embedding, np.float32).tobytes())
    digest.update(np.ascontiguousarray(video.embeddings, np.float32).tobytes())
    digest.update(json.dumps([[s.index, s.start_s, s.end_s, s.padded] for s in video.spans])
                  .encode())
    return "features:" + digest.hexdigest()


def _file_stat(path: str) -> tuple[int, int]:
    """(size, mtime_ns) of a local video, (-1, -1) for a URL or a file not here: a later
    ``vsslzoo index VIDEOS`` then skips a local file whose features were indexed."""
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return -1, -1
    return stat.st_size, stat.st_mtime_ns


def update_index_from_features(
    folder: str | os.PathLike[str],
    features: str | os.PathLike[str],
    *,
    level: str | None = None,
    factory: str | None = None,
    commit_every: int = 256,
    exact_below: int = vx.EXACT_BELOW,
    model=None,
    shard: Shard | str | None = None,
    on_video: Callable[[str, str | None], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> IndexReport:
    """Index the videos of a feature folder (``vsslzoo extract -o FEATURES``) into
    ``folder``, incrementally and crash-safely, without decoding or embedding anything.

    The feature folder's manifest names the model; an existing index must be that
    model's, with vectors of the same clip sampling (the query embeds a video the same
    way). A video the index already holds with exactly these features is skipped;
    with other vectors (another extraction, or embedded from the file) it is replaced.
    Failed videos of the errors files are recorded as failed. Videos are never removed
    (feature folders only grow). Transactions, generations and crash recovery are those
    of :func:`update_index`.

    Args:
        folder: the index folder (created).
        features: a feature folder (Parquet or npy parts, all shards').
        model: a loaded model to check against the features' (optional).
        shard: index only shard ``I/N`` of the videos.
    """
    from ..feature_store import iter_stored_videos, read_errors
    from ..feature_store import read_manifest as read_feature_manifest
    from ..video.sampling import ClipSampling

    folder = Path(folder)
    features = os.fspath(features)
    report = IndexReport()
    started = time.perf_counter()
    manifest = read_feature_manifest(features)
    identity = ModelIdentity.of_features(manifest, features)
    if model is not None and model.weights_sha256 != identity.weights_sha256:
        raise IndexFolderError(
            f"{features} holds features of {identity.source} (weights sha256 "
            f"{str(identity.weights_sha256)[:12]}…), not of {model.source} "
            f"({str(model.weights_sha256)[:12]}…); leave out -m, or extract with that model")
    shard = Shard.parse(shard)
    sampling = str(ClipSampling.parse(manifest["clips"]))
    writer, lock = _open_writer(folder, identity, level=level, factory=factory,
                                exact_below=exact_below, sampling=sampling)
    try:
        failures = [entry for entry in read_errors(features) if entry.get("status") == "failed"
                    and (shard is None or shard.owns(entry["video_path"]))]
        if on_plan is not None:
            from ..feature_store import done_videos

            on_plan(sum(1 for path in done_videos(features) if shard is None or shard.owns(path))
                    + len(failures))

        def results():
            seen: set[str] = set()
            for video in iter_stored_videos(features):
                if video.path in seen or (shard is not None and not shard.owns(video.path)):
                    continue
                seen.add(video.path)
                fingerprint = features_fingerprint(video)
                row = writer.db.video_by_path(video.path)
                if row is not None and row.status in INDEXED and row.content_hash == fingerprint:
                    report.unchanged += 1
                    continue
                yield _Todo(video.path, *_file_stat(video.path), fingerprint,
                            row.id if row else None), video
            for entry in failures:
                path = entry["video_path"]
                if path in seen:
                    continue  # features of it were extracted after it failed
                seen.add(path)
                row = writer.db.video_by_path(path)
                if row is not None:  # indexed from elsewhere, or failed before
                    report.skipped_failed += row.status not in INDEXED
                    continue
                yield _Todo(path, *_file_stat(path), "", None), _FailedVideo(path, entry["error"])

        _index_all(writer, results(), report, commit_every=commit_every, on_video=on_video)
    finally:
        writer.close()
        lock.release()
        report.seconds = time.perf_counter() - started
    return report
