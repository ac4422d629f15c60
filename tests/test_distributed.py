"""Cross-process gathers and BatchNorm over the global batch (training/distributed.py) in
a real two-process gloo group (one group for all the checks: starting processes is the
slow part)."""

from __future__ import annotations

import copy
import io

import pytest
import torch
import torch.multiprocessing as mp

from vsslzoo.training.distributed import (
    GlobalBatchNorm,
    gather_no_grad,
    gather_with_grad,
    sync_batch_norm,
)

ROWS = (3, 2)  # rank 0 holds 3 rows, rank 1 holds 2 (a skipped video)


def _data(rank: int) -> torch.Tensor:
    return torch.arange(ROWS[rank] * 4, dtype=torch.float32).view(-1, 4) + 100 * rank


def _weights(rank: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(rank)
    return torch.randn(sum(ROWS), 4, generator=generator)


def _batch_norm_data():
    """(N, 4, 3, 5) float64 rows, loss weights, and a BatchNorm2d with non-trivial affine
    parameters and momentum."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(sum(ROWS), 4, 3, 5, generator=generator, dtype=torch.float64) * 3 + 1
    weights = torch.randn(x.shape, generator=generator, dtype=torch.float64)
    module = torch.nn.Sequential(torch.nn.BatchNorm2d(4, eps=1e-3, momentum=0.3)).double()
    with torch.no_grad():
        module[0].weight.uniform_(0.5, 1.5, generator=generator)
        module[0].bias.uniform_(-1, 1, generator=generator)
    return x, weights, module


def _batch_norm(rank: int) -> dict:
    x, weights, module = _batch_norm_data()
    module = sync_batch_norm(module, torch.device("cpu"))
    assert isinstance(module[0], GlobalBatchNorm)
    rows = slice(sum(ROWS[:rank]), sum(ROWS[:rank + 1]))
    local = x[rows].clone().requires_grad_()
    out = module(local)
    (out * weights[rows]).sum().backward()  # L_r; the processes' losses sum to the total
    return {"out": out.detach(), "grad": local.grad, "weight": module[0].weight.grad,
            "bias": module[0].bias.grad, "state": module.state_dict()}


def _worker(rank: int, init: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        x = _data(rank).requires_grad_()
        gathered, offset = gather_with_grad(x)
        loss = (gathered * _weights(rank)).sum()  # L_r, a different loss on each rank
        loss.backward()
        ids = gather_no_grad(torch.tensor([rank] * ROWS[rank]))
        # by value: tensors put in a queue as shared memory vanish when this process exits
        buffer = io.BytesIO()
        torch.save((rank, gathered.detach(), offset, x.grad, ids, _batch_norm(rank)), buffer)
        results.put(buffer.getvalue())
    finally:
        torch.distributed.destroy_process_group()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Each rank's results, from one two-process group."""
    context = mp.get_context("spawn")
    results = context.Queue()
    init = f"file://{tmp_path_factory.mktemp('group') / 'rendezvous'}"
    processes = [context.Process(target=_worker, args=(r, init, results)) for r in (0, 1)]
    for process in processes:
        process.start()
    outputs = {}
    for _ in processes:
        rank, *values = torch.load(io.BytesIO(results.get(timeout=120)))
        outputs[rank] = values
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return outputs


def test_gathers_rows_of_unequal_counts_and_sums_gradients(outputs):
    everything = torch.cat([_data(0), _data(1)])
    total_weight = _weights(0) + _weights(1)  # d(L_0 + L_1) / d(all rows)
    for rank in (0, 1):
        gathered, offset, grad, ids, _ = outputs[rank]
        torch.testing.assert_close(gathered, everything)
        assert offset == (0, 3)[rank]
        torch.testing.assert_close(grad, total_weight[offset:offset + ROWS[rank]])
        assert ids.tolist() == [0, 0, 0, 1, 1]


def test_outside_a_process_group_both_return_their_input():
    x = torch.ones(2, 3)
    assert gather_with_grad(x) == (x, 0)
    assert gather_no_grad(x) is x


def test_global_batch_norm_equals_one_batch_norm_over_all_rows(outputs):
    """--sync-bn on CPU (``torch.nn.SyncBatchNorm`` refuses CPU tensors): outputs, input
    gradients of the summed losses, parameter gradients (each process's share; DDP sums
    and averages them) and running statistics equal one BatchNorm over all rows of
    unequal shares (float64)."""
    x, weights, module = _batch_norm_data()
    reference = copy.deepcopy(module)
    whole = x.clone().requires_grad_()
    out = reference(whole)
    (out * weights).sum().backward()
    parts = [outputs[rank][-1] for rank in (0, 1)]
    torch.testing.assert_close(torch.cat([p["out"] for p in parts]), out.detach())
    torch.testing.assert_close(torch.cat([p["grad"] for p in parts]), whole.grad)
    for name in ("weight", "bias"):
        torch.testing.assert_close(parts[0][name] + parts[1][name],
                                   getattr(reference[0], name).grad)
    for part in parts:
        for key, value in reference.state_dict().items():
            torch.testing.assert_close(part["state"][key], value, msg=key)
    plain = sync_batch_norm(copy.deepcopy(module), torch.device("cpu"))
    torch.testing.assert_close(plain(x), copy.deepcopy(module)(x))  # no group: plain BN
