"""``--shard i/n``: split a list of videos among n independent jobs (array jobs).

A video belongs to shard ``sha256(key) mod n``, where ``key`` is the absolute path of a
local file (the URL as given for a URL): the n shards partition any input list, every
video lands in exactly one shard, and a video's shard does not change when files are
added or removed (a position in the sorted list would shift). Within a shard the videos
keep the sorted order of the input list.

Shards are numbered from 0, as Slurm's ``$SLURM_ARRAY_TASK_ID`` (``--array=0-63``) and
Kubernetes' ``$JOB_COMPLETION_INDEX`` number array tasks::

    vsslzoo extract videos/ -o feats/ --shard $SLURM_ARRAY_TASK_ID/64
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ConfigError

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard {self.index}/{self.count} does not exist: give --shard I/N with "
                f"N >= 1 and 0 <= I < N (shards are numbered from 0, e.g. 0/{max(self.count, 2)})"
            )

    @classmethod
    def parse(cls, text: str | Shard | None) -> Shard | None:
        """``"3/64"`` -> ``Shard(3, 64)``; None stays None."""
        if text is None or isinstance(text, Shard):
            return text
        match = _SHARD_RE.match(str(text))
        if not match:
            raise ConfigError(
                f"--shard {text!r} not understood: give I/N, shard I (from 0) of N, e.g. 3/64"
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def tag(self) -> str:
        """A file-name fragment that tells shards apart: ``s0003of0064``."""
        width = max(4, len(str(self.count - 1)))
        return f"s{self.index:0{width}d}of{self.count:0{width}d}"

    def owns(self, key: str) -> bool:
        """Whether the video whose key (:func:`~vsslzoo.video.files.video_key`) is ``key``
        belongs to this shard."""
        return shard_of(key, self.count) == self.index

    def select(self, paths: Iterable[str | os.PathLike[str]]) -> list:
        """The items of ``paths`` that belong to this shard, in their order."""
        from .video.files import video_key

        return [path for path in paths if self.owns(video_key(path))]


def shard_of(key: str, count: int) -> int:
    """The shard (0 .. count-1) of the video whose key is ``key``: the first 8 bytes of
    its UTF-8 sha256, big-endian, modulo ``count``. The same on every machine and Python
    (no ``hash()``: it is salted per process)."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()
    return int.from_bytes(digest[:8], "big") % count
