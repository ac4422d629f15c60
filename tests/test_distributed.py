"""Cross-process gathers (training/distributed.py) in a real two-process gloo group."""

from __future__ import annotations

import torch
import torch.multiprocessing as mp

from vsslzoo.training.distributed import gather_no_grad, gather_with_grad

ROWS = (3, 2)  # rank 0 holds 3 rows, rank 1 holds 2 (a skipped video)


def _data(rank: int) -> torch.Tensor:
    return torch.arange(ROWS[rank] * 4, dtype=torch.float32).view(-1, 4) + 100 * rank


def _weights(rank: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(rank)
    return torch.randn(sum(ROWS), 4, generator=generator)


def _worker(rank: int, init: str, results) -> None:
    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        x = _data(rank).requires_grad_()
        gathered, offset = gather_with_grad(x)
        loss = (gathered * _weights(rank)).sum()  # L_r, a different loss on each rank
        loss.backward()
        ids = gather_no_grad(torch.tensor([rank] * ROWS[rank]))
        results.put((rank, gathered.detach(), offset, x.grad, ids))
    finally:
        torch.distributed.destroy_process_group()


def test_gathers_rows_of_unequal_counts_and_sums_gradients(tmp_path):
    context = mp.get_context("spawn")
    results = context.Queue()
    init = f"file://{tmp_path / 'rendezvous'}"
    processes = [context.Process(target=_worker, args=(r, init, results)) for r in (0, 1)]
    for process in processes:
        process.start()
    outputs = {}
    for _ in processes:
        rank, gathered, offset, grad, ids = results.get(timeout=120)
        outputs[rank] = (gathered, offset, grad, ids)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    everything = torch.cat([_data(0), _data(1)])
    total_weight = _weights(0) + _weights(1)  # d(L_0 + L_1) / d(all rows)
    for rank in (0, 1):
        gathered, offset, grad, ids = outputs[rank]
        torch.testing.assert_close(gathered, everything)
        assert offset == (0, 3)[rank]
        torch.testing.assert_close(grad, total_weight[offset:offset + ROWS[rank]])
        assert ids.tolist() == [0, 0, 0, 1, 1]


def test_outside_a_process_group_both_return_their_input():
    x = torch.ones(2, 3)
    assert gather_with_grad(x) == (x, 0)
    assert gather_no_grad(x) is x
