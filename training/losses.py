"""Losses more than one recipe uses.

* :func:`info_nce`: InfoNCE of anchors against candidate rows, the anchor's own row left
  out of the denominator: SimCLR's NT-Xent (ParamCrop Eqs. 1-2,
  :func:`.paramcrop.losses.nt_xent`) and CORP_f's Eq. 5
  (:func:`.corp.losses.info_nce_terms`). The candidates are usually every process's
  embeddings, gathered with gradients (:func:`.distributed.gather_with_grad`), so that the
  negatives are the global batch's; each recipe's wrapper says which row is an anchor's
  positive.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchors: torch.Tensor, candidates: torch.Tensor, positive: torch.Tensor,
             own: torch.Tensor, temperature: float, reduction: str = "mean"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """``ℓ(a) = -log exp(s(a, c_p)/τ) / Σ_{k ≠ own(a)} exp(s(a, c_k)/τ)`` for every anchor,
    ``s`` the dot product (the cosine similarity when the rows are L2-normalised, which
    the caller does).

    Args:
        anchors: ``(n, D)``.
        candidates: ``(M, D)``: positives and negatives; each anchor's own row among them.
        positive: ``(n,)`` long: the column of each anchor's positive in ``candidates``.
        own: ``(n,)`` long: the column of each anchor itself (``1[k ≠ i]`` of SimCLR's
            Eq. 1).
        temperature: τ > 0.
        reduction: ``F.cross_entropy``'s: ``"mean"`` over the anchors, or ``"none"``.

    Returns:
        The loss (a scalar, or ``(n,)`` with ``reduction="none"``) and the logits
        ``(n, M)`` (``-inf`` in each anchor's own column).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    logits = anchors @ candidates.T / temperature
    rows = torch.arange(anchors.shape[0], device=anchors.device)
    logits[rows, own] = float("-inf")
    return F.cross_entropy(logits, positive, reduction=reduction), logits
