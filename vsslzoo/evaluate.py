"""Nearest-neighbour video retrieval evaluation (the VCOP / CtP / CoCLR protocol).

Each video is embedded as the mean of the features of 10 uniformly spaced clips; the
gallery mean is optionally subtracted from gallery and query features (CoCLR), then
features are L2-normalised and compared by cosine similarity. For each query the gallery
is ranked; R@k is the fraction of queries with at least one of the top k sharing the
query's label. A gallery item with the query's own path is never counted.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ConfigError

DEFAULT_KS = (1, 5, 10, 20, 50)


def read_labelled_csv(path: str | os.PathLike[str]) -> list[tuple[str, str]]:
    """Rows ``path,label`` (a header row ``path,label`` is allowed); relative paths are
    relative to the CSV's folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no such CSV file: {path}")
    rows = []
    with open(path, newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or row[0].startswith("#"):
                continue
            if number == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]:
                continue
            if len(row) < 2 or not row[1].strip():
                raise ConfigError(f"{path}, line {number}: expected 'path,label', got {row}")
            video = Path(row[0].strip())
            if not video.is_absolute():
                video = path.parent / video
            rows.append((str(video), row[1].strip()))
    if not rows:
        raise ConfigError(f"{path} lists no videos")
    return rows


def recall_at_k(
    query_features: np.ndarray,
    query_labels: Sequence[str],
    gallery_features: np.ndarray,
    gallery_labels: Sequence[str],
    ks: Sequence[int] = DEFAULT_KS,
    *,
    centre: bool = True,
    query_paths: Sequence[str] | None = None,
    gallery_paths: Sequence[str] | None = None,
) -> dict[int, float]:
    """R@k for each k in ``ks`` (fractions in [0, 1]).

    Args:
        query_features, gallery_features: ``(Q, D)`` and ``(G, D)`` un-normalised features.
        centre: subtract the gallery mean from both before L2 normalisation.
        query_paths, gallery_paths: when given, a gallery item with the query's own path
            is excluded from its ranking.
    """
    gallery = np.asarray(gallery_features, np.float64)
    queries = np.asarray(query_features, np.float64)
    if centre:
        mean = gallery.mean(axis=0, keepdims=True)
        gallery, queries = gallery - mean, queries - mean
    gallery /= np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
    queries /= np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    similarity = queries @ gallery.T
    if query_paths is not None and gallery_paths is not None:
        position = {p: i for i, p in enumerate(gallery_paths)}
        for qi, qp in enumerate(query_paths):
            if qp in position:
                similarity[qi, position[qp]] = -np.inf
    order = np.argsort(-similarity, axis=1, kind="stable")
    gallery_labels = np.asarray(gallery_labels)
    matches = gallery_labels[order] == np.asarray(query_labels)[:, None]
    return {k: float(matches[:, :k].any(axis=1).mean()) for k in ks}


@dataclass
class RetrievalResult:
    recall: dict[int, float]
    queries: int
    gallery: int
    failed: list[tuple[str, str]] = field(default_factory=list)
    centre: bool = True


def evaluate_retrieval(
    model,
    gallery_csv: str | os.PathLike[str],
    queries_csv: str | os.PathLike[str],
    *,
    clips: str = "uniform:10",
    centre: bool = True,
    ks: Sequence[int] = DEFAULT_KS,
    batch_size: int | None = None,
    workers: int = 0,
    on_progress: Callable[[int, int, int], None] | None = None,
) -> RetrievalResult:
    """Embed both sets with ``model`` and compute R@k. Videos that fail are left out
    (and listed in ``failed``).

    A video listed in both sets (or twice) is embedded once. ``on_progress(done, total,
    failed)`` is called after each video (counts of distinct videos)."""
    from .extract import extract_videos

    sets = {"gallery": read_labelled_csv(gallery_csv), "queries": read_labelled_csv(queries_csv)}
    sets = {name: [(os.path.abspath(p), label) for p, label in rows]
            for name, rows in sets.items()}
    distinct = list(dict.fromkeys(p for rows in sets.values() for p, _ in rows))
    features: dict[str, np.ndarray] = {}
    failed: list[tuple[str, str]] = []
    for done, result in enumerate(extract_videos(model, distinct, clips=clips,
                                                 batch_size=batch_size, workers=workers),
                                  start=1):
        if result.error is None:
            features[result.path] = result.video_mean
        else:
            failed.append((result.path, result.error))
        if on_progress is not None:
            on_progress(done, len(distinct), len(failed))
    kept = {name: [(p, lab) for p, lab in rows if p in features]
            for name, rows in sets.items()}
    if not kept["gallery"] or not kept["queries"]:
        raise ConfigError("no gallery or no query video could be embedded; see the failures")
    g_paths, g_labels = zip(*kept["gallery"])
    q_paths, q_labels = zip(*kept["queries"])
    recall = recall_at_k(
        np.stack([features[p] for p in q_paths]), q_labels,
        np.stack([features[p] for p in g_paths]), g_labels, ks, centre=centre,
        query_paths=q_paths, gallery_paths=g_paths,
    )
    return RetrievalResult(recall, len(q_paths), len(g_paths), failed, centre)
