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
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..errors import VsslzooError
from ..locking import FolderLock
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


def model_source(model) -> str:
    """How to load ``model`` again later (absolute path for folders)."""
    source = model.source
    return os.path.abspath(source) if os.path.isdir(source) else source


def _under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


class IndexWriter:
    """Updates one index folder with one model. Use :func:`update_index`."""

    def __init__(self, folder: Path, model, *, level: str, factory: str | None,
                 exact_below: int) -> None:
        self.folder = folder
        self.model = model
        self.levels = _levels(level)
        self.factory = factory
        self.exact_below = exact_below
        self.dim = model.embed_dim
        self.video_sampling = "sliding:clip" if "clip" in self.levels else "uniform:10"
        self.db: MetadataDB | None = None
        self.indices: dict[str, Any] = {}
        self.rebuild: set[str] = set()
        self._touch: list[tuple[int, int]] = []  # (video id, new mtime) of touched files

    # -- opening -----------------------------------------------------------------------
    def open(self) -> None:
        manifest_path = self.folder / MANIFEST
        if manifest_path.exists():
            self.manifest = read_manifest(self.folder)
            self._check_compatible()
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
                "model": model_source(self.model),
                "model_name": self.model.config.name,
                "weights_sha256": self.model.weights_sha256,
                "architecture": self.model.config.architecture,
                "embed_dim": self.dim,
                "preprocess": self.model.preprocess.to_dict(),
                "metric": "cosine (inner product of L2-normalised vectors)",
                "normalization": "l2",
                "pooling": "avg",
                "levels": list(self.levels),
                "clip_sampling": "sliding:clip" if "clip" in self.levels else None,
                "video_sampling": self.video_sampling,
                "video_embedding": "L2-normalised mean of the clip features",
                "factory_override": self.factory,
                "generation": 0,
            }
            # Written before the first commit: a run killed before finish() must leave
            # the model's identity behind, or the next run could add another model's
            # vectors (or other levels) to the ones committed.
            write_manifest(self.folder, self.manifest)
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
                "architecture": self.model.config.architecture, "levels": list(self.levels)}
        differing = {k: (self.manifest.get(k), v) for k, v in mine.items()
                     if self.manifest.get(k) != v}
        if differing:
            detail = "; ".join(f"{k}: {old!r} in the index vs {new!r} now"
                               for k, (old, new) in differing.items())
            raise IndexFolderError(
                f"{self.folder} was built differently ({detail}). Update it with the same "
                f"model and --level (model: {self.manifest.get('model')}), or build a new "
                "index with -o ANOTHER_FOLDER"
            )

    def _factory_for(self, level: str, count: int) -> str:
        return self.factory or vx.auto_factory(count, self.exact_below)

    def _built(self, level: str):
        count = self.db.count(level)
        return vx.build_index(self.dim, self._factory_for(level, count),
                              self.db.iter_vectors(level, self.dim))

    # -- planning ----------------------------------------------------------------------
    def plan(self, inputs: Sequence[str], report: IndexReport) -> tuple[list[_Todo], list[int]]:
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
                    duration_s=features.info.duration_s if ok else None,
                    fps=features.info.fps if ok else None,
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


def update_index(
    folder: str | os.PathLike[str],
    inputs: Sequence[str | os.PathLike[str]],
    model,
    *,
    level: str | None = None,
    factory: str | None = None,
    batch_size: int = 16,
    workers: int = 0,
    commit_every: int = 32,
    exact_below: int = vx.EXACT_BELOW,
    on_video: Callable[[str, str | None], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> IndexReport:
    """Index the videos under ``inputs`` into ``folder`` (created), incrementally.

    Args:
        folder: the index folder.
        inputs: video files and folders (searched recursively).
        model: a loaded :class:`~vsslzoo.encoder.VideoEncoder`; must be the index's model.
        level: "video", "clip" or "both" (default: the existing index's, else "both").
        factory: a FAISS factory string (default: the existing index's override, else
            chosen from the vector count).
        commit_every: videos per database transaction.
        on_video: called with (path, error or None) after each video (progress bars).
        on_plan: called with the number of videos to embed, once planned.
    """
    from ..extract import extract_videos

    folder = Path(folder)
    report = IndexReport()
    started = time.perf_counter()
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
    if (folder / MANIFEST).exists():
        existing = read_manifest(folder)
        if level is None:
            levels = existing.get("levels", ["video", "clip"])
            level = "both" if len(levels) == 2 else levels[0]
        if factory is None:
            factory = existing.get("factory_override")
    writer = IndexWriter(folder, model, level=level or "both", factory=factory,
                         exact_below=exact_below)
    try:
        writer.open()
        todo, gone = writer.plan([os.fspath(p) for p in inputs], report)
        if on_plan is not None:
            on_plan(len(todo))
        if gone or writer._touch:
            writer.commit([], remove=gone)
            report.removed = len(gone)
        by_path = {t.path: t for t in todo}
        pending: list[tuple[_Todo, Any]] = []
        try:
            for features in extract_videos(model, [t.path for t in todo],
                                           clips=writer.video_sampling,
                                           batch_size=batch_size, workers=workers):
                item = by_path[os.path.abspath(features.path)]
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
    finally:
        writer.close()
        lock.release()
        report.seconds = time.perf_counter() - started
    return report
