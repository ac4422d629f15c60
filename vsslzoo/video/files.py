"""Finding video files under folders: recursive, symlink-loop safe, sorted."""

from __future__ import annotations

import os
from pathlib import Path

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv",
    ".3gp", ".ts", ".mts", ".m2ts", ".ogv",
})


def find_videos(inputs: list[str | os.PathLike[str]], *, recursive: bool = True) -> list[Path]:
    """Video files named by ``inputs`` (files are taken as given; folders are searched).

    Folders are walked following symlinks, but a folder already visited (by its device
    and inode) is not entered again, so symlink loops end. Hidden files and folders
    (names starting with '.') are skipped. The result is sorted and has no duplicates.
    """
    found: dict[str, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for video in _walk(path, recursive):
                found.setdefault(os.path.abspath(video), video)
        else:
            found.setdefault(os.path.abspath(path), path)
    return [found[key] for key in sorted(found)]


def _walk(root: Path, recursive: bool):
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            stat = folder.stat()
        except OSError:
            continue
        key = (stat.st_dev, stat.st_ino)
        if key in seen:
            continue
        seen.add(key)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError:
                continue
            if is_dir:
                if recursive:
                    stack.append(Path(entry.path))
            elif Path(entry.name).suffix.lower() in VIDEO_EXTENSIONS:
                yield Path(entry.path)
