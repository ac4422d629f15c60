"""The trainer's sampler: epochs reach DataLoader workers, resume skips by index."""

from __future__ import annotations

import torch
from epoch_probe import RecordingModel, random_draw

from vsslzoo.training.data.datasets import ClipDataset
from vsslzoo.training.data.sampler import EpochSampler
from vsslzoo.training.trainer import TrainConfig, Trainer


def test_order_and_sharding_match_distributed_sampler():
    dataset = list(range(23))
    for world in (1, 2, 3):
        for rank in range(world):
            reference = torch.utils.data.distributed.DistributedSampler(
                dataset, num_replicas=world, rank=rank, shuffle=True, seed=5, drop_last=True)
            ours = EpochSampler(23, num_replicas=world, rank=rank, seed=5, with_epoch=False)
            for epoch in (0, 3):
                reference.set_epoch(epoch)
                ours.set_epoch(epoch)
                assert list(ours) == list(reference)
                assert len(ours) == len(reference)


def test_skip_batches_starts_the_epoch_later_without_touching_the_rest():
    sampler = EpochSampler(20, seed=1, batch_size=4)
    sampler.set_epoch(2)
    whole = list(sampler)
    assert all(epoch == 2 for epoch, _ in whole) and len(whole) == 20
    sampler.set_epoch(2, skip_batches=3)
    assert list(sampler) == whole[12:] and len(sampler) == 8


def _trainer(out, steps, workers, max_steps=None):
    torch.manual_seed(0)
    videos = [(f"video{i}.mp4", None) for i in range(8)]
    config = TrainConfig(out=str(out), steps=steps, batch_size=4, lr=0.05, workers=workers,
                         log_every=1, checkpoint_every=1, max_steps=max_steps, seed=3)
    return Trainer(config, RecordingModel(), ClipDataset(videos, random_draw, seed=3))


def test_epochs_reach_persistent_workers_and_resume_is_exact(tmp_path):
    """With 2 spawned, persistent workers every epoch draws anew (before the fix, epochs
    0, 1, 2 fed identical samples), and a run stopped mid-epoch and resumed ends with the
    samples and the weights of the uninterrupted run."""
    full = _trainer(tmp_path / "full", steps=6, workers=2)
    full.fit()
    draws = torch.cat(full.model.seen)  # 3 epochs x 8 samples
    assert draws.shape == (24, 4)
    epochs = draws.view(3, 8, 4)
    for a, b in ((0, 1), (1, 2), (0, 2)):  # no sample of one epoch recurs in another
        assert torch.cdist(epochs[a], epochs[b]).min() > 1e-3

    with_zero_workers = _trainer(tmp_path / "zero", steps=6, workers=0)
    with_zero_workers.fit()
    torch.testing.assert_close(torch.cat(with_zero_workers.model.seen), draws)

    first = _trainer(tmp_path / "resumed", steps=6, workers=2, max_steps=3)
    first.fit()
    assert (first.epoch, first.epoch_batches) == (1, 1)
    second = _trainer(tmp_path / "resumed", steps=6, workers=2)
    second.fit(resume=True)
    torch.testing.assert_close(torch.cat(first.model.seen + second.model.seen), draws)
    for key, value in full.model.state_dict().items():
        torch.testing.assert_close(second.model.state_dict()[key], value)
