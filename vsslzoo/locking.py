"""One writer per folder: a lock file holding the writer's pid.

Taken with ``O_CREAT | O_EXCL`` (atomic on local filesystems). A lock whose pid is no
longer alive (the writer was killed) is stale and taken over; a live one is an error
that names the pid.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import VsslzooError

LOCK_FILENAME = ".lock"


class FolderLockedError(VsslzooError):
    """Another live process holds the folder's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FolderLock:
    """``with FolderLock(folder, what="index"):`` -- exclusive writer access to ``folder``."""

    def __init__(self, folder: str | os.PathLike[str], what: str = "folder") -> None:
        self.path = Path(folder) / LOCK_FILENAME
        self.what = what
        self.held = False

    def acquire(self) -> FolderLock:
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid = self.holder()
                if pid and pid != os.getpid() and _pid_alive(pid):
                    raise FolderLockedError(
                        f"{self.what} {self.path.parent} is locked by pid {pid} (another "
                        "process is writing it); wait for it to finish, or stop it"
                    ) from None
                self.path.unlink(missing_ok=True)  # stale: its writer is gone
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            self.held = True
            return self
        raise FolderLockedError(f"could not take the lock {self.path}")

    def holder(self) -> int | None:
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc_info) -> None:
        self.release()
