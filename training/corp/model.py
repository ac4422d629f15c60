"""The CORP network: backbone, projection head, relation head, and the loss (paper §3).

``forward(batch)`` takes the batch of :mod:`.data` (``clips`` (B, K, 3, T, H, W) uint8
and the augmentation parameters), applies the augmentations on the device, embeds all
B*K clips with the backbone (R3D-50, 2048-d, §3.1), projects them (3 hidden layers of
2048, §3.1) and returns the CORP_f or CORP_m loss with its accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vsslzoo.config import PreprocessConfig
from vsslzoo.models import build

from ..distributed import gather_with_grad
from ..layers import ProjectionHead
from .data import apply_augmentations
from .losses import REDUCTIONS, TASKS, corp_f_loss, corp_m_loss
from .relation import ATTENTIONS, RelationHead

VARIANTS = ("f", "m")


@dataclass(frozen=True)
class CorpConfig:
    """The method's settings (paper values by default).

    Attributes:
        variant: "f" (B videos x 2 clips, (4B-2)-way, §3.3) or "m" (K clips, 3-way, §3.2).
        num_clips: K clips per video (2 for "f"; the paper's 2..4 for "m", default 4).
        attention: "decoupled" (Eq. 8, the paper's) or "mixed" (Eq. 1).
        task: "contrast+order" (CORP) or an ablation of Table 6a.
        heads: h = 128 (Eq. 1); decoupling uses h/2 symmetric + h/2 antisymmetric dims.
        mlp_layers: perceptron depth after the attention (2, Table 6d).
        proj_hidden, proj_layers, proj_dim: projection head (2048 x 3 hidden, §3.1; the
            output d = 128 is CVRL/SimCLR's, the paper does not give it).
        temperature: tau of Eq. 5 (0.1).
        pair_reduction: CORP_m: "sum" over a video pair's clip pairs (the paper) or "mean".
    """

    variant: str = "f"
    num_clips: int = 2
    attention: str = "decoupled"
    task: str = "contrast+order"
    heads: int = 128
    mlp_layers: int = 2
    proj_hidden: int = 2048
    proj_layers: int = 3
    proj_dim: int = 128
    temperature: float = 0.1
    pair_reduction: str = "sum"

    def __post_init__(self) -> None:
        def check(name: str, ok: bool, valid: str) -> None:
            if not ok:
                raise ValueError(f"{name} must be {valid}, got {getattr(self, name)!r}")

        check("variant", self.variant in VARIANTS, f"one of {VARIANTS}")
        check("num_clips", self.num_clips == 2 if self.variant == "f" else self.num_clips >= 2,
              "2 for CORP_f" if self.variant == "f" else ">= 2")
        check("attention", self.attention in ATTENTIONS, f"one of {ATTENTIONS}")
        check("task", self.task in TASKS, f"one of {TASKS}")
        check("heads", self.heads >= 2, ">= 2")
        check("mlp_layers", self.mlp_layers in (1, 2), "1 or 2")
        check("proj_hidden", self.proj_hidden >= 1, ">= 1")
        check("proj_layers", self.proj_layers >= 0, ">= 0")
        check("proj_dim", self.proj_dim >= 1, ">= 1")
        check("temperature", self.temperature > 0, "> 0")
        check("pair_reduction", self.pair_reduction in REDUCTIONS, f"one of {REDUCTIONS}")

    @property
    def relation_classes(self) -> int:
        """3 for CORP_m's full task (Eq. 2), else 2 (Eq. 4 and the ablations)."""
        return 3 if self.variant == "m" and self.task == "contrast+order" else 2


class CorpModel(nn.Module):
    """``forward(batch)`` -> dict with ``loss`` and accuracies (``order_acc``,
    ``contrast_acc``, CORP_m ``pair_acc``, CORP_f ``loss_nce`` / ``loss_order``)."""

    def __init__(self, architecture: str, model_args: dict[str, Any],
                 preprocess: PreprocessConfig, config: CorpConfig, blur_kernel: int) -> None:
        super().__init__()
        self.config = config
        self.blur_kernel = blur_kernel
        self.backbone = build(architecture, preprocess=preprocess, **model_args)
        self.projection = ProjectionHead(self.backbone.embed_dim, config.proj_hidden,
                                         config.proj_dim, layers=config.proj_layers)
        needs_relation = not (config.variant == "f" and config.task == "contrast")
        self.relation = RelationHead(config.proj_dim, config.relation_classes,
                                     config.attention, config.heads,
                                     mlp_layers=config.mlp_layers) if needs_relation else None

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment and embed every clip: (B*K, proj_dim) L2-normalised float32."""
        clips = batch["clips"]
        flat = clips.reshape(-1, *clips.shape[2:])
        with torch.no_grad(), torch.autocast(flat.device.type, enabled=False):
            pixels = apply_augmentations(flat, batch, self.blur_kernel)
        z = self.projection(self.backbone(pixels))
        return F.normalize(z.float(), dim=1)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        clips = batch["clips"]
        videos, num_clips = clips.shape[:2]
        if num_clips != self.config.num_clips:
            raise ValueError(f"batch has {num_clips} clips per video, the model expects "
                             f"{self.config.num_clips}")
        z = self.embed(batch)
        starts = batch["starts"].reshape(-1).float()
        # the heads and losses are tiny: float32 (logits / 0.1 in bf16 lose ~2 digits)
        with torch.autocast(z.device.type, enabled=False):
            if self.config.variant == "f":
                candidates, offset = gather_with_grad(z)
                return corp_f_loss(z, starts, self.relation, candidates, offset,
                                   self.config.temperature, self.config.task)
            video_ids = torch.arange(videos, device=z.device).repeat_interleave(num_clips)
            logits = self.relation(z[:, None], z[None, :])  # (N, N, C), all ordered pairs
            return corp_m_loss(logits, video_ids, starts, self.config.task,
                               self.config.pair_reduction)
