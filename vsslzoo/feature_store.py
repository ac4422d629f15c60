"""A folder of extracted features: committed part files, a manifest, an errors file.

Layout of ``feats/``::

    manifest.json           model, preprocessing, clip sampling, pooling, format, dim
    part-00000.parquet      rows: video_path, level, clip_index, start_s, end_s, padded,
    part-00001.parquet      status, damage, embedding (float32[D]); level "clip" rows plus
    ...                     one "video" row per video (clip_index -1, the video-level
                            embedding)
    errors.jsonl            videos that failed in the last run (status "failed": path and
                            reason) and partial videos (status "partial": where damaged)

A *partial* video (a damaged file decoded around its damage) has ``status`` "partial" on
its rows, only the clips that decoded intact, and on its video row ``damage``: a JSON
list of ``{start_s, end_s, reason}``. Parts written before these two columns existed
read as ``status`` "ok" and no damage.

With ``--format npy`` each part is ``part-NNNNN.npy`` (float32, rows x D) plus
``part-NNNNN.json`` (the other columns); the JSON is written last and marks the part as
complete.

Every part is written to a temporary name and renamed when complete, so an interrupted
run leaves no half-written file; the next run reads which videos the parts hold and
skips them. Only one writer at a time (:class:`~vsslzoo.locking.FolderLock`).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, VsslzooError
from .fileio import atomic_write_bytes
from .locking import FolderLock

FORMATS = ("parquet", "npy")
MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"


class FeatureStoreError(VsslzooError):
    """The output folder cannot be used (another model's features, locked, read-only)."""


@dataclass
class _Row:
    video_path: str
    level: str
    clip_index: int
    start_s: float
    end_s: float
    padded: bool
    status: str = "ok"
    damage: str | None = None  # JSON, on the video row of a partial video


class FeatureWriter:
    """Append videos' features to ``folder``; commit a part every ``part_videos`` videos.

    Use as a context manager: on exit (also on Ctrl-C) what is buffered is committed and
    the lock released.
    """

    def __init__(self, folder: str | os.PathLike[str], *, manifest: dict[str, Any],
                 fmt: str = "parquet", part_videos: int = 64) -> None:
        if fmt not in FORMATS:
            raise ConfigError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        if fmt == "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "--format parquet needs pyarrow (pip install pyarrow); or use --format npy"
                ) from None
        self.folder = Path(folder)
        self.fmt = fmt
        self.part_videos = part_videos
        self.manifest = {**manifest, "format": fmt}
        self._rows: list[_Row] = []
        self._vectors: list[np.ndarray] = []
        self._videos_buffered = 0
        self._errors: list[dict[str, str]] = []
        self._lock: FolderLock | None = None
        self._prepare()

    # -- setup ---------------------------------------------------------------------------
    def _prepare(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._lock = FolderLock(self.folder, what="feature folder").acquire()
        except PermissionError:
            raise FeatureStoreError(
                f"cannot write to {self.folder} (permission denied or read-only); "
                "choose another output folder with -o"
            ) from None
        except OSError as exc:
            raise FeatureStoreError(f"cannot write to {self.folder}: {exc}") from None
        for stale in self.folder.glob(".*.tmp"):  # left by a killed run
            stale.unlink(missing_ok=True)
        manifest_path = self.folder / MANIFEST
        if manifest_path.exists():
            existing = json.loads(manifest_path.read_text(encoding="utf-8"))
            keys = ("weights_sha256", "embed_dim", "clips", "pooling", "format", "preprocess")
            differing = [k for k in keys if existing.get(k) != self.manifest.get(k)]
            if differing:
                self.close()
                detail = ", ".join(
                    f"{k}: {existing.get(k)!r} there vs {self.manifest.get(k)!r} now"
                    for k in differing
                )
                raise FeatureStoreError(
                    f"{self.folder} holds features made differently ({detail}); use another "
                    "output folder (-o), or delete this one to start over"
                )
        else:
            atomic_write_bytes(manifest_path, json.dumps(self.manifest, indent=2).encode())
        self.done = done_videos(self.folder)
        self._errors = [entry for entry in _read_errors(self.folder)  # kept: not redone
                        if entry.get("status") == "partial" and entry["video_path"] in self.done]
        self._next_part = 1 + max(
            (int(p.stem.split("-")[1]) for p in self.folder.glob("part-*.*")
             if p.stem.split("-")[1].isdigit()), default=-1)

    # -- writing -------------------------------------------------------------------------
    def add(self, features) -> None:
        """Buffer one video's :class:`~vsslzoo.extract.VideoFeatures` (or its error)."""
        path = os.path.abspath(features.path)
        if features.error is not None:
            self._errors.append({"video_path": path, "status": "failed",
                                 "error": features.error})
            return
        status, damage = "ok", None
        if getattr(features, "partial", False):
            status = "partial"
            spans = [span.to_dict() for span in features.damage]
            damage = json.dumps(spans)
            self._errors.append({"video_path": path, "status": "partial",
                                 "error": features.damage_report(), "damage": spans})
        for span in features.spans:
            self._rows.append(_Row(path, "clip", span.index, span.start_s, span.end_s,
                                   span.padded, status))
        duration = features.info.duration_s if features.info else features.spans[-1].end_s
        self._rows.append(_Row(path, "video", -1, 0.0, round(duration, 6),
                               any(s.padded for s in features.spans), status, damage))
        self._vectors.append(features.embeddings)
        self._vectors.append(features.video_embedding[None, :])
        self._videos_buffered += 1
        self.done.add(path)
        if self._videos_buffered >= self.part_videos:
            self.commit()

    def commit(self) -> None:
        """Write buffered rows as one part (atomically) and the errors file."""
        if self._rows:
            vectors = np.concatenate(self._vectors).astype(np.float32)
            name = f"part-{self._next_part:05d}"
            if self.fmt == "parquet":
                _write_parquet(self.folder / f"{name}.parquet", self._rows, vectors)
            else:
                _write_npy(self.folder / name, self._rows, vectors)
            self._next_part += 1
            self._rows, self._vectors, self._videos_buffered = [], [], 0
        text = "".join(json.dumps(e) + "\n" for e in self._errors)
        if self._errors or (self.folder / ERRORS).exists():
            atomic_write_bytes(self.folder / ERRORS, text.encode())

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        try:
            self.commit()
        finally:
            self.close()


def _columns(rows: list[_Row]) -> dict[str, list]:
    return {
        "video_path": [r.video_path for r in rows],
        "level": [r.level for r in rows],
        "clip_index": [r.clip_index for r in rows],
        "start_s": [r.start_s for r in rows],
        "end_s": [r.end_s for r in rows],
        "padded": [r.padded for r in rows],
        "status": [r.status for r in rows],
        "damage": [r.damage for r in rows],
    }


def _write_parquet(path: Path, rows: list[_Row], vectors: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = _columns(rows)
    table = pa.table({
        "video_path": pa.array(columns["video_path"], pa.string()),
        "level": pa.array(columns["level"], pa.string()),
        "clip_index": pa.array(columns["clip_index"], pa.int32()),
        "start_s": pa.array(columns["start_s"], pa.float64()),
        "end_s": pa.array(columns["end_s"], pa.float64()),
        "padded": pa.array(columns["padded"], pa.bool_()),
        "status": pa.array(columns["status"], pa.string()),
        "damage": pa.array(columns["damage"], pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(
            pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1]),
    })
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def _write_npy(stem: Path, rows: list[_Row], vectors: np.ndarray) -> None:
    import io

    buffer = io.BytesIO()
    np.save(buffer, vectors)
    atomic_write_bytes(stem.with_suffix(".npy"), buffer.getvalue())
    # the JSON sidecar is written last: its presence marks the part as complete
    atomic_write_bytes(stem.with_suffix(".json"), json.dumps(_columns(rows)).encode())


def _parts(folder: Path) -> list[Path]:
    parquet = sorted(folder.glob("part-*.parquet"))
    npy = [p for p in sorted(folder.glob("part-*.json"))
           if p.with_suffix(".npy").exists()]
    return parquet + npy


def _read_errors(folder: Path) -> list[dict[str, Any]]:
    path = folder / ERRORS
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash of an older version
    return entries


def done_videos(folder: str | os.PathLike[str]) -> set[str]:
    """Paths of videos whose features are committed in ``folder``."""
    folder = Path(folder)
    done: set[str] = set()
    for part in _parts(folder):
        if part.suffix == ".parquet":
            import pyarrow.parquet as pq

            done.update(pq.read_table(part, columns=["video_path"])["video_path"].to_pylist())
        else:
            done.update(json.loads(part.read_text(encoding="utf-8"))["video_path"])
    return done


# columns that parts written by older versions lack, and what their rows mean
_ADDED_COLUMNS = {"status": "ok", "damage": None}


def read_features(folder: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """All committed rows of a feature folder as numpy columns (``embedding``: (N, D)).

    ``status`` is "ok" or "partial" (a damaged video: ``damage``, a JSON list of
    ``{start_s, end_s, reason}``, is on its video row; None elsewhere).
    """
    folder = Path(folder)
    columns: dict[str, list] = {k: [] for k in
                                ("video_path", "level", "clip_index", "start_s", "end_s",
                                 "padded", "status", "damage")}
    vectors = []
    for part in _parts(folder):
        if part.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(part)
            data = {key: table[key].to_pylist() for key in columns if key in table.column_names}
            embedding = table["embedding"].combine_chunks()
            width = embedding.type.list_size
            vectors.append(embedding.values.to_numpy().reshape(-1, width))
        else:
            data = json.loads(part.read_text(encoding="utf-8"))
            vectors.append(np.load(part.with_suffix(".npy")))
        rows = len(data["video_path"])
        for key in columns:
            columns[key].extend(data.get(key) or [_ADDED_COLUMNS.get(key)] * rows)
    out = {key: np.asarray(values) for key, values in columns.items()}
    out["embedding"] = (np.concatenate(vectors).astype(np.float32) if vectors
                        else np.zeros((0, 0), np.float32))
    return out
