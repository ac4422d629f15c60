"""The index's SQLite database: videos, clips, their embeddings, and the generation.

SQLite is the index's source of truth and its only commit point. Each batch of videos is
one transaction that inserts their rows *and* float32 embeddings and bumps
``generation``; the FAISS files are a cache of the vectors written for a generation
(``vectors.py``). A crash at any moment leaves the last committed generation intact.
Row ids never repeat (AUTOINCREMENT), and they are the FAISS ids.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DB_FILENAME = "meta.sqlite"
# A video is indexed when "ok", or "partial": a damaged file whose intact clips were
# embedded (``error`` says where it is damaged, ``damage`` holds the spans as JSON).
INDEXED = ("ok", "partial")
_INDEXED_SQL = "status IN ('ok', 'partial')"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS videos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    duration_s REAL,
    fps REAL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'partial', 'failed')),
    error TEXT,
    indexed_at REAL NOT NULL,
    embedding BLOB,
    damage TEXT
);
CREATE TABLE IF NOT EXISTS clips (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    clip_index INTEGER NOT NULL,
    start_s REAL NOT NULL,
    end_s REAL NOT NULL,
    padded INTEGER NOT NULL,
    embedding BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS clips_by_video ON clips(video_id);
"""


@dataclass(frozen=True)
class VideoRow:
    id: int
    path: str
    size: int
    mtime_ns: int
    content_hash: str
    duration_s: float | None
    fps: float | None
    status: str
    error: str | None


@dataclass(frozen=True)
class ClipRow:
    id: int
    video_id: int
    clip_index: int
    start_s: float
    end_s: float
    padded: bool


