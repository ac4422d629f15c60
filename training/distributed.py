"""Cross-process gathers the contrastive recipes share (negatives from every GPU).

* :func:`gather_with_grad`: every process's rows, concatenated by rank, with gradients
  flowing back to the process that owns each row;
* :func:`gather_no_grad`: the same for labels, ids and momentum-encoder keys.

Processes may hold different numbers of rows (a batch shrinks when a broken video is
skipped): rows are padded to the largest count for the exchange and the padding is
dropped. Outside a process group (or with one process) both return their input.

Gradients: under DDP each process ``r`` computes its loss ``L_r`` on the gathered rows,
so the gradient a process needs for its own rows is ``sum_r dL_r / d rows`` — the
backward pass all-reduces (sums) the gathered gradient and keeps this process's slice
(what ``torch.distributed.nn.all_gather`` does; that function is deprecated in recent
PyTorch, so this small autograd function replaces it). DDP then averages parameter
gradients over processes as usual.
"""

from __future__ import annotations

import torch


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` outside a process group."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _row_counts(rows: int, device: torch.device) -> list[int]:
    count = torch.tensor([rows], device=device)
    counts = [torch.zeros_like(count) for _ in range(world()[1])]
    torch.distributed.all_gather(counts, count)
    return [int(c) for c in counts]


def _pad_rows(x: torch.Tensor, rows: int) -> torch.Tensor:
    if x.shape[0] == rows:
        return x.contiguous()
    return torch.cat((x, x.new_zeros(rows - x.shape[0], *x.shape[1:]))).contiguous()


class _AllGather(torch.autograd.Function):
    """(N, ...) on every process -> (world, N, ...); backward sums over processes and
    returns this process's slice."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        rank, size = world()
        ctx.rank = rank
        parts = [torch.empty_like(x) for _ in range(size)]
        torch.distributed.all_gather(parts, x)
        return torch.stack(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        return grad[ctx.rank]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``x`` (N, ...) of every process concatenated along dim 0, differentiable, and the
    index of this process's first row in it."""
    rank, size = world()
    if size == 1:
        return x, 0
    counts = _row_counts(x.shape[0], x.device)
    parts = _AllGather.apply(_pad_rows(x, max(counts)))
    gathered = torch.cat([parts[r, :n] for r, n in enumerate(counts)])
    return gathered, sum(counts[:rank])


@torch.no_grad()
def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """``x`` (N, ...) of every process concatenated along dim 0 (no gradient)."""
    _, size = world()
    if size == 1:
        return x
    counts = _row_counts(x.shape[0], x.device)
    padded = _pad_rows(x, max(counts))
    parts = [torch.empty_like(padded) for _ in range(size)]
    torch.distributed.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts)])
