"""Contrastive objectives ParamCrop is built on (§3.1): SimCLR's NT-Xent (Eqs. 1-2) and
MoCo's InfoNCE against a queue of momentum-encoder keys.

Under ``torchrun`` the negatives come from every process: SimCLR gathers the embeddings
with :func:`vsslzoo.training.distributed.gather_with_grad` (gradients flow back to
their owners) and scores them with :func:`vsslzoo.training.losses.info_nce` (shared with
CORP_f's Eq. 5); MoCo enqueues the keys of all processes so every rank keeps the same
queue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..distributed import gather_with_grad
from ..losses import info_nce


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eqs. 1-2: ``L = 1/2N Σ_k [ℓ(2k-1, 2k) + ℓ(2k, 2k-1)]`` with
    ``ℓ(i, j) = -log exp(c_ij/τ) / Σ_{k≠i} exp(c_ik/τ)``, ``c`` the cosine similarity.

    ``z1``, ``z2``: ``(n, D)`` embeddings of the two views of this process's clips; the
    2N views of the denominator are those of all processes. Returns the mean over this
    process's 2n anchors (DDP's gradient averaging then gives the global mean)."""
    local = F.normalize(torch.cat((z1, z2)).float(), dim=1)  # (2n, D): views 1 then 2
    n = z1.shape[0]
    first, offset = gather_with_grad(F.normalize(z1.float(), dim=1))
    second, _ = gather_with_grad(F.normalize(z2.float(), dim=1))
    total = first.shape[0]
    candidates = torch.cat((first, second))  # (2N, D)
    rows = torch.arange(n, device=local.device)
    own = torch.cat((offset + rows, total + offset + rows))  # the anchor's own column
    positive = torch.cat((total + offset + rows, offset + rows))
    return info_nce(local, candidates, positive, own, temperature)[0]


def moco_infonce(query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """MoCo (He et al. 2020, Eq. 1): ``-log exp(q·k+/τ) / (exp(q·k+/τ) + Σ_queue
    exp(q·k-/τ))`` averaged over the queries. ``query``, ``key`` ``(n, D)`` (the key
    carries no gradient), ``queue`` ``(K, D)``; all are L2-normalised here."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    query = F.normalize(query.float(), dim=1)
    key = F.normalize(key.float(), dim=1).detach()
    positive = (query * key).sum(dim=1, keepdim=True)
    negative = query @ F.normalize(queue.float(), dim=1).T
    logits = torch.cat((positive, negative), dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long,
                                               device=query.device))


class KeyQueue(nn.Module):
    """MoCo's dictionary: a FIFO of the ``size`` most recent keys ``(size, dim)``; the
    oldest are overwritten first (wrapping around). A buffer, so it is checkpointed."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"queue_size must be >= 1, got {size}")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("pointer", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write ``keys`` ``(n, dim)`` over the oldest entries (dequeue + enqueue)."""
        size = self.keys.shape[0]
        keys = keys.detach().to(self.keys.dtype)[-size:]
        index = (self.pointer + torch.arange(len(keys), device=self.keys.device)) % size
        self.keys[index] = keys
        self.pointer.copy_((self.pointer + len(keys)) % size)
