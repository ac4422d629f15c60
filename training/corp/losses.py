"""CORP's objectives (paper §3.2 and §3.3).

**CORP_m** (§3.2). A process holds B videos with K clips each; every unordered pair of
videos ``{x_i, x_j}, i < j`` (formed within the process, "for communication efficiency")
gives 2K clips and ``4K^2 - 2K`` ordered clip pairs, each classified 3-way:

* P1 (class 0): the clips come from different videos;
* P2 (class 1): same video, the first clip of the pair precedes the second;
* P3 (class 2): same video, the second precedes the first.

The loss of a video pair is the *sum* of the cross-entropies of its clip pairs. A clip
pair of two different videos belongs to exactly one video pair; a pair of clips of the
same video belongs to the ``B - 1`` video pairs containing that video, so the sum over
all video pairs equals one pass over all ``BK x BK`` ordered clip pairs with weights 1
and ``B - 1`` (:func:`corp_m_loss` does that; the test checks it against the loop over
video pairs). Choices: the video-pair losses are *averaged* over the ``B(B-1)/2`` pairs
(``reduction="sum"``, the paper's per-video-pair sum; ``"mean"`` also divides by the clip
pairs per video pair); with fewer than two videos in a process there is no video pair and
the loss is 0 (times the logits, so that DDP still sees every parameter used).

Ablation tasks (Table 6a): ``contrast`` is 2-way same/different video over all pairs,
``order`` 2-way over the same-video pairs only.

**CORP_f** (§3.3). B videos x 2 clips, ``z_{2i-1}`` before ``z_{2i}``; the (4B-2)-way
classification of each clip (which of the other 2B-1 clips is its partner, and is the
partner earlier or later) factorises (Eq. 6) as

    L_i = -log Prob_{2i-1,2i}(P2) - log Prob_{2i,2i-1}(P3)
        = L_NCE (Eq. 5, tau = 0.1, both directions) + L_2-way order (Eq. 4),
    L_total = 1/B sum_i L_i.

Choices: ``z`` is L2-normalised before Eq. 5 (cosine similarity, as CVRL/SimCLR whose tau
the paper takes) and before the relation head; the 2B-1 candidates of Eq. 5 are all clips
of all processes (gathered with gradients, as CVRL), the order term uses the local pairs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import info_nce

TASKS = ("contrast+order", "contrast", "order")
REDUCTIONS = ("sum", "mean")


# ---------------------------------------------------------------------------- CORP_m
def corp_m_labels(video_ids: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
    """(N,) video ids and (N,) clip starts -> (N, N) 3-way labels of every ordered clip
    pair (i, j): 0 = P1 different videos, 1 = P2 i before j, 2 = P3 j before i; -1 on the
    diagonal."""
    same = video_ids[:, None] == video_ids[None, :]
    earlier = starts[:, None] < starts[None, :]
    labels = torch.where(same, torch.where(earlier, 1, 2), 0)
    return labels.fill_diagonal_(-1)


def task_targets(labels3: torch.Tensor, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    """3-way labels -> (targets, considered) for ``task``; targets are -1 where a pair is
    not considered (the diagonal; different-video pairs for ``order``)."""
    valid = labels3 >= 0
    if task == "contrast+order":
        return labels3, valid
    if task == "contrast":
        return torch.where(valid, (labels3 > 0).long(), -1), valid
    if task == "order":
        considered = labels3 > 0
        return torch.where(considered, labels3 - 1, -1), considered
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def corp_m_loss(logits: torch.Tensor, video_ids: torch.Tensor, starts: torch.Tensor,
                task: str = "contrast+order", reduction: str = "sum"
                ) -> dict[str, torch.Tensor]:
    """CORP_m loss and accuracies from ``logits`` (N, N, C) of every ordered clip pair
    (C = 3 for ``contrast+order``, 2 otherwise), ``video_ids`` (N,) and ``starts`` (N,)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    labels3 = corp_m_labels(video_ids, starts)
    targets, considered = task_targets(labels3, task)
    num_videos = int(torch.unique(video_ids).numel())
    same = labels3 > 0
    weights = torch.where(same, float(num_videos - 1), 1.0) * considered
    logits = logits.float()
    if num_videos < 2:
        loss = logits.sum() * 0.0
    else:
        ce = F.cross_entropy(logits[considered], targets[considered], reduction="none")
        total = (ce * weights[considered]).sum()
        video_pairs = num_videos * (num_videos - 1) / 2
        loss = total / (video_pairs if reduction == "sum" else weights.sum())
    with torch.no_grad():
        predicted = logits.argmax(-1)
        correct = (predicted == targets).float()
        out = {"loss": loss,
               "pair_acc": (correct * weights).sum() / weights.sum().clamp_min(1e-9)}
        if task == "contrast+order":
            order_pred = logits[..., 1:].argmax(-1) + 1
            out["order_acc"] = (order_pred == labels3)[same].float().mean()
            out["contrast_acc"] = ((predicted > 0) == same)[labels3 >= 0].float().mean()
        elif task == "order":
            out["order_acc"] = correct[considered].mean()
        else:
            out["contrast_acc"] = correct[considered].mean()
    return out


# ---------------------------------------------------------------------------- CORP_f
def info_nce_terms(z: torch.Tensor, candidates: torch.Tensor, offset: int,
                   temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5 for every local clip: ``-log Prob_{a, partner(a)}(not P1)`` (2b,) and the
    logits (2b, M). ``z`` (2b, d) holds clips ``2i, 2i+1`` of video ``i``; ``candidates``
    (M, d) all clips (this process's at rows ``offset ..``). The same InfoNCE as SimCLR's
    NT-Xent: :func:`vsslzoo.training.losses.info_nce`."""
    rows = torch.arange(z.shape[0], device=z.device)
    return info_nce(z, candidates, offset + (rows ^ 1), offset + rows, temperature,
                    reduction="none")


def corp_f_loss(z: torch.Tensor, starts: torch.Tensor, relation, candidates: torch.Tensor,
                offset: int, temperature: float = 0.1, task: str = "contrast+order"
                ) -> dict[str, torch.Tensor]:
    """Eq. 6: ``1/B sum_i L_i`` over the local videos.

    Args:
        z: (2b, d) L2-normalised projections, clips ``2i, 2i+1`` from video ``i``.
        starts: (2b,) clip starts (frames) giving the true order of each pair.
        relation: ``phi(x, y) -> (..., 2)`` logits of (P2 | not P1), (P3 | not P1) (Eq. 4);
            unused (may be None) for ``task="contrast"``.
        candidates, offset: :func:`vsslzoo.training.distributed.gather_with_grad` of ``z``.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    videos = z.shape[0] // 2
    partner = torch.arange(z.shape[0], device=z.device) ^ 1
    out: dict[str, torch.Tensor] = {}
    loss = z.new_zeros(())
    if task != "order":
        nce, logits = info_nce_terms(z, candidates, offset, temperature)
        loss = loss + nce.sum()
        out["loss_nce"] = nce.sum() / videos
        with torch.no_grad():
            out["contrast_acc"] = (logits.argmax(1) == offset + partner).float().mean()
    if task != "contrast":
        order_logits = relation(z, z[partner]).float()
        order_targets = (starts > starts[partner]).long()  # 0: a first (P2), 1: partner first
        order = F.cross_entropy(order_logits, order_targets, reduction="none")
        loss = loss + order.sum()
        out["loss_order"] = order.sum() / videos
        with torch.no_grad():
            out["order_acc"] = (order_logits.argmax(1) == order_targets).float().mean()
    return {"loss": loss / videos, **out}
