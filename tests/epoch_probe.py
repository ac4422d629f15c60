"""Picklable pieces for the trainer's worker tests (spawned DataLoader workers import
this module by name): a sample draw that records its randomness, a one-layer model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def random_draw(path: str, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """What ClipDataset's sampler returns: here just the random numbers drawn."""
    return {"x": torch.tensor(rng.standard_normal(4), dtype=torch.float32)}


class RecordingModel(nn.Module):
    """Linear regression on the drawn numbers; keeps every batch it was given."""

    clips_per_video = 1

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.seen.append(batch["x"].detach().clone())
        return {"loss": (self.linear(batch["x"]) - 1).pow(2).mean()}
