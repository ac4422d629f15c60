"""A folder of extracted features: committed part files, a manifest, an errors file.

Layout of ``feats/``::

    manifest.json           model, preprocessing, clip sampling, pooling, format, dim
    part-00000.parquet      rows: video_path, level, clip_index, start_s, end_s, padded,
    part-00001.parquet      status, damage, embedding (float32[D]); level "clip" rows plus
    ...                     one "video" row per video (clip_index -1, the video-level
                            embedding)
    errors.jsonl            videos that failed in the last run (status "failed": path and
                            reason) and partial videos (status "partial": where damaged)

Shard ``I/N`` (``--shard``, :mod:`vsslzoo.sharding`) writes ``part-sIIIIofNNNN-00000.*``
and ``errors-sIIIIofNNNN.jsonl`` and takes its own lock (``.lock-sIIIIofNNNN``), so the N
jobs of an array job write into one folder at once without colliding; the first to
start writes the manifest and the others check theirs against it. Readers take every
part and every errors file.

A *partial* video (a damaged file decoded around its damage) has ``status`` "partial" on
its rows, only the clips that decoded intact, and on its video row ``damage``: a JSON
list of ``{start_s, end_s, reason}``. Parts written before these two columns existed
read as ``status`` "ok" and no damage.

With ``--format npy`` each part is ``part-NNNNN.npy`` (float32, rows x D) plus
``part-NNNNN.json`` (the other columns); the JSON is written last and marks the part as
complete.

Every part is written to a temporary name and renamed when complete, so an interrupted
run leaves no half-written file; the next run reads which videos the parts hold and
skips them. Only one writer at a time per shard (:class:`~vsslzoo.locking.FolderLock`).
Videos are recorded by key (:func:`~vsslzoo.video.files.video_key`: absolute path, or
URL as given).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, VsslzooError
from .fileio import atomic_create_bytes, atomic_write_bytes
from .locking import LOCK_FILENAME, FolderLock
from .sharding import Shard
from .video.files import video_key

FORMATS = ("parquet", "npy")
MANIFEST = "manifest.json"
ERRORS = "errors.jsonl"
# what must agree between runs (and shards) writing one folder
MANIFEST_KEYS = ("weights_sha256", "embed_dim", "clips", "pooling", "format", "preprocess")


def feature_manifest(model, clips, pooling: str) -> dict[str, Any]:
    """What a feature folder records of how its features were made: the model (how to
    load it, its weights sha256), clip sampling, pooling, dimension and preprocessing."""
    from ._version import __version__
    from .encoder import model_source
    from .video.sampling import ClipSampling

    return {
        "model": model_source(model),
        "model_name": model.config.name,
        "weights_sha256": model.weights_sha256,
        "architecture": model.config.architecture,
        "embed_dim": model.output_dim(pooling),
        "clips": str(ClipSampling.parse(clips)),
        "pooling": pooling,
        "preprocess": model.preprocess.to_dict(),
        "vsslzoo_version": __version__,
    }


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
                 fmt: str = "parquet", part_videos: int = 64,
                 shard: Shard | None = None) -> None:
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
        self.shard = shard
        tag = f"-{shard.tag}" if shard else ""
        self._part_prefix = f"part{tag}-"
        self._errors_name = f"errors{tag}.jsonl"
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
            what = f"feature folder (shard {self.shard})" if self.shard else "feature folder"
            lock_name = f"{LOCK_FILENAME}-{self.shard.tag}" if self.shard else LOCK_FILENAME
            self._lock = FolderLock(self.folder, what=what, filename=lock_name).acquire()
        except PermissionError:
            raise FeatureStoreError(
                f"cannot write to {self.folder} (permission denied or read-only); "
                "choose another output folder with -o"
            ) from None
        except OSError as exc:
            raise FeatureStoreError(f"cannot write to {self.folder}: {exc}") from None
        # Temp files left by a killed run of this writer; other shards' are theirs.
        for stale in self.folder.glob(".*.tmp"):
            if self._owns_temp(stale.name):
                stale.unlink(missing_ok=True)
        manifest_path = self.folder / MANIFEST
        text = json.dumps(self.manifest, indent=2).encode()
        if not atomic_create_bytes(manifest_path, text):  # made by an earlier run or shard
            existing = json.loads(manifest_path.read_text(encoding="utf-8"))
            differing = [k for k in MANIFEST_KEYS if existing.get(k) != self.manifest.get(k)]
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
        self.done = done_videos(self.folder)
        self._errors = [entry for entry in _read_errors(self.folder / self._errors_name)
                        if entry.get("status") == "partial"  # kept: not redone
                        and entry["video_path"] in self.done]
        numbers = (p.stem[len(self._part_prefix):]
                   for p in self.folder.glob(f"{self._part_prefix}*.*"))
        self._next_part = 1 + max((int(n) for n in numbers if n.isdigit()), default=-1)

    def _owns_temp(self, name: str) -> bool:
        if self.shard is not None:
            return name.startswith((f".{self._part_prefix}", f".{self._errors_name}."))
        return (name.startswith((".part-", f".{ERRORS}.", f".{MANIFEST}."))
                and not name.startswith(".part-s"))

    # -- writing -------------------------------------------------------------------------
    def add(self, features) -> None:
        """Buffer one video's :class:`~vsslzoo.extract.VideoFeatures` (or its error)."""
        path = video_key(features.path)
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
            name = f"{self._part_prefix}{self._next_part:05d}"
            if self.fmt == "parquet":
                _write_parquet(self.folder / f"{name}.parquet", self._rows, vectors)
            else:
                _write_npy(self.folder / name, self._rows, vectors)
            self._next_part += 1
            self._rows, self._vectors, self._videos_buffered = [], [], 0
        text = "".join(json.dumps(e) + "\n" for e in self._errors)
        if self._errors or (self.folder / self._errors_name).exists():
            atomic_write_bytes(self.folder / self._errors_name, text.encode())

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


