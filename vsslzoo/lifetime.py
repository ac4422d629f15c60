"""Child processes that end with their parent: decode workers, DataLoader workers.

``kill -9`` of a parent runs none of its cleanup, and a worker blocked on a full queue
or busy inside FFmpeg never learns that the parent is gone: it lives on under init, and
keeps the multiprocessing resource tracker alive with it. :func:`exit_with_parent`,
called first thing in the worker, ties the worker's life to its parent's.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_S = 0.5


def exit_with_parent(worker_id: int | None = None) -> None:
    """Make this process exit when its parent process dies, however the parent dies.

    Call it first thing in a child process. ``worker_id`` is ignored; it is there so the
    function can be given as is to ``torch.utils.data.DataLoader(worker_init_fn=...)``
    (or called from another ``worker_init_fn``).

    On Linux the kernel sends SIGKILL to this process when its parent dies
    (``prctl(PR_SET_PDEATHSIG)``); strictly, when the parent's *thread* that started this
    process ends, so start workers from a thread that lives as long as they should (the
    main thread does). Elsewhere a daemon thread polls the parent's pid and exits the
    process when the parent is gone (within half a second).
    """
    parent_pid = os.getppid()
    if _parent_already_gone(parent_pid):
        os._exit(1)
    if sys.platform.startswith("linux") and _set_parent_death_signal(signal.SIGKILL):
        if os.getppid() != parent_pid:  # it died before the signal was asked for
            os._exit(1)
        return
    threading.Thread(target=_exit_when_reparented, args=(parent_pid,), daemon=True,
                     name="vsslzoo-exit-with-parent").start()


def _parent_already_gone(parent_pid: int) -> bool:
    """The multiprocessing parent died before this process got here (it has been
    reparented: its parent pid is not the one that started it, and that one is gone)."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid in (None, parent_pid):
        return False  # forkserver children have the server as parent: also fine
    try:
        os.kill(parent.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def _set_parent_death_signal(signum: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _exit_when_reparented(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_POLL_S)
    os._exit(1)
