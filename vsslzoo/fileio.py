"""Atomic file writes: a temp file in the same folder, fsync, then rename over the target.

A reader sees the old file or the new one, never half of one; a crash leaves at most a
hidden ``.NAME.*.tmp`` file, which writers clean up.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _temp_copy(path: Path, data: bytes) -> Path:
    """``data`` written and fsynced to a hidden temp file beside ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    path = Path(path)
    tmp = _temp_copy(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_create_bytes(path: str | os.PathLike[str], data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists: True if this call created it.

    Complete or absent, like :func:`atomic_write_bytes`, and never replaces a file that
    another process created first (a hard link fails on an existing name), so writers
    racing to create the same file agree on whose content it holds.
    """
    path = Path(path)
    tmp = _temp_copy(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)
    return True
