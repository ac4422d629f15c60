"""A separate process that holds a folder's writer lock, for tests of a second writer."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

_HOLD = """
import sys
from vsslzoo.locking import FolderLock
lock = FolderLock(sys.argv[1]).acquire()
print("held", flush=True)
sys.stdin.read()  # until the test closes stdin
lock.release()
"""


@contextlib.contextmanager
def lock_held_by_another_process(folder: str | os.PathLike[str]):
    """Yields the pid of a child process that holds ``folder``'s lock until the block ends."""
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, os.fspath(folder)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
