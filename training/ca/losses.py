"""The losses of Controllable Augmentations: region contrast (§3.1, Eqs. 3-4) and the
Donsker-Varadhan mutual-information bound (Eqs. 5-7). The gradient reversal of §3.2 is
:func:`vsslzoo.training.layers.reverse_gradient`; cross-process gathers come from
:mod:`vsslzoo.training.distributed`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


# -- Eqs. 3-4 ----------------------------------------------------------------------------
def region_contrast_loss(clip_cells: torch.Tensor, global_cells: torch.Tensor,
                         targets: torch.Tensor, temperature: float,
                         negatives: str = "cells", offset: int = 0,
                         num_videos: int | None = None) -> torch.Tensor:
    """Soft-target InfoNCE over the global grid plus negatives from other videos.

    L_rc(k, i) = - sum_j S_k(i, j) log p_k^{ij}                                (Eq. 3)
    p_k^{ij} = sim(q, k_j) / (sum_j' sim(q, k_j') + sum_n sim(q, n)),
    sim(a, b) = exp(cos(a, b) / temperature)                                   (Eq. 4)

    Args:
        clip_cells: (B, K, N_c, D) local clip cell features f(v_k)[i] (queries).
        global_cells: (B_all, N_v, D) global cell features f'(v)[j] of *all* videos whose
            features are available (this process's videos are rows
            ``offset .. offset + B``); the other rows supply the negatives n.
        targets: (B, K, N_c, N_v) S_k from :func:`~.correspondence.correspondence`.
        temperature: tau.
        negatives: ``"cells"``: every global cell of every other video is a negative;
            ``"pooled"``: one negative per other video, its mean-pooled global feature;
            ``"none"``: no negatives from other videos (the denominator is the video's
            own N_v cells only).
        offset: index of this process's first video in ``global_cells``.

    Returns:
        The mean of L_rc over videos, clips and clip cells (a scalar).
    """
    if negatives not in ("cells", "pooled", "none"):
        raise ValueError(f"negatives must be 'cells', 'pooled' or 'none', got {negatives!r}")
    batch, clips, cells, _ = clip_cells.shape
    n_all, n_v, _ = global_cells.shape
    q = F.normalize(clip_cells.float(), dim=-1)
    k = F.normalize(global_cells.float(), dim=-1)
    own_index = torch.arange(batch, device=q.device) + offset
    own = k[own_index]  # (B, N_v, D)
    own_logits = torch.einsum("bkid,bjd->bkij", q, own) / temperature
    if negatives == "none" or n_all == 1:
        log_norm = torch.logsumexp(own_logits, dim=-1, keepdim=True)
    else:
        others = torch.ones(batch, n_all, dtype=torch.bool, device=q.device)
        others[torch.arange(batch, device=q.device), own_index] = False
        if negatives == "cells":
            neg = torch.einsum("bkid,njd->bkinj", q, k) / temperature
            neg = neg.masked_fill(~others[:, None, None, :, None], float("-inf"))
            neg = neg.flatten(3)
        else:
            pooled = F.normalize(global_cells.float().mean(dim=1), dim=-1)  # (B_all, D)
            neg = torch.einsum("bkid,nd->bkin", q, pooled) / temperature
            neg = neg.masked_fill(~others[:, None, None, :], float("-inf"))
        log_norm = torch.logsumexp(torch.cat((own_logits, neg), dim=-1), dim=-1,
                                   keepdim=True)
    log_p = own_logits - log_norm
    return -(targets.float() * log_p).sum(dim=-1).mean()


# -- Eqs. 5-7 ----------------------------------------------------------------------------
def donsker_varadhan(joint_scores: torch.Tensor, marginal_scores: torch.Tensor
                     ) -> torch.Tensor:
    """I(X; Y) >= E_{P_XY}[G] - log E_{P_X (x) P_Y}[exp G]   (Eq. 5, MINE's bound).

    ``joint_scores``: G on pairs drawn from the joint; ``marginal_scores``: on pairs drawn
    from the product of marginals (any shapes; all elements are samples)."""
    marginal = marginal_scores.float().flatten()
    log_mean_exp = torch.logsumexp(marginal, dim=0) - math.log(marginal.numel())
    return joint_scores.float().mean() - log_mean_exp

