"""One writer per folder: an exclusive ``flock`` on the folder's lock file.

The kernel holds the lock for the writer's open file and drops it when the writer ends,
however it ends (``kill -9`` too), so a lock is never stale and two processes cannot
both take one: there is no window between creating the file and writing a pid, and no
takeover to race for. The file holds the writer's pid, for the message that names it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import VsslzooError

LOCK_FILENAME = ".lock"


class FolderLockedError(VsslzooError):
    """Another live process holds the folder's lock."""


class FolderLock:
    """``with FolderLock(folder, what="index"):`` -- exclusive writer access to ``folder``."""

    def __init__(self, folder: str | os.PathLike[str], what: str = "folder",
                 filename: str = LOCK_FILENAME) -> None:
        self.path = Path(folder) / filename
        self.what = what
        self.held = False
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        for _ in range(100):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid = self.holder()
                who = f"pid {pid}" if pid else "another process"
                raise FolderLockedError(
                    f"{self.what} {self.path.parent} is locked by {who} (another process is "
                    "writing it); wait for it to finish, or stop it"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # The previous holder removes the file when it releases: a lock taken on the
            # removed file excludes nobody, so it must still be the file the path names.
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is None or not os.path.samestat(os.fstat(fd), current):
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
            self._fd = fd
            self.held = True
            return self
        raise FolderLockedError(f"could not take the lock {self.path}: it keeps being "
                                "replaced by other processes")

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)  # while still locked: see acquire()
            os.close(self._fd)
            self._fd = None
            self.held = False

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
