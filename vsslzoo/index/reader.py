"""``vsslzoo.Index``: open an index folder and search it by video, moment or vector."""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from . import vectors as vx
from .layout import IndexFolderError, build_command, faiss_path, read_manifest
from .metadata import INDEXED, MetadataDB

DEFAULT_INDEX = "vsslzoo-index"


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        rank: 1-based position.
        path: the indexed video file.
        score: cosine similarity in [-1, 1].
        start_s, end_s: the matching moment (the whole video for video-level hits).
        video_id: the video's id in the index.
        clip_index: the clip's index within the video (None for video-level hits).
    """

    rank: int
    path: str
    score: float
    start_s: float
    end_s: float
    video_id: int
    clip_index: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _moment_within(start: float | None, end: float | None, duration_s: float,
                   video: str) -> tuple[float, float]:
    """The moment ``start``-``end`` (seconds; None: the video's start or end) of a video of
    ``duration_s`` seconds: an end past the video is clamped with a warning, a start at or
    past its end is an error that says how long the video is."""
    start = 0.0 if start is None else float(start)
    if end is not None and not end > start:
        raise ConfigError(f"--end ({end:g} s) must be after --start ({start:g} s)")
    if start >= duration_s:
        raise ConfigError(f"--start {start:g} s is past the end of {video}, which lasts "
                          f"{duration_s:.2f} s; give a start below {duration_s:.2f}")
    if end is None:
        return start, duration_s
    if end > duration_s + 1e-3:
        warnings.warn(f"--end {end:g} s is past the end of {video}, which lasts "
                      f"{duration_s:.2f} s; the moment {start:g}-{duration_s:.2f} s is used",
                      UserWarning, stacklevel=3)
    return start, min(end, duration_s)


class Index:
    """A read-only view of an index folder. ``Index.open("vsslzoo-index")``."""

    def __init__(self, folder: Path, manifest: dict[str, Any], db: MetadataDB,
                 indices: dict[str, Any], model=None, device: str | None = None,
                 backend: str = "torch") -> None:
        self.folder = folder
        self.manifest = manifest
        self.db = db
        self.indices = indices
        self._model = model
        self._device = device
        self._backend = backend

    # -- opening -----------------------------------------------------------------------
    @classmethod
    def open(cls, folder: str | os.PathLike[str] = DEFAULT_INDEX, *, model=None,
             device: str | None = None, use_gpu: bool = True, backend: str = "torch"
             ) -> Index:
        """Open ``folder``. ``model`` (a VideoEncoder) overrides loading the index's model;
        it must be the same weights. ``backend``: how the index's model is loaded when a
        query needs it (as :func:`vsslzoo.load` takes it; "auto" among them)."""
        folder = Path(folder)
        if not folder.is_dir():
            raise IndexFolderError(
                f"no index at {folder}; build one with `{build_command(folder)}`, or "
                "query an existing index (-i FOLDER)")
        manifest = read_manifest(folder)
        db = MetadataDB(folder, readonly=True)
        generation = db.generation
        dim = int(manifest["embed_dim"])
        indices = {}
        for level in manifest["levels"]:
            path = faiss_path(folder, level, generation)
            if path.exists():
                index = vx.load_index(path)
            else:
                warnings.warn(
                    f"{folder}: the FAISS files are behind the database (an interrupted "
                    "`vsslzoo index` run?); rebuilt in memory. Run `vsslzoo index` again to "
                    "finish.", stacklevel=2)
                factory = manifest.get("factory", {}).get(level) or "Flat"
                index = vx.build_index(dim, factory, db.iter_vectors(level, dim))
            indices[level] = vx.to_gpus_if_available(index) if use_gpu else index
        index = cls(folder, manifest, db, indices, device=device, backend=backend)
        if model is not None:
            index._check_model(model)
            index._model = model
        return index

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- facts -------------------------------------------------------------------------
    def __len__(self) -> int:
        """Number of indexed (successfully embedded) videos."""
        return len(self.db.videos())

    def videos(self) -> list[str]:
        """Paths of the indexed videos, sorted."""
        return [row.path for row in self.db.videos()]

    @property
    def levels(self) -> list[str]:
        return list(self.manifest["levels"])

    @property
    def model(self):
        """The index's model (loaded on first use)."""
        if self._model is None:
            from ..loading import load

            source = self.manifest["model"]
            try:
                model = load(source, backend=self._backend, device=self._device)
            except Exception as exc:
                raise IndexFolderError(
                    f"cannot load the index's model {source!r} ({exc}); pass the same model "
                    "with -m / Index.open(model=...)"
                ) from None
            self._check_model(model)
            self._model = model
        return self._model

    def _check_model(self, model) -> None:
        expected = self.manifest.get("weights_sha256")
        if expected and model.weights_sha256 and model.weights_sha256 != expected:
            raise IndexFolderError(
                f"the query model ({model.source}, weights sha256 {model.weights_sha256[:12]}…) "
                f"is not the index's model ({self.manifest['model']}, "
                f"{expected[:12]}…): embeddings of different models cannot be compared. "
                "Query with the index's model (omit -m)."
            )

    # -- searching ---------------------------------------------------------------------
    def query_vector(self, query: Any, *, start: float | None = None,
                     end: float | None = None, level: str = "video") -> np.ndarray:
        """The L2-normalised query embedding of a file (whole or a moment) or a vector."""
        if isinstance(query, (str, os.PathLike)):
            if start is not None or end is not None:
                from ..video.probe import probe

                start, end = _moment_within(start, end, probe(query).duration_s,
                                            os.fspath(query))
                sampling = f"segment:{start:g}-{end:g}"
            else:
                sampling = self.manifest["video_sampling"]
            return self.model.clip_features(query, sampling).video_embedding
        vector = np.asarray(query, np.float32).reshape(-1)
        dim = int(self.manifest["embed_dim"])
        if vector.shape[0] != dim:
            raise ConfigError(f"query vector has {vector.shape[0]} values; the index holds "
                              f"{dim}-d embeddings")
        return vector / max(float(np.linalg.norm(vector)), 1e-12)

    def vector_of(self, video: int | str, level: str = "video", start: float | None = None,
                  end: float | None = None) -> tuple[np.ndarray, int]:
        """The stored embedding of an indexed video (by id or path): (vector, video id)."""
        row = (self.db.videos_by_ids([video]).get(video) if isinstance(video, int)
               else self.db.video_by_path(os.path.abspath(video)))
        if row is None or row.status not in INDEXED:
            raise IndexFolderError(f"video {video!r} is not in the index {self.folder}")
        dim = int(self.manifest["embed_dim"])
        if level == "video" and start is None and end is None and "video" in self.levels:
            return self.db.vector("video", row.id, dim), row.id
        if "clip" not in self.levels:
            raise IndexFolderError("this index has no clip level; query a moment by file")
        rows = self.db.conn.execute(
            "SELECT start_s, end_s, embedding FROM clips WHERE video_id = ? ORDER BY clip_index",
            (row.id,)).fetchall()
        lo, hi = (start or 0.0), (end if end is not None else float("inf"))
        if (start is not None or end is not None) and row.duration_s:
            lo, hi = _moment_within(start, end, row.duration_s, row.path)
        chosen = [np.frombuffer(r[2], np.float32) for r in rows if r[1] > lo and r[0] < hi]
        if not chosen:
            raise IndexFolderError(f"no indexed clip of {row.path} overlaps {lo}-{hi} s")
        mean = np.mean(chosen, axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12), row.id

    def search(self, query: Any, k: int = 10, *, level: str | None = None,
               start: float | None = None, end: float | None = None,
               exclude_video: int | None = None) -> list[Hit]:
        """The ``k`` nearest videos (level "video") or moments (level "clip").

        Args:
            query: a video file path, or an embedding vector ``(D,)``.
            k: number of hits (fewer when the index holds fewer).
            level: "video" (default when indexed) or "clip".
            start, end: query with this moment of the file (seconds).
            exclude_video: a video id to leave out (the query's own video).
        """
        level = level or ("video" if "video" in self.levels else "clip")
        if level not in self.levels:
            raise IndexFolderError(f"this index has no {level} level (it has {self.levels})")
        if k < 1:
            raise ConfigError(f"k must be >= 1, got {k}")
        if isinstance(query, (str, os.PathLike)) and exclude_video is None:
            own = self.db.video_by_path(os.path.abspath(query))
            if own is not None and level == "video" and start is None and end is None:
                exclude_video = own.id
        vector = self.query_vector(query, start=start, end=end, level=level)
        return self.search_vector(vector, k, level=level, exclude_video=exclude_video)

    def search_vector(self, vector: np.ndarray, k: int, *, level: str,
                      exclude_video: int | None = None) -> list[Hit]:
        """The ``k`` nearest entries of ``level`` to ``vector`` ``(D,)``, leaving out those of
        ``exclude_video``. Fewer than ``k`` only when the index holds no more."""
        index = self.indices[level]
        total = index.ntotal
        if total == 0:
            return []
        query = np.ascontiguousarray(vector[None, :], np.float32)
        if exclude_video is None:
            excluded: set[int] = set()
        elif level == "video":
            excluded = {exclude_video}
        else:  # a long video's own clips may fill the first places: fetch past all of them
            excluded = set(self.db.clip_ids_of([exclude_video]))
        fetch = min(total, k + len(excluded))
        while True:
            scores, ids = index.search(query, fetch)
            pairs = [(float(s), int(i)) for s, i in zip(scores[0], ids[0])
                     if i >= 0 and int(i) not in excluded]
            hits = self._hits(pairs, k, level)
            # Approximate indices (IVF, HNSW) may rank the video's own entries differently
            # or return fewer than asked: widen the search until k are found or none is left.
            if len(hits) == k or fetch >= total:
                return hits
            fetch = min(total, fetch * 4)

    def _hits(self, pairs: list[tuple[float, int]], k: int, level: str) -> list[Hit]:
        """Hits for the first ``k`` of ``pairs`` (score, row id) whose rows exist."""
        hits: list[Hit] = []
        for first in range(0, len(pairs), 512):  # bounded SQL parameter lists
            chunk = pairs[first:first + 512]
            if level == "video":
                rows = self.db.videos_by_ids(i for _, i in chunk)
                for score, video_id in chunk:
                    row = rows.get(video_id)
                    if row is not None:
                        hits.append(Hit(len(hits) + 1, row.path, score, 0.0,
                                        row.duration_s or 0.0, video_id))
                    if len(hits) == k:
                        return hits
                continue
            clips = self.db.clips_by_ids(i for _, i in chunk)
            videos = self.db.videos_by_ids({c.video_id for c in clips.values()})
            for score, clip_id in chunk:
                clip = clips.get(clip_id)
                if clip is not None and clip.video_id in videos:
                    hits.append(Hit(len(hits) + 1, videos[clip.video_id].path, score,
                                    clip.start_s, clip.end_s, clip.video_id, clip.clip_index))
                if len(hits) == k:
                    return hits
        return hits
