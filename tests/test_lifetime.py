"""Worker processes end with their parent, however it dies (kill -9 included)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from videos import write_video

# Starts a decode pool whose workers block on the full result queue (nobody reads it),
# prints their pids and the resource tracker's, then waits to be killed.
_POOL_PARENT = """
import sys
from multiprocessing import resource_tracker
from vsslzoo.config import PreprocessConfig
from vsslzoo.video.pool import DecodePool
pre = PreprocessConfig(num_frames=4, frame_stride=1, resize=36, crop=(32, 32))
pool = DecodePool("sliding:0.1", pre, workers=2, chunk_clips=1, chunks_in_flight=1)
messages = pool.run([sys.argv[1]] * 4)
next(messages)
pids = [p.pid for p in pool.processes.values()] + [resource_tracker._resource_tracker._pid]
print(*pids, flush=True)
sys.stdin.read()
"""

# A training-style DataLoader whose workers are busy in __getitem__ when the parent dies.
_LOADER_PARENT = """
import os, time
import torch
from vsslzoo.lifetime import exit_with_parent

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 8
    def __getitem__(self, index):
        print("worker", os.getpid(), flush=True)
        time.sleep(600)
        return index

loader = torch.utils.data.DataLoader(Slow(), num_workers=2, worker_init_fn=exit_with_parent)
next(iter(loader))
"""


def _alive(pid: int) -> bool:
    """Running (a zombie left for a non-reaping init counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def _kill_parent_and_wait_for(parent: subprocess.Popen, pids: list[int]) -> list[int]:
    """kill -9 ``parent``; the pids still alive after a generous wait."""
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in pids if _alive(pid)]
    for pid in left:  # do not leave them behind when the test fails
        os.kill(pid, signal.SIGKILL)
    return left


@pytest.fixture
def deadline():
    signal.alarm(180)  # a hang fails the test instead of the whole run
    yield
    signal.alarm(0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_decode_workers_and_resource_tracker_exit_when_the_parent_is_killed(tmp_path,
                                                                            deadline):
    video = write_video(tmp_path / "long.mp4", num_frames=240, gop=24)
    parent = subprocess.Popen([sys.executable, "-c", _POOL_PARENT, str(video)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 3 and all(_alive(pid) for pid in pids)
    finally:
        left = _kill_parent_and_wait_for(parent, pids)
    assert left == []


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_dataloader_workers_with_exit_with_parent_exit_when_the_parent_is_killed(deadline):
    pytest.importorskip("torch")
    parent = subprocess.Popen([sys.executable, "-c", _LOADER_PARENT],
                              stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        for _ in range(2):  # both workers are busy in __getitem__
            word, pid = parent.stdout.readline().split()
            pids.append(int(pid))
        assert len(set(pids)) == 2 and all(_alive(pid) for pid in pids)
    finally:
        left = _kill_parent_and_wait_for(parent, pids)
    assert left == []
