"""Finding video files under folders: recursive, symlink-loop safe, sorted.

A folder that cannot be listed is never taken for an empty one: an input folder that
cannot be listed is an error, and one below it is reported (``VideoScan.unreadable``),
so that the index does not drop the videos it cannot see.

An input file ending in ``.txt`` is a *list file*: one video a line, a path (relative
to the list file's folder) or a URL that PyAV can open (``https://...``, ``s3`` through
an FFmpeg built with it); blank lines and lines starting with ``#`` are skipped. A video
is known by its *key* (:func:`video_key`): the absolute path of a local file, the URL as
written for a URL; feature folders, indices and shards use it.
"""

from __future__ import annotations

import os
import re
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import VsslzooError

VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv",
    ".3gp", ".ts", ".mts", ".m2ts", ".ogv",
})


# Extensions that source code shares (TypeScript: .ts, .mts): such a file is a video
# only if its bytes are an MPEG transport stream (188-byte packets that start with the
# sync byte 0x47; Blu-ray/AVCHD .m2ts/.mts packets have a 4-byte prefix).
TRANSPORT_STREAM_EXTENSIONS = frozenset({".ts", ".mts", ".m2ts"})
_SYNC = 0x47
_TS_PACKET = 188


class VideoScanError(VsslzooError):
    """An input that cannot be searched: missing, or a folder that cannot be listed."""


@dataclass
class VideoScan:
    """What :func:`scan_videos` found.

    Attributes:
        files: video files, sorted, no duplicates (inputs naming files are taken as given).
        unreadable: (absolute path, reason) of folders under the inputs that could not be
            listed: the videos in them are unknown, not gone.
        not_video: absolute paths of files with a transport-stream extension whose bytes
            are not MPEG-TS (TypeScript sources), left out of ``files``.
        missing: inputs that do not exist (absolute paths).
        empty_inputs: input folders with no entry at all (what an unmounted mount point
            looks like).
    """

    files: list[Path] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    not_video: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    empty_inputs: list[str] = field(default_factory=list)


def is_transport_stream(path: str | os.PathLike[str]) -> bool:
    """True when the file starts like an MPEG transport stream: 188- or 192-byte packets
    whose first byte is 0x47 (checked on the first three; a shorter file is not one)."""
    with open(path, "rb") as handle:
        head = handle.read(3 * (_TS_PACKET + 4) + 1)
    for prefix, size in ((0, _TS_PACKET), (4, _TS_PACKET + 4)):
        offsets = [prefix + k * size for k in range(3)]
        if offsets[-1] < len(head) and all(head[o] == _SYNC for o in offsets):
            return True
    return False


def _looks_like_video(path: str) -> bool | None:
    """False for a transport-stream name whose bytes are not MPEG-TS; None if unreadable
    (kept, so that decoding reports why)."""
    if Path(path).suffix.lower() not in TRANSPORT_STREAM_EXTENSIONS:
        return True
    try:
        return is_transport_stream(path)
    except OSError:
        return None


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def scan_videos(inputs: list[str | os.PathLike[str]], *, recursive: bool = True) -> VideoScan:
    """Search ``inputs`` (files are taken as given; folders are searched) for videos.

    Folders are walked following symlinks, but a folder already visited (by its device
    and inode) is not entered again, so symlink loops end. Hidden files and folders
    (names starting with '.') are skipped.

    Raises:
        VideoScanError: an input folder cannot be listed, or an input cannot be
            examined (permission). Inputs that do not exist are reported in
            ``missing``; folders *under* an input that cannot be listed in ``unreadable``.
    """
    scan = VideoScan()
    found: dict[str, Path] = {}
    for item in inputs:
        path = Path(item)
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            scan.missing.append(os.path.abspath(path))
            found.setdefault(os.path.abspath(path), path)
            continue
        except OSError as exc:
            raise VideoScanError(f"cannot examine {path} ({_reason(exc)}); check that it "
                                 "is mounted and readable") from None
        if is_dir:
            try:
                with os.scandir(path) as entries:
                    empty = next(iter(entries), None) is None
            except OSError as exc:
                raise VideoScanError(
                    f"cannot list the folder {path} ({_reason(exc)}); check that it is "
                    "mounted and readable (nothing was read from it)") from None
            if empty:
                scan.empty_inputs.append(os.path.abspath(path))
            for video in _walk(path, recursive, scan):
                found.setdefault(os.path.abspath(video), video)
        else:
            found.setdefault(os.path.abspath(path), path)
    scan.files = [found[key] for key in sorted(found)]
    return scan


