"""Video datasets for pretraining: a folder, a Kinetics-style tree, or a CSV.

* a folder: every video under it (recursive), no labels;
* a Kinetics-style tree ``ROOT/<class>/<video>``: labels are the folder names (detected
  when every video sits exactly one folder below the root);
* a CSV ``path[,label]`` (relative paths are relative to the CSV).

:class:`ClipDataset` decodes clips in DataLoader workers with the method's sampler;
a video that cannot be decoded yields ``None``, which :func:`collate_skipping_broken`
drops and counts (``batch["skipped"]``), so a broken file never stops a run.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vsslzoo.errors import ConfigError, VsslzooError
from vsslzoo.video.files import find_videos


def discover(data: str | os.PathLike[str]) -> list[tuple[str, str | None]]:
    """``(path, label or None)`` of every video in ``data`` (folder, tree or CSV)."""
    data = Path(data)
    if data.is_file() and data.suffix.lower() == ".csv":
        rows = []
        with open(data, newline="", encoding="utf-8") as handle:
            for row in csv.reader(handle):
                if not row or row[0].strip().lower() == "path" or row[0].startswith("#"):
                    continue
                path = Path(row[0].strip())
                path = path if path.is_absolute() else data.parent / path
                rows.append((str(path), row[1].strip() if len(row) > 1 else None))
        if not rows:
            raise ConfigError(f"{data} lists no videos")
        return rows
    if not data.is_dir():
        raise ConfigError(f"--data {data}: not a folder or a .csv file")
    videos = find_videos([data])
    if not videos:
        raise ConfigError(f"no video files found under {data}")
    depths = {len(v.relative_to(data).parts) for v in videos}
    if depths == {2}:  # ROOT/<class>/<video>
        return [(str(v), v.parent.name) for v in videos]
    return [(str(v), None) for v in videos]


class ClipDataset(torch.utils.data.Dataset):
    """``sampler(path, rng) -> dict of tensors`` for each video, re-drawn every epoch.

    Items are addressed by ``(epoch, index)`` (what :class:`~.sampler.EpochSampler`
    yields, so the epoch reaches DataLoader workers) or by a bare ``index``, which draws
    for the epoch last given to :meth:`set_epoch`. The draw is a function of
    ``(seed, epoch, index)`` only.
    """

    takes_epoch = True  # the trainer's sampler yields (epoch, index) pairs

    def __init__(self, videos: list[tuple[str, str | None]],
                 sampler: Callable[[str, np.random.Generator], dict[str, Any]],
                 seed: int = 0) -> None:
        self.videos = videos
        self.sampler = sampler
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, Any] | None:
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        path, _ = self.videos[index]
        rng = np.random.default_rng((self.seed, epoch, index))
        try:
            return self.sampler(path, rng)
        except VsslzooError:
            return None  # counted by the collate function


def collate_skipping_broken(items: list[dict[str, Any] | None]) -> dict[str, Any]:
    kept = [item for item in items if item is not None]
    batch: dict[str, Any] = {"skipped": len(items) - len(kept)}
    if kept:
        for key in kept[0]:
            batch[key] = torch.stack([torch.as_tensor(item[key]) for item in kept])
    return batch