def _read_errors(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line cut by a crash of an older version
    return entries


def read_errors(folder: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The entries of every errors file of ``folder`` (all shards'): ``video_path``,
    ``status`` ("failed" or "partial"), ``error`` and, for partial videos, ``damage``."""
    return [entry for path in sorted(Path(folder).glob("errors*.jsonl"))
            for entry in _read_errors(path)]


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


def _read_part(part: Path) -> dict[str, Any]:
    """A committed part's columns (lists) and ``embedding`` ((rows, D) float32); columns
    that parts of older versions lack are filled with what their rows mean."""
    if part.suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(part)
        data = {key: table[key].to_pylist() for key in table.column_names if key != "embedding"}
        embedding = table["embedding"].combine_chunks()
        width = embedding.type.list_size
        vectors = embedding.values.to_numpy().reshape(-1, width)
    else:
        data = json.loads(part.read_text(encoding="utf-8"))
        vectors = np.load(part.with_suffix(".npy"))
    rows = len(data["video_path"])
    for key, value in _ADDED_COLUMNS.items():
        if not data.get(key):
            data[key] = [value] * rows
    data["embedding"] = vectors.astype(np.float32, copy=False)
    return data


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
        data = _read_part(part)
        vectors.append(data.pop("embedding"))
        for key in columns:
            columns[key].extend(data[key])
    out = {key: np.asarray(values) for key, values in columns.items()}
    out["embedding"] = (np.concatenate(vectors).astype(np.float32) if vectors
                        else np.zeros((0, 0), np.float32))
    return out


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a feature folder; a clear error when ``folder`` is not one."""
    path = Path(folder) / MANIFEST
    if not Path(folder).is_dir():
        raise FeatureStoreError(f"{folder} does not exist or is not a folder; give the "
                                "folder `vsslzoo extract ... -o FOLDER` wrote")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FeatureStoreError(
            f"{folder} is not a feature folder (no {MANIFEST}); make one with `vsslzoo "
            f"extract VIDEOS -o {folder}`") from None
    except (OSError, ValueError) as exc:
        raise FeatureStoreError(f"cannot read {path} ({exc})") from None
    if "clips" not in manifest or "weights_sha256" not in manifest:
        what = "an index" if str(manifest.get("format", "")).startswith("vsslzoo-index") \
            else "not a feature folder"
        raise FeatureStoreError(
            f"{folder} is {what}, not the output of `vsslzoo extract` (its {MANIFEST} "
            "records no model and clip sampling)")
    return manifest


@dataclass
class StoredVideo:
    """One video's features read back from a feature folder (what :class:`FeatureWriter`
    wrote of a :class:`~vsslzoo.extract.VideoFeatures`).

    Attributes:
        path: the video's key (absolute path or URL).
        embeddings: ``(N, D)`` float32, L2-normalised clip embeddings.
        spans: N :class:`~vsslzoo.video.sampling.ClipSpan`.
        video_embedding: ``(D,)`` float32, L2-normalised.
        duration_s: the video's duration (seconds).
        damage: where a partial video is damaged (empty: intact).
        damage_text: the errors file's line on a partial video, if any.
    """

    path: str
    embeddings: np.ndarray
    spans: list
    video_embedding: np.ndarray
    duration_s: float
    damage: list = field(default_factory=list)
    damage_text: str | None = None
    error: None = None
    info: None = None

    @property
    def partial(self) -> bool:
        return bool(self.damage)

    def damage_report(self) -> str | None:
        if not self.partial:
            return None
        where = "; ".join(str(span) for span in self.damage)
        return self.damage_text or f"damaged {where}"


def iter_stored_videos(folder: str | os.PathLike[str]) -> Iterator[StoredVideo]:
    """Every video committed in ``folder``, one part at a time (memory: one part).

    A part holds whole videos (:class:`FeatureWriter` buffers a video's rows together),
    so each video is read from one part.
    """
    from .video.decode import DamagedSpan
    from .video.sampling import ClipSpan

    partial_text = {entry["video_path"]: entry.get("error") for entry in read_errors(folder)
                    if entry.get("status") == "partial"}
    for part in _parts(Path(folder)):
        columns = _read_part(part)
        rows: dict[str, list[int]] = {}
        for row, path in enumerate(columns["video_path"]):
            rows.setdefault(path, []).append(row)
        for path, indices in rows.items():
            clips = [i for i in indices if columns["level"][i] == "clip"]
            (video_row,) = [i for i in indices if columns["level"][i] == "video"]
            clips.sort(key=lambda i: columns["clip_index"][i])
            damage = json.loads(columns["damage"][video_row] or "[]")
            yield StoredVideo(
                path=path,
                embeddings=columns["embedding"][clips],
                spans=[ClipSpan(int(columns["clip_index"][i]), float(columns["start_s"][i]),
                                float(columns["end_s"][i]), bool(columns["padded"][i]))
                       for i in clips],
                video_embedding=columns["embedding"][video_row],
                duration_s=float(columns["end_s"][video_row]),
                damage=[DamagedSpan(**span) for span in damage],
                damage_text=partial_text.get(path),
            )
