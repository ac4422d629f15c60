"""Optimisers and learning-rate schedules shared by the recipes.

* ``build_optimizer``: SGD (momentum, Nesterov off), Adam, or LARS.
* LARS (You et al. 2017, as SimCLR/CORP use it): SGD with momentum whose update of each
  weight tensor is scaled by ``trust * ||w|| / ||g + wd w||``; biases and BatchNorm
  parameters (1-D) are neither adapted nor decayed.
* ``lr_schedule``: a per-iteration array, precomputed: linear warm-up, then cosine to 0
  or steps (x0.1 at each milestone). Cosine may restart (``restarts``: SGDR, Loshchilov &
  Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017, Eq. 5): each
  cycle warms up again and decays to 0 over its own length, so the steps before the first
  restart are exactly those of a run that ends there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling on top of SGD with momentum."""

    def __init__(self, params: Iterable, lr: float, momentum: float = 0.9,
                 weight_decay: float = 0.0, trust_coefficient: float = 0.001,
                 eps: float = 1e-8) -> None:
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        defaults = dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                        trust_coefficient=trust_coefficient, eps=eps)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad
                if param.ndim > 1:  # weights: decay and adapt; biases / norms: plain SGD
                    grad = grad.add(param, alpha=group["weight_decay"])
                    weight_norm = torch.linalg.vector_norm(param)
                    grad_norm = torch.linalg.vector_norm(grad)
                    trust = torch.where(
                        (weight_norm > 0) & (grad_norm > 0),
                        group["trust_coefficient"] * weight_norm / (grad_norm + group["eps"]),
                        torch.ones_like(weight_norm))
                    grad = grad.mul(trust)
                state = self.state[param]
                buffer = state.get("momentum_buffer")
                if buffer is None:
                    buffer = state["momentum_buffer"] = grad.clone()
                else:
                    buffer.mul_(group["momentum"]).add_(grad)
                param.add_(buffer, alpha=-group["lr"])
        return loss


def build_optimizer(name: str, params: Iterable, *, lr: float, momentum: float = 0.9,
                    weight_decay: float = 0.0) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "lars":
        return LARS(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"optimizer must be sgd, adam or lars, got {name!r}")


def lr_schedule(base_lr: float, total_steps: int, *, warmup_steps: int = 0,
                kind: str = "cosine", milestones: Sequence[int] = (),
                gamma: float = 0.1, restarts: Sequence[int] = ()) -> np.ndarray:
    """Learning rate of every iteration ``0 .. total_steps - 1``.

    ``restarts`` (cosine only): steps where a new cycle begins (warm-up, then cosine to 0
    at the next restart or at ``total_steps``); restarts at or past ``total_steps`` are
    ignored.
    """
    if total_steps < 1:
        raise ValueError("total_steps must be >= 1")
    restarts = sorted(int(r) for r in restarts)
    if restarts and kind != "cosine":
        raise ValueError(f"restarts need the cosine schedule, not {kind!r}")
    if any(r <= 0 for r in restarts) or len(set(restarts)) != len(restarts):
        raise ValueError(f"restarts must be distinct positive steps, got {restarts}")
    restarts = [r for r in restarts if r < total_steps]
    if restarts:
        bounds = [0, *restarts, total_steps]
        return np.concatenate([
            lr_schedule(base_lr, end - start, warmup_steps=min(warmup_steps, end - start - 1))
            for start, end in zip(bounds[:-1], bounds[1:])])
    steps = np.arange(total_steps, dtype=np.float64)
    if kind == "cosine":
        span = max(total_steps - warmup_steps, 1)
        progress = np.clip((steps - warmup_steps) / span, 0, 1)
        lrs = base_lr * 0.5 * (1 + np.cos(math.pi * progress))
    elif kind == "step":
        lrs = base_lr * gamma ** np.searchsorted(np.asarray(sorted(milestones)), steps,
                                                 side="right")
    elif kind == "constant":
        lrs = np.full(total_steps, base_lr)
    else:
        raise ValueError(f"schedule must be cosine, step or constant, got {kind!r}")
    if warmup_steps > 0:
        ramp = (steps[:warmup_steps] + 1) / warmup_steps
        lrs[:warmup_steps] = base_lr * ramp
    return lrs
