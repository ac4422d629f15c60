"""Downstream evaluation of a pretrained backbone: retrieval and linear probe.

    python -m vsslzoo.training eval retrieval --model runs/ctp/model \\
        --gallery train.csv --queries test.csv
    python -m vsslzoo.training eval linear --model runs/ctp/model --train train.csv --test test.csv

* **retrieval**: R@1/5/10/20/50 by the VCOP / CtP / CoCLR protocol
  (:func:`vsslzoo.evaluate.evaluate_retrieval`).
* **linear**: the frozen backbone embeds every video (mean of 10 uniform clips), the
  features are z-scored with the training set's statistics, and one linear layer is
  trained with softmax cross-entropy (full batch, Adam, weight decay); top-1 accuracy on
  the test set. (Frozen backbone, z-scored features, one linear layer: the linear
  evaluation of CORP §4.1; optimiser and epochs are this module's choice and switches.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from vsslzoo.errors import ConfigError


@dataclass
class LinearProbeResult:
    train_accuracy: float
    test_accuracy: float
    classes: list[str]
    train_videos: int
    test_videos: int


def linear_probe(train_x: np.ndarray, train_y: list[str], test_x: np.ndarray,
                 test_y: list[str], *, epochs: int = 300, lr: float = 0.01,
                 weight_decay: float = 1e-4, seed: int = 0) -> LinearProbeResult:
    """Train a linear classifier on z-scored ``train_x`` and score ``test_x`` (top-1)."""
    classes = sorted(set(train_y))
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(test_y) - set(classes))
    if unknown:
        raise ConfigError(f"test labels never seen in training: {unknown}; the --test CSV "
                          "may only use labels that the --train CSV has")
    mean = train_x.mean(axis=0, keepdims=True)
    std = train_x.std(axis=0, keepdims=True) + 1e-6
    xtr = torch.from_numpy(((train_x - mean) / std).astype(np.float32))
    xte = torch.from_numpy(((test_x - mean) / std).astype(np.float32))
    ytr = torch.tensor([index[y] for y in train_y])
    yte = torch.tensor([index[y] for y in test_y])
    generator = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(xtr.shape[1], len(classes))
    with torch.no_grad():
        layer.weight.normal_(0, 0.01, generator=generator)
        layer.bias.zero_()
    optimiser = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(epochs):
        optimiser.zero_grad()
        torch.nn.functional.cross_entropy(layer(xtr), ytr).backward()
        optimiser.step()
    with torch.no_grad():
        train_acc = float((layer(xtr).argmax(1) == ytr).float().mean())
        test_acc = float((layer(xte).argmax(1) == yte).float().mean())
    return LinearProbeResult(train_acc, test_acc, classes, len(train_y), len(test_y))


def video_features(model, rows: list[tuple[str, str]], *, clips: str = "uniform:10",
                   workers: int = 0) -> tuple[np.ndarray, list[str], list[tuple[str, str]]]:
    """(features (N, D) un-normalised means, labels, failures) for ``path,label`` rows."""
    from vsslzoo.extract import extract_videos

    labels = dict(rows)
    features, kept, failed = [], [], []
    for result in extract_videos(model, [p for p, _ in rows], clips=clips, workers=workers):
        if result.error is None:
            features.append(result.video_mean)
            kept.append(labels[result.path])
        else:
            failed.append((result.path, result.error))
    if not features:
        path, error = failed[0] if failed else ("", "no rows")
        raise ConfigError(f"none of the {len(rows)} videos could be embedded (first: {path}: "
                          f"{error}); check the paths in the CSV")
    return np.stack(features), kept, failed
