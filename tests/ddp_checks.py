"""Checks shared by the two-process tests: a run of 2 processes must equal a run of one
process over the same global batch, not merely keep its replicas equal (DDP's averaging
keeps them equal even when every process's loss is wrong)."""

from __future__ import annotations

from pathlib import Path

import torch


def assert_same_step(one: Path, two: Path, *, unordered: tuple[str, ...] = ()) -> None:
    """The checkpoints ``one`` and ``two`` after the same first Adam step agree: the
    gradients (Adam's first moments, ``0.1 g``), the BatchNorm statistics, the other
    buffers and the weights.

    Tolerances: BatchNorm statistics come from the forward pass and agree to float32
    rounding (1e-3 of each tensor's largest entry). Gradients do not: behind every ReLU a
    rounding error of 1e-6 flips some units, which moves a BatchNorm bias gradient by
    ~1 % of its norm even in float64 (measured on the CtP smoke model), so two float32
    runs that split the batch differently agree to ~1 %; each tensor's gradient must
    agree to 5 % of its norm (a wrong cross-process term moves it by tens of percent).
    A weight moves by ``lr * g / (|g| + eps)`` in a first Adam step, i.e. by the sign of
    its gradient: at most 2 % of all weight entries may have moved differently (those
    whose gradient is within the noise: 0.3 % measured on CtP, up to 10 % of a small
    BatchNorm bias). Buffers named in ``unordered`` hold the same rows in any order;
    integer buffers are equal."""
    one, two = (torch.load(path, weights_only=True) for path in (one, two))
    assert one["step"] == two["step"] == 1
    states = [list(c["optimizer"]["state"].values()) for c in (one, two)]
    assert len(states[0]) == len(states[1]) > 0
    for index, (first, second) in enumerate(zip(*states)):
        reference, other = first["exp_avg"].double(), second["exp_avg"].double()
        error = float((other - reference).norm() / reference.norm().clamp_min(1e-30))
        assert error <= 0.05, f"parameter {index}: gradients differ by {error:.1%}"
    moved, weights = 0, 0
    for name, a in one["model"].items():
        b = two["model"][name]
        if name in unordered:
            assert_same_rows(a, b, atol=1e-3)
        elif not a.is_floating_point():
            assert torch.equal(a, b), name
        elif name.endswith(("running_mean", "running_var")):
            torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-3 * float(a.abs().max()),
                                       msg=lambda m, name=name: f"{name}: {m}")
        else:
            moved += int(((b - a).abs() > 1e-6 * max(1.0, float(a.abs().max()))).sum())
            weights += a.numel()
    assert moved <= 0.02 * weights, f"{moved} of {weights} weights moved differently"


def assert_same_rows(a: torch.Tensor, b: torch.Tensor, *, atol: float) -> None:
    """``a`` and ``b`` (N, D) hold the same rows, in any order."""
    assert a.shape == b.shape
    distance = torch.cdist(a.double(), b.double())
    nearest = distance.argmin(dim=1)
    assert sorted(nearest.tolist()) == list(range(len(b))), "rows matched twice"
    assert float(distance.min(dim=1).values.max()) <= atol


def free_port() -> int:
    import socket

    with socket.socket() as handle:  # ports other jobs on this machine may hold vary
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def as_rank(rank: int, port: int) -> None:
    """Make this process rank ``rank`` of 2 the way torchrun would (the trainer joins the
    group from these variables)."""
    import os

    os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank),
                      LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)


def spawn_two(function, args: tuple, timeout_s: float = 300) -> None:
    """``function(rank, *args)`` in 2 processes; fails (and kills them) if they have not
    finished within ``timeout_s`` (a process waiting for a peer that stopped)."""
    import time

    import pytest

    context = torch.multiprocessing.spawn(function, args=args, nprocs=2, join=False)
    deadline = time.monotonic() + timeout_s
    while not context.join(timeout=2):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the two processes did not finish within {timeout_s} s")


def clean_copy(csv_path: Path, drop: str, name: str = "clean.csv") -> Path:
    """``csv_path`` without the rows containing ``drop`` (e.g. a too-short video: DDP's
    equal shares of a batch then hold equal numbers of videos)."""
    clean = csv_path.parent / name
    clean.write_text("".join(line for line in csv_path.read_text().splitlines(True)
                             if drop not in line))
    return clean
