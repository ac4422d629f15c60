"""FAISS indices of one level (videos or clips): factory choice, build, update, files.

Similarity is cosine: vectors are L2-normalised and searched by inner product. Ids are
SQLite row ids (``IndexIDMap2``). The factory follows the vector count: exact ``Flat``
below ``EXACT_BELOW`` vectors (~100k), above it ``IVF{nlist},Flat`` with
``nlist ~ 4 sqrt(n)`` (a power of two) and ``nprobe = nlist / 16`` (at least 16), which
keeps recall@10 >= 0.95 on clustered data (tested; measured in bench/index.py). IVF-Flat
rather than HNSW because it supports removing ids (changed and deleted videos) and
stores vectors exactly. ``--factory`` takes any FAISS factory string instead.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_bytes

EXACT_BELOW = 100_000
_TRAIN_PER_LIST = 64  # training vectors per IVF list (FAISS wants 30-256)


def auto_factory(num_vectors: int, exact_below: int = EXACT_BELOW) -> str:
    """The factory string vsslzoo picks for ``num_vectors`` vectors."""
    if num_vectors < exact_below:
        return "Flat"
    nlist = 2 ** round(math.log2(4 * math.sqrt(num_vectors)))
    return f"IVF{min(max(nlist, 64), 65536)},Flat"


def _tune(index) -> None:
    """Search-time parameters for approximate indices (serialised with the file)."""
    import faiss

    try:
        ivf = faiss.extract_index_ivf(index)
    except RuntimeError:
        ivf = None
    if ivf is not None:
        ivf.nprobe = min(ivf.nlist, max(16, ivf.nlist // 16))
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if hasattr(inner, "hnsw"):
        inner.hnsw.efSearch = max(inner.hnsw.efSearch, 128)


def new_index(dim: int, factory: str):
    """An empty ``IndexIDMap2(factory)`` with the inner-product metric."""
    import faiss

    from ..errors import ConfigError

    try:
        base = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        raise ConfigError(f"FAISS cannot build factory {factory!r}: {exc}") from None
    if isinstance(base, faiss.IndexIDMap2 | faiss.IndexIDMap):
        return base
    return faiss.IndexIDMap2(base)


def build_index(dim: int, factory: str, batches: Iterable[tuple[np.ndarray, np.ndarray]]):
    """Index every ``(ids, vectors)`` batch; trains first when the factory needs it."""
    index = new_index(dim, factory)
    if index.is_trained:
        for ids, vectors in batches:
            index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids)
    else:
        all_ids, all_vectors = [], []
        for ids, vectors in batches:
            all_ids.append(ids)
            all_vectors.append(vectors)
        ids = np.concatenate(all_ids) if all_ids else np.zeros(0, np.int64)
        vectors = (np.concatenate(all_vectors) if all_vectors
                   else np.zeros((0, dim), np.float32))
        train_on(index, vectors)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, np.float32), ids)
    _tune(index)
    return index


def train_on(index, vectors: np.ndarray) -> None:
    import faiss

    from ..errors import ConfigError

    try:
        nlist = faiss.extract_index_ivf(index).nlist
    except RuntimeError:
        nlist = 1
    wanted = max(1, nlist) * _TRAIN_PER_LIST
    if len(vectors) < nlist:
        raise ConfigError(
            f"the factory needs training with at least {nlist} vectors, there are "
            f"{len(vectors)}; use a smaller factory (e.g. Flat) for an index this small"
        )
    if len(vectors) > wanted:
        rng = np.random.default_rng(0)
        vectors = vectors[rng.choice(len(vectors), wanted, replace=False)]
    index.train(np.ascontiguousarray(vectors, np.float32))


def remove_ids(index, ids: Iterable[int]) -> bool:
    """Remove ``ids``; False when the index type cannot remove (then rebuild it)."""
    ids = np.asarray(list(ids), np.int64)
    if not len(ids):
        return True
    try:
        index.remove_ids(ids)
    except RuntimeError:
        return False
    return True


def save_index(index, path: Path) -> None:
    """Write atomically (temp file + rename)."""
    import faiss

    atomic_write_bytes(path, faiss.serialize_index(index).tobytes())


def load_index(path: Path):
    import faiss

    data = np.fromfile(path, dtype=np.uint8)
    return faiss.deserialize_index(data)


def to_gpus_if_available(index):
    """The index on all GPUs when this FAISS build has GPUs, else unchanged."""
    import faiss

    if not hasattr(faiss, "get_num_gpus") or faiss.get_num_gpus() == 0:
        return index
    try:
        return faiss.index_cpu_to_all_gpus(index)
    except RuntimeError:  # an index type without GPU support: search on the CPU
        return index
