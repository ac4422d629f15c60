"""The training sampler: shuffled, sharded over processes, epoch-carrying, resumable.

:class:`EpochSampler` yields ``(epoch, index)`` pairs instead of bare indices. The epoch
travels with every index into the DataLoader's workers, so a dataset that seeds its random
draw with ``(seed, epoch, index)`` (:class:`~.datasets.ClipDataset`) gets a new draw every
epoch even when its workers are persistent processes holding their own copy of the
dataset (``set_epoch`` on the main process's copy never reaches them).

Resuming in the middle of an epoch skips the batches already trained on *by index*
(``set_epoch(epoch, skip_batches=k)`` starts the epoch at its ``k``-th batch), so nothing
is decoded to be thrown away.

The permutation and the sharding follow ``torch.utils.data.DistributedSampler`` with
``shuffle=True, drop_last=True``: ``torch.randperm(n, generator=seed + epoch)``, the
first ``(n // world) * world`` indices, process ``rank`` takes every ``world``-th.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


class EpochSampler(torch.utils.data.Sampler):
    """``(epoch, index)`` for each of this process's samples of the epoch, in order.

    Args:
        size: samples in the dataset.
        num_replicas, rank: the process group (1 and 0 without DDP).
        seed: the shuffle seed (the same on every process).
        batch_size: per-process batch, the unit of ``skip_batches``.
        with_epoch: yield ``(epoch, index)`` (True) or bare indices (False, for datasets
            that draw nothing at random).
    """

    def __init__(self, size: int, *, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 batch_size: int = 1, with_epoch: bool = True) -> None:
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
        self.size = size
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.batch_size = batch_size
        self.with_epoch = with_epoch
        self.epoch = 0
        self.skip_batches = 0

    @property
    def per_epoch(self) -> int:
        """Samples this process sees in a whole epoch."""
        return self.size // self.num_replicas

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        """The epoch the next iteration draws, starting at its ``skip_batches``-th batch."""
        self.epoch = epoch
        self.skip_batches = skip_batches

    def indices(self) -> list[int]:
        """This process's indices of the current epoch, before any skipping."""
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        order = order[: self.per_epoch * self.num_replicas]
        return order[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[tuple[int, int] | int]:
        for index in self.indices()[self.skip_batches * self.batch_size:]:
            yield (self.epoch, index) if self.with_epoch else index

    def __len__(self) -> int:
        return max(self.per_epoch - self.skip_batches * self.batch_size, 0)
