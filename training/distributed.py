"""Cross-process pieces the recipes share: gathers (negatives from every GPU) and
batch statistics over the whole batch.

* :func:`gather_with_grad`: every process's rows, concatenated by rank, with gradients
  flowing back to the process that owns each row;
* :func:`gather_no_grad`: the same for labels, ids and momentum-encoder keys;
* :func:`sync_batch_norm`: BatchNorm over the global batch (``--sync-bn``):
  ``torch.nn.SyncBatchNorm`` on GPUs, :class:`GlobalBatchNorm` elsewhere (PyTorch's
  SyncBatchNorm refuses CPU tensors, so a gloo run would otherwise fail in its first
  forward pass).

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
from torch import nn


def launched() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` as ``torchrun`` launched this process (its
    environment variables; ``(0, 1, 0)`` without torchrun): what the trainer joins the
    process group with, and what a recipe splits its batch by before the group exists."""
    import os

    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of the process group; ``(0, 1)`` outside one."""
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


class _GlobalBatchNorm(torch.autograd.Function):
    """Batch normalisation over the rows of every process, with the analytic backward
    pass of BatchNorm (``torch.nn.SyncBatchNorm``'s: the sums of ``dy`` and
    ``dy * x_hat`` are all-reduced). Statistics and gradient sums are accumulated in
    float64. Returns ``(y, mean, unbiased variance)`` (the last two for the running
    statistics)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float):
        dims = [0, *range(2, x.dim())]
        shape = (1, -1, *[1] * (x.dim() - 2))
        stats = torch.cat((x.double().sum(dims),
                           x.new_tensor([x.numel() // x.shape[1]], dtype=torch.float64)))
        torch.distributed.all_reduce(stats)
        count, mean = stats[-1], stats[:-1] / stats[-1]
        centred = x.double() - mean.view(shape)
        var = (centred * centred).sum(dims)
        torch.distributed.all_reduce(var)
        var = var / count
        invstd = torch.rsqrt(var + eps)
        x_hat = centred * invstd.view(shape)
        ctx.save_for_backward(x_hat.to(x.dtype), invstd, weight)
        ctx.count = float(count)
        out = (x_hat * weight.double().view(shape) + bias.double().view(shape)).to(x.dtype)
        unbiased = var * count / (count - 1).clamp_min(1)
        mean, unbiased = mean.to(x.dtype), unbiased.to(x.dtype)
        ctx.mark_non_differentiable(mean, unbiased)
        return out, mean, unbiased

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor, _mean, _var):
        x_hat, invstd, weight = ctx.saved_tensors
        dims = [0, *range(2, grad_out.dim())]
        shape = (1, -1, *[1] * (grad_out.dim() - 2))
        dy = grad_out.double()
        x_hat = x_hat.double()
        local = torch.cat((dy.sum(dims), (dy * x_hat).sum(dims)))
        grad_bias, grad_weight = local.chunk(2)  # this process's share; DDP averages them
        total = local.clone()
        torch.distributed.all_reduce(total)
        mean_dy, mean_dy_xhat = (total / ctx.count).chunk(2)
        grad_x = (dy - mean_dy.view(shape) - x_hat * mean_dy_xhat.view(shape)) \
            * (invstd * weight.double()).view(shape)
        return (grad_x.to(grad_out.dtype), grad_weight.to(weight.dtype),
                grad_bias.to(weight.dtype), None)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm (any of 1d / 2d / 3d) whose training statistics are those of the global
    batch: the rows of every process together, as ``torch.nn.SyncBatchNorm`` computes
    them, for devices it does not support (CPU under gloo). The running variance is the
    unbiased one, as in ``F.batch_norm``. Outside a process group, or in eval mode, it is
    a plain BatchNorm. Same parameters and buffers as ``nn.BatchNorm*d`` (checkpoints
    and exports are interchangeable)."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and world()[1] > 1):
            return super().forward(x)
        weight = self.weight if self.affine else x.new_ones(x.shape[1])
        bias = self.bias if self.affine else x.new_zeros(x.shape[1])
        out, mean, var = _GlobalBatchNorm.apply(x, weight, bias, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                          else self.momentum)
                self.running_mean.mul_(1 - factor).add_(mean * factor)
                self.running_var.mul_(1 - factor).add_(var * factor)
        return out


def sync_batch_norm(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` with every BatchNorm computing its statistics over all processes:
    ``nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` on other devices. Parameters
    are moved, not copied (optimiser groups and momentum encoders keep them)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and \
            not isinstance(module, GlobalBatchNorm):
        converted = GlobalBatchNorm(module.num_features, module.eps, module.momentum,
                                    module.affine, module.track_running_stats)
        if module.affine:
            converted.weight, converted.bias = module.weight, module.bias
        if module.track_running_stats:
            converted.running_mean = module.running_mean
            converted.running_var = module.running_var
            converted.num_batches_tracked = module.num_batches_tracked
        converted.train(module.training)
        return converted
    for name, child in module.named_children():
        module.add_module(name, sync_batch_norm(child, device))
    return module