LIST_FILE_EXTENSION = ".txt"
_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` (http, https, rtmp, s3, ...): opened by FFmpeg, not os."""
    return isinstance(path, str) and bool(_URL_RE.match(path))


def video_key(path: str | os.PathLike[str]) -> str:
    """How a video is recorded and compared: its absolute path, or the URL as given."""
    return path if is_url(path) else os.path.abspath(path)


def read_list_file(path: str | os.PathLike[str]) -> list[str]:
    """The videos a list file names (see the module docstring), in its order."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise VideoScanError(f"cannot read the list file {path} ({exc}); it must be UTF-8 "
                             "text, one video path or URL a line") from None
    videos = []
    for line in lines:
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        videos.append(entry if is_url(entry) else os.path.join(folder, entry))
    return videos


def find_videos(inputs: list[str | os.PathLike[str]], *, recursive: bool = True) -> list[Path]:
    """Video files named by ``inputs`` (files are taken as given; folders are searched).

    As :func:`scan_videos`, returning only the files (sorted, no duplicates); a folder
    under the inputs that cannot be listed, and ``.ts`` files that are not video, are
    left out with a warning.
    """
    scan = scan_videos(inputs, recursive=recursive)
    for folder, reason in scan.unreadable:
        warnings.warn(f"cannot list {folder} ({reason}); the videos in it are left out",
                      UserWarning, stacklevel=2)
    if scan.not_video:
        warnings.warn(not_video_message(scan.not_video), UserWarning, stacklevel=2)
    return scan.files


def list_videos(inputs: list[str | os.PathLike[str]], *, recursive: bool = True) -> list[str]:
    """The videos to extract: as :func:`find_videos`, and list files (``*.txt``) are read.

    Returns their keys (:func:`video_key`: absolute paths, URLs as written), sorted, no
    duplicates: the input list that ``--shard`` partitions.
    """
    listed: list[str] = []
    others: list[str | os.PathLike[str]] = []
    for item in inputs:
        if os.fspath(item).lower().endswith(LIST_FILE_EXTENSION) and os.path.isfile(item):
            listed.extend(read_list_file(item))
        else:
            others.append(item)
    keys = {video_key(entry) for entry in listed}
    if others:
        keys.update(os.path.abspath(path) for path in find_videos(others, recursive=recursive))
    return sorted(keys)


def not_video_message(paths: list[str]) -> str:
    return (f"{len(paths)} file(s) with a video extension are not video (not an MPEG "
            f"transport stream; TypeScript sources?) and were left out, e.g. {paths[0]}")


def _walk(root: Path, recursive: bool, scan: VideoScan):
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            folder_stat = folder.stat()
            key = (folder_stat.st_dev, folder_stat.st_ino)
            if key in seen:
                continue
            seen.add(key)
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            scan.unreadable.append((os.path.abspath(folder), _reason(exc)))
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
            except OSError as exc:
                scan.unreadable.append((os.path.abspath(entry.path), _reason(exc)))
                continue
            if is_dir:
                if recursive:
                    stack.append(Path(entry.path))
            elif Path(entry.name).suffix.lower() in VIDEO_EXTENSIONS:
                if _looks_like_video(entry.path) is False:
                    scan.not_video.append(os.path.abspath(entry.path))
                else:
                    yield Path(entry.path)
