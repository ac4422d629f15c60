"""Files of an index folder and its manifest.

    vsslzoo-index/
      manifest.json        model identity, levels, sampling, metric, factories, counts
      meta.sqlite          videos, clips, embeddings, generation (the commit point)
      video-g<N>.faiss     FAISS cache of the video vectors of generation N
      clip-g<N>.faiss      FAISS cache of the clip vectors of generation N
      .lock                pid of the writer, while one runs
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import VsslzooError
from ..fileio import atomic_write_bytes

MANIFEST = "manifest.json"
LEVELS = ("video", "clip")
_FAISS_RE = re.compile(r"^(video|clip)-g(\d+)\.faiss$")


class IndexFolderError(VsslzooError):
    """An index folder that cannot be used as asked (missing, other model, read-only...)."""


def build_command(folder: Path) -> str:
    """The command that builds an index at ``folder``, ready to paste (VIDEO_FOLDER is
    the user's; ``-m MODEL`` only while vsslzoo ships no default model)."""
    import shlex

    from ..loading import DEFAULT_MODEL

    model = " -m MODEL" if DEFAULT_MODEL is None else ""
    return f"vsslzoo index VIDEO_FOLDER -o {shlex.quote(str(folder))}{model}"


def faiss_path(folder: Path, level: str, generation: int) -> Path:
    return folder / f"{level}-g{generation}.faiss"


def stale_files(folder: Path, generation: int) -> list[Path]:
    """FAISS files of other generations, and temp files left by killed writers."""
    out = [p for p in folder.glob(".*.tmp")]
    for path in folder.glob("*.faiss"):
        match = _FAISS_RE.match(path.name)
        if match and int(match.group(2)) != generation:
            out.append(path)
    return out


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.is_file():
        raise IndexFolderError(
            f"{folder} is not a vsslzoo index (no {MANIFEST}); build one with "
            f"`{build_command(folder)}`"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    atomic_write_bytes(folder / MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode())
