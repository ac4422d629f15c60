"""FolderLock: one writer per folder, also when processes race for it or die holding it."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from lock_holder import lock_held_by_another_process

from vsslzoo.locking import FolderLock, FolderLockedError

# A racer: waits for "go", tries the lock, says "acquired" or "locked", and holds what it
# got until stdin closes. Reading the lock file's pid is slowed down (more for later
# racers), which widens the window in which a pid-file lock sees a stale pid and replaces
# the file: with the window wide open, every racer of such a lock gets it.
_RACER = """
import sys, time
from vsslzoo import locking
delay = 0.2 + 0.15 * int(sys.argv[2])
read_holder = locking.FolderLock.holder
def slow_holder(self):
    pid = read_holder(self)
    time.sleep(delay)
    return pid
locking.FolderLock.holder = slow_holder
print("ready", flush=True)
sys.stdin.readline()
try:
    lock = locking.FolderLock(sys.argv[1]).acquire()
except locking.FolderLockedError:
    print("locked", flush=True)
    sys.exit(0)
print("acquired", flush=True)
sys.stdin.read()
lock.release()
"""


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@pytest.fixture
def deadline():
    signal.alarm(120)  # a hang fails the test instead of the whole run
    yield
    signal.alarm(0)


def test_processes_racing_for_a_stale_lock_get_it_once(tmp_path, deadline):
    (tmp_path / ".lock").write_text(str(_dead_pid()))  # left by a killed writer
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, str(tmp_path), str(i)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
              for i in range(4)]
    try:
        assert [r.stdout.readline().strip() for r in racers] == ["ready"] * 4
        for racer in racers:
            racer.stdin.write("go\n")
            racer.stdin.flush()
        outcomes = sorted(r.stdout.readline().strip() for r in racers)
    finally:
        for racer in racers:
            racer.stdin.close()
            racer.wait(timeout=60)
    assert outcomes == ["acquired", "locked", "locked", "locked"]
    assert not (tmp_path / ".lock").exists()  # the winner released it


def test_lock_file_whose_pid_is_not_written_yet_is_held(tmp_path, deadline):
    # the holder has locked the (empty) file and not yet written its pid
    hold_empty = ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                  "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); "
                  "sys.stdin.read()")
    holder = subprocess.Popen([sys.executable, "-c", hold_empty, str(tmp_path / ".lock")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError, match="locked by another process"):
            FolderLock(tmp_path, what="index").acquire()
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_lock_of_a_killed_holder_is_taken_over_and_a_live_one_refused(tmp_path, deadline):
    with lock_held_by_another_process(tmp_path) as pid:
        with pytest.raises(FolderLockedError, match=f"index {tmp_path} is locked by pid {pid}"):
            FolderLock(tmp_path, what="index").acquire()
    (tmp_path / ".lock").write_text(str(_dead_pid()))  # what kill -9 of a holder leaves
    with FolderLock(tmp_path) as lock:
        assert lock.held and lock.holder() is not None
        with pytest.raises(FolderLockedError):  # also within one process
            FolderLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()
