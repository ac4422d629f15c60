"""Heads of Controllable Augmentations: the projection of region features, the MINE
statistics network G_theta (§3.2, Eqs. 5-6) and the temporal-dependency heads G_psi
(§3.3, Eq. 7; the variants of Table 6).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

TD_HEADS = ("gru", "mlp", "gru+mlp", "none")


class CellProjection(nn.Module):
    """Per-cell two-layer MLP (a 1x1x1 conv MLP) before the cosine similarity of Eq. 4.

    The paper does not mention a projection for region contrast; this follows the
    SimCLR baseline it compares against and dense contrastive learning (DenseCL). With
    ``out_dim=0`` the head is the identity (region contrast on backbone features)."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__()
        self.net = (nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, out_dim)) if out_dim > 0 else nn.Identity())

    def forward(self, cells: torch.Tensor) -> torch.Tensor:
        """(..., in_dim) -> (..., out_dim)."""
        return self.net(cells)


class MINE(nn.Module):
    """G_theta(x, y): a two-layer MLP on the concatenated pair (§3.2, "we instantiate
    G_theta as a two-layer MLP"), ``[x; y] -> hidden -> ReLU -> 1``."""

    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y (N, dim) -> (N,) scores."""
        return self.net(torch.cat((x, y), dim=-1)).squeeze(-1)


def sample_level_pairs(levels: torch.Tensor, videos: torch.Tensor,
                       generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pairs of views for Eq. 6.

    Joint (P_XY): for every view that has one, a random partner from *another video*
    with the *same* low-level intensity level (semantically different, low-level alike).
    Marginal (P_X (x) P_Y): for every view, a random other view (arbitrary pairs).

    Args:
        levels: (N,) level id of each view; videos: (N,) video id of each view.

    Returns:
        ``joint_a, joint_b, marginal_a, marginal_b``: index tensors into the N views.
    """
    n = levels.numel()
    device = levels.device
    eligible = (levels[:, None] == levels[None, :]) & (videos[:, None] != videos[None, :])
    noise = torch.rand(n, n, generator=generator, device=device)
    joint_b = torch.where(eligible, noise, torch.full_like(noise, -1.0)).argmax(dim=1)
    anchors = eligible.any(dim=1).nonzero().squeeze(1)
    # a random other view: shift by 1..n-1 places
    shift = torch.randint(1, max(n, 2), (n,), generator=generator, device=device)
    marginal_b = (torch.arange(n, device=device) + shift) % n
    return anchors, joint_b[anchors], torch.arange(n, device=device), marginal_b


class TemporalDependencyHead(nn.Module):
    """G_psi(clip features in some order, global feature) -> score (§3.3, Table 6).

    * ``gru``: a GRU reads the K clip features; the score is the cosine similarity of
      its last hidden state with f'(v), divided by ``temperature`` (a choice: the paper
      says "cosine similarity"; unscaled cosines in [-1, 1] give Eq. 7's
      log-mean-exp almost no range).
    * ``mlp``: ``[f(v_1); ...; f(v_K); f'(v)]`` through a two-layer MLP to a scalar.
    * ``gru+mlp``: ``[GRU output; f'(v)]`` through a two-layer MLP to a scalar.
    """

    def __init__(self, kind: str, dim: int, clips: int, hidden: int = 512,
                 temperature: float = 0.1) -> None:
        super().__init__()
        if kind not in TD_HEADS or kind == "none":
            raise ValueError(f"td_head must be one of {TD_HEADS[:-1]} here, got {kind!r}")
        if temperature <= 0:
            raise ValueError(f"td_temperature must be > 0, got {temperature}")
        self.kind = kind
        self.temperature = temperature
        self.gru = nn.GRU(dim, dim, batch_first=True) if "gru" in kind else None
        mlp_in = {"mlp": (clips + 1) * dim, "gru+mlp": 2 * dim}.get(kind)
        self.mlp = (nn.Sequential(nn.Linear(mlp_in, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, 1)) if mlp_in else None)

    def forward(self, clip_features: torch.Tensor, global_features: torch.Tensor
                ) -> torch.Tensor:
        """clip_features (B, K, D) in the order to score, global_features (B, D) -> (B,)."""
        if self.gru is not None:
            _, hidden = self.gru(clip_features.float())
            summary = hidden[-1]
            if self.mlp is None:
                return F.cosine_similarity(summary, global_features.float(), dim=-1) \
                    / self.temperature
            return self.mlp(torch.cat((summary, global_features.float()), -1)).squeeze(-1)
        flat = torch.cat((clip_features.flatten(1), global_features), dim=-1).float()
        return self.mlp(flat).squeeze(-1)


def shuffled_orders(batch: int, clips: int, shuffles: int,
                    generator: torch.Generator | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """(batch, shuffles, clips) random permutations of ``range(clips)``, none the
    identity (the "arbitrarily ordered" f~(v) of Eq. 7 must differ from the true order)."""
    if clips < 2:
        raise ValueError("temporal dependency needs at least 2 clips")
    orders = torch.rand(batch, shuffles, clips, generator=generator, device=device).argsort(-1)
    identity = torch.arange(clips, device=device)
    is_identity = (orders == identity).all(-1, keepdim=True)
    return torch.where(is_identity, identity.roll(1).expand_as(orders), orders)