def content_fingerprint(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """sha256 of the size and the first, middle and last MiB: cheap on huge files, and
    enough to tell duplicates and unchanged files apart."""
    import hashlib

    size = os.path.getsize(path)
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as handle:
        for offset in sorted({0, max(size // 2 - block // 2, 0), max(size - block, 0)}):
            handle.seek(offset)
            digest.update(handle.read(block))
    return digest.hexdigest()


class MetadataDB:
    """Thin typed access to ``meta.sqlite``. ``readonly`` opens it without write access."""

    def __init__(self, folder: str | os.PathLike[str], *, readonly: bool = False) -> None:
        path = Path(folder) / DB_FILENAME
        self.path = path
        if readonly:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
        else:
            self.conn = sqlite3.connect(path, timeout=30)
            self.conn.executescript(_SCHEMA)
            self._upgrade()
        self.conn.execute("PRAGMA foreign_keys = ON")

    def _upgrade(self) -> None:
        """Databases made before partial videos: their ``videos`` table allows no status
        'partial' and has no ``damage`` column. SQLite cannot change a CHECK constraint,
        so the table is rebuilt (one transaction; ids and the id sequence are kept)."""
        table_sql = self.conn.execute(
            "SELECT sql FROM sqlite_master WHERE type='table' AND name='videos'").fetchone()[0]
        if "'partial'" in table_sql:
            return
        create = next(statement for statement in _SCHEMA.split(";")
                      if "TABLE IF NOT EXISTS videos" in statement)
        columns = ("id, path, size, mtime_ns, content_hash, duration_s, fps, status, error, "
                   "indexed_at, embedding")
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            sequence = self.conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name='videos'").fetchone()
            self.conn.execute(create.replace("IF NOT EXISTS videos", "videos_upgraded"))
            self.conn.execute(f"INSERT INTO videos_upgraded ({columns}) "
                              f"SELECT {columns} FROM videos")
            self.conn.execute("DROP TABLE videos")
            self.conn.execute("ALTER TABLE videos_upgraded RENAME TO videos")
            if sequence is not None:
                self.conn.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) "
                                  "WHERE name='videos'", (sequence[0],))
            self.conn.commit()
        except BaseException:
            self.conn.rollback()
            raise

    def close(self) -> None:
        self.conn.close()

    # -- state -----------------------------------------------------------------------
    @property
    def generation(self) -> int:
        row = self.conn.execute("SELECT value FROM state WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def bump_generation(self) -> int:
        new = self.generation + 1
        self.conn.execute(
            "INSERT INTO state(key, value) VALUES ('generation', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(new),))
        return new

    # -- reads -------------------------------------------------------------------------
    def video_by_path(self, path: str) -> VideoRow | None:
        row = self.conn.execute(
            "SELECT id, path, size, mtime_ns, content_hash, duration_s, fps, status, error "
            "FROM videos WHERE path = ?", (path,)).fetchone()
        return VideoRow(*row) if row else None

    def videos(self, status: str | None = "indexed") -> list[VideoRow]:
        """Rows by status: "indexed" ("ok" or "partial"), "ok", "partial", "failed", or
        None (all)."""
        query = ("SELECT id, path, size, mtime_ns, content_hash, duration_s, fps, status, error "
                 "FROM videos")
        args: tuple = ()
        if status == "indexed":
            query += f" WHERE {_INDEXED_SQL}"
        elif status is not None:
            query += " WHERE status = ?"
            args = (status,)
        return [VideoRow(*r) for r in self.conn.execute(query + " ORDER BY path", args)]

    def videos_by_ids(self, ids: Iterable[int]) -> dict[int, VideoRow]:
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT id, path, size, mtime_ns, content_hash, duration_s, fps, status, error "
            f"FROM videos WHERE id IN ({marks})", ids)
        return {r[0]: VideoRow(*r) for r in rows}

    def clips_by_ids(self, ids: Iterable[int]) -> dict[int, ClipRow]:
        ids = list(ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.conn.execute(
            "SELECT id, video_id, clip_index, start_s, end_s, padded FROM clips "
            f"WHERE id IN ({marks})", ids)
        return {r[0]: ClipRow(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows}

    def damage_of(self, video_id: int) -> list[dict] | None:
        """The damaged spans (``{start_s, end_s, reason}``) of a partial video, else None."""
        try:
            row = self.conn.execute("SELECT damage FROM videos WHERE id = ?",
                                    (video_id,)).fetchone()
        except sqlite3.OperationalError:  # a database made before partial videos
            return None
        return json.loads(row[0]) if row and row[0] else None

    def count(self, level: str) -> int:
        if level == "video":
            sql = f"SELECT COUNT(*) FROM videos WHERE {_INDEXED_SQL} AND embedding IS NOT NULL"
        else:
            sql = "SELECT COUNT(*) FROM clips"
        return int(self.conn.execute(sql).fetchone()[0])

    def iter_vectors(self, level: str, dim: int, batch: int = 65536
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids int64, vectors float32 (n, dim)) in batches, for (re)building FAISS."""
        if level == "video":
            sql = (f"SELECT id, embedding FROM videos WHERE {_INDEXED_SQL} AND embedding IS "
                   "NOT NULL ORDER BY id")
        else:
            sql = "SELECT id, embedding FROM clips ORDER BY id"
        cursor = self.conn.execute(sql)
        while rows := cursor.fetchmany(batch):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            vectors = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(-1, dim)
            yield ids, vectors

    def vector(self, level: str, row_id: int, dim: int) -> np.ndarray | None:
        table = "videos" if level == "video" else "clips"
        row = self.conn.execute(f"SELECT embedding FROM {table} WHERE id = ?",
                                (row_id,)).fetchone()
        return np.frombuffer(row[0], np.float32).reshape(dim) if row and row[0] else None

    def clip_ids_of(self, video_ids: Iterable[int]) -> list[int]:
        ids = list(video_ids)
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        return [r[0] for r in self.conn.execute(
            f"SELECT id FROM clips WHERE video_id IN ({marks})", ids)]

    # -- writes (call inside a transaction) --------------------------------------------
    def delete_videos(self, video_ids: Iterable[int]) -> None:
        ids = [(i,) for i in video_ids]
        self.conn.executemany("DELETE FROM clips WHERE video_id = ?", ids)
        self.conn.executemany("DELETE FROM videos WHERE id = ?", ids)

    def insert_video(
        self, *, path: str, size: int, mtime_ns: int, content_hash: str,
        duration_s: float | None, fps: float | None, status: str, error: str | None,
        embedding: np.ndarray | None, damage: str | None = None,
    ) -> int:
        blob = None if embedding is None else np.ascontiguousarray(embedding, np.float32).tobytes()
        cursor = self.conn.execute(
            "INSERT INTO videos(path, size, mtime_ns, content_hash, duration_s, fps, status, "
            "error, indexed_at, embedding, damage) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (path, size, mtime_ns, content_hash, duration_s, fps, status, error, time.time(),
             blob, damage))
        return int(cursor.lastrowid)

    def insert_clips(self, video_id: int, spans, embeddings: np.ndarray) -> np.ndarray:
        """Insert a video's clips; returns their ids (int64) in order."""
        ids = np.empty(len(spans), np.int64)
        vectors = np.ascontiguousarray(embeddings, np.float32)
        for i, span in enumerate(spans):
            cursor = self.conn.execute(
                "INSERT INTO clips(video_id, clip_index, start_s, end_s, padded, embedding) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (video_id, span.index, span.start_s, span.end_s, int(span.padded),
                 vectors[i].tobytes()))
            ids[i] = cursor.lastrowid
        return ids

    def touch_video(self, video_id: int, mtime_ns: int) -> None:
        self.conn.execute("UPDATE videos SET mtime_ns = ? WHERE id = ?", (mtime_ns, video_id))
