"""The Controllable Augmentations network: shared encoder f / f', region contrast,
low-level shortcut elimination, temporal dependency, and the total loss.

Encoders (§3.1, §4.2): f (local clips) and f' (global video) are *one* backbone; f'
only sets the temporal stride of some stages to 1 so that its feature map has
``T_v > T_c`` time steps (R3D-18 at 16 x 112^2: clips 2 x 7 x 7, global 8 x 7 x 7, both
average-pooled to the paper's 4 x 4 spatial grid, by area over equal, disjoint parts of
the map so that each pooled cell covers what Eq. 1's targets say it covers:
:func:`~.correspondence.pool_to_cells`). Which stages lose their stride is a
choice (``unstride="late"``: the last stages, cheaper than the first).

Total loss (the paper gives no weights; all 1 by default)::

    L = w_rc  L_rc                                      (Eqs. 3-4; L_nce with --no-rc)
      + w_mi (- I_theta(levels, reversed grad)          (Eq. 6, theta maximises)
              + I_theta-frozen(f(v_k), f'(v)))          (§3.2, encoder minimises)
      - w_td  I_psi(ordered clips; global)              (Eq. 7, f and psi maximise)

The mutual-information terms act on globally average-pooled backbone features (the
paper: "feature representations extracted by encoder f"), the region contrast on
projected cells (:class:`~.heads.CellProjection`).
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from vsslzoo.config import PreprocessConfig
from vsslzoo.models import build

from ..distributed import gather_no_grad, gather_with_grad, world
from ..layers import reverse_gradient
from .correspondence import correspondence, pool_to_cells
from .heads import (
    MINE,
    TD_HEADS,
    CellProjection,
    TemporalDependencyHead,
    sample_level_pairs,
    shuffled_orders,
)
from .losses import donsker_varadhan, region_contrast_loss
from .lowlevel import LowLevelConfig, apply_low_level, level_parameters, sample_levels

_STAGES = ("layer2", "layer3", "layer4")


@dataclass(frozen=True)
class CAModelConfig:
    num_frames: int = 16
    crop: int = 112
    clips: int = 4  # K
    global_temporal_res: int | None = 8  # T_v; None: 4 x T_c (the paper's 8 vs 2)
    unstride: str = "late"  # which stages of f' lose their temporal stride: late / early
    grid: int | None = 4  # spatial grid of the region features; None: the backbone's
    contrast: str = "region"  # region (L_rc) or instance (L_nce, the --no-rc ablation)
    negatives: str = "cells"  # cells / pooled / none (see losses.region_contrast_loss)
    gather_negatives: bool = True  # negatives from every process under DDP
    temperature: float = 0.1
    proj_dim: int = 128  # 0: no projection head
    proj_hidden: int = 512
    rc_weight: float = 1.0
    mi: bool = True
    mi_weight: float = 1.0
    mi_local_global: bool = True  # apply the frozen estimator to local-global pairs
    mine_hidden: int = 512
    td_head: str = "gru"
    td_weight: float = 1.0
    td_shuffles: int = 4  # shuffled orders per video (the marginal of Eq. 7)
    td_temperature: float = 0.1
    low_level: LowLevelConfig = field(default_factory=LowLevelConfig)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.clips < 1:
            raise ValueError(f"clips must be >= 1, got {self.clips}")
        if self.unstride not in ("late", "early"):
            raise ValueError(f"unstride must be 'late' or 'early', got {self.unstride!r}")
        if self.contrast not in ("region", "instance"):
            raise ValueError(f"contrast must be 'region' or 'instance', got {self.contrast!r}")
        if self.negatives not in ("cells", "pooled", "none"):
            raise ValueError(f"negatives must be cells, pooled or none, got {self.negatives!r}")
        if self.td_head not in TD_HEADS:
            raise ValueError(f"td_head must be one of {', '.join(TD_HEADS)}, got "
                             f"{self.td_head!r}")
        if self.td_head != "none" and self.clips < 2:
            raise ValueError("td_head needs clips >= 2 (an order of one clip is no order); "
                             "use --td-head none")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.td_shuffles < 1:
            raise ValueError(f"td_shuffles must be >= 1, got {self.td_shuffles}")
        if self.grid is not None and self.grid < 1:
            raise ValueError(f"grid must be >= 1 or None, got {self.grid}")


@contextlib.contextmanager
def temporal_stride_one(backbone: nn.Module, stages: tuple[str, ...]):
    """Within the block, the first block of each named stage has temporal stride 1 (its
    strided convolutions and its downsample keep their spatial stride): f' of §3.1,
    the same weights as f."""
    changed = []
    for stage in stages:
        for module in getattr(backbone, stage)[0].modules():
            if isinstance(module, nn.Conv3d) and module.stride[0] == 2:
                changed.append((module, module.stride))
                module.stride = (1, *module.stride[1:])
    try:
        yield
    finally:
        for module, stride in changed:
            module.stride = stride


class CAModel(nn.Module):
    """``forward(batch)`` with the sample dict of :mod:`.data` (batched) -> dict of
    ``loss`` and its terms."""

    def __init__(self, architecture: str, model_args: dict[str, Any],
                 preprocess: PreprocessConfig, config: CAModelConfig) -> None:
        super().__init__()
        if architecture not in ("r3d_18", "r2plus1d_18"):
            raise ValueError(f"architecture must be r3d_18 or r2plus1d_18 (temporal strides "
                             f"in layer2-4), got {architecture!r}")
        self.config = config
        self.backbone = build(architecture, preprocess=preprocess, **model_args)
        dim = self.backbone.embed_dim
        probe_input = torch.zeros(1, 3, config.num_frames, config.crop, config.crop)
        was_training = self.backbone.training
        self.backbone.eval()
        with torch.no_grad():
            clip_map = self.backbone.forward_features(probe_input)
            t_c = clip_map.shape[2]
            t_v = config.global_temporal_res or 4 * t_c
            ratio = t_v / t_c
            unstride = round(math.log2(ratio)) if ratio >= 1 else -1
            if unstride < 0 or 2 ** unstride != ratio or unstride > len(_STAGES):
                raise ValueError(
                    f"global_temporal_res must be T_c times 1, 2, 4 or 8 (T_c = {t_c} at "
                    f"{config.num_frames} frames), got {t_v}")
            order = _STAGES[::-1] if config.unstride == "late" else _STAGES
            self.global_stages = tuple(order[:unstride])
            with temporal_stride_one(self.backbone, self.global_stages):
                global_map = self.backbone.forward_features(probe_input)
        self.backbone.train(was_training)
        if config.grid is not None and config.grid > clip_map.shape[-1]:
            raise ValueError(f"grid {config.grid} is finer than the feature map "
                             f"({clip_map.shape[-1]} cells at crop {config.crop})")
        side = config.grid or clip_map.shape[-1]
        self.clip_grid = (t_c, side, side)
        self.global_grid = (global_map.shape[2], side, side)
        self.projection = CellProjection(dim, config.proj_hidden, config.proj_dim)
        self.mine = MINE(dim, config.mine_hidden) if config.mi else None
        self.td_head = (TemporalDependencyHead(config.td_head, dim, config.clips,
                                               temperature=config.td_temperature)
                        if config.td_head != "none" else None)
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    # -- pieces --------------------------------------------------------------------------
    def encode(self, clips: torch.Tensor, global_view: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """f(clips) (N, C, T_c, G, G) and f'(global) (B, C, T_v, G, G), pooled to the grid."""
        clip_map = self.backbone.forward_features(clips)
        with temporal_stride_one(self.backbone, self.global_stages):
            global_map = self.backbone.forward_features(global_view)
        return (pool_to_cells(clip_map, self.clip_grid),
                pool_to_cells(global_map, self.global_grid))

    def _generators(self, device: torch.device) -> tuple[torch.Generator, torch.Generator]:
        """(shared by all processes, this process's) generators for this iteration."""
        rank, _ = world()
        step = int(self.iteration)
        shared = torch.Generator().manual_seed(
            (self.config.seed * 1_000_003 + step) % 2**63)
        local = torch.Generator(device=device).manual_seed(
            ((self.config.seed * 1_000_003 + step) * 4099 + rank + 1) % 2**63)
        return shared, local

    # -- forward -------------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        cfg = self.config
        global_view = batch["global"].float()
        clips = batch["clips"].float()
        batch_size, k = clips.shape[:2]
        if k != cfg.clips:
            raise ValueError(f"batch has {k} clips per video, the model expects {cfg.clips}")
        device = clips.device
        shared, local = self._generators(device)
        if self.training:
            self.iteration += 1

        # tau_l with intensity levels (§3.2): global views first, then the clips; in
        # float32 even under bf16 autocast (0..255 pixels, blur as a convolution)
        views = torch.cat((global_view, clips.flatten(0, 1)))
        levels = sample_levels(views.shape[0], cfg.low_level, shared, local, device)
        with torch.autocast(device.type, enabled=False):
            params = level_parameters(levels, cfg.low_level, local)
            views = apply_low_level(views, params, cfg.low_level.kernel_size(cfg.crop))
        clip_cells, global_cells = self.encode(views[batch_size:], views[:batch_size])
        # the heads and losses in float32: logits of cos / 0.1 and exp() need the range
        with torch.autocast(device.type, enabled=False):
            return self._losses(batch, clip_cells.float(), global_cells.float(), levels,
                                local)

    def _losses(self, batch: dict[str, torch.Tensor], clip_cells: torch.Tensor,
                global_cells: torch.Tensor, levels: torch.Tensor,
                local: torch.Generator) -> dict[str, torch.Tensor]:
        cfg = self.config
        batch_size, k = batch["clips"].shape[:2]
        device = clip_cells.device
        clip_vec = clip_cells.mean(dim=(2, 3, 4))  # (B*K, C)
        global_vec = global_cells.mean(dim=(2, 3, 4))  # (B, C)
        rank, size = world()
        outputs: dict[str, torch.Tensor] = {}
        loss = clip_vec.new_zeros(())

        # region contrast (Eqs. 1, 3, 4) or the instance-level L_nce ablation
        if cfg.contrast == "region":
            queries = self.projection(clip_cells.flatten(2).transpose(1, 2))
            queries = queries.reshape(batch_size, k, queries.shape[1], -1)
            keys = self.projection(global_cells.flatten(2).transpose(1, 2))
            targets = correspondence(
                batch["clip_boxes"], batch["clip_spans"], batch["clip_flips"],
                batch["global_box"], batch["global_span"], batch["global_flip"],
                self.clip_grid, self.global_grid)
        else:
            queries = self.projection(clip_vec).reshape(batch_size, k, 1, -1)
            keys = self.projection(global_vec)[:, None]
            targets = queries.new_ones(batch_size, k, 1, 1)
        offset = 0
        if cfg.gather_negatives and size > 1:
            keys, offset = gather_with_grad(keys)
        loss_rc = region_contrast_loss(queries, keys, targets, cfg.temperature,
                                       cfg.negatives, offset=offset)
        outputs["loss_rc" if cfg.contrast == "region" else "loss_nce"] = loss_rc
        loss = loss + cfg.rc_weight * loss_rc

        # low-level shortcut elimination (Eqs. 5-6, §3.2)
        if self.mine is not None:
            own = torch.arange(batch_size, device=device)
            videos = torch.cat((own, own.repeat_interleave(k))) + rank * 2**24
            features, _ = gather_with_grad(torch.cat((global_vec, clip_vec)).float())
            ja, jb, ma, mb = sample_level_pairs(gather_no_grad(levels), gather_no_grad(videos),
                                                local)
            # §3.2: the estimator maximises Eq. 6, the encoder upstream minimises it
            reversed_features = reverse_gradient(features)
            if ja.numel():
                mi_levels = donsker_varadhan(
                    self.mine(reversed_features[ja], reversed_features[jb]),
                    self.mine(reversed_features[ma], reversed_features[mb]))
                loss = loss - cfg.mi_weight * mi_levels
                outputs["mi_levels"] = mi_levels.detach()
            else:  # no same-level pair this iteration: keep theta in the graph for DDP
                loss = loss + 0.0 * sum(p.sum() for p in self.mine.parameters())
            # the frozen estimator on local-global pairs: joint = the clip with its own
            # video's global view, marginal = with another video's (from any process)
            all_global, offset = gather_with_grad(global_vec.float())
            if cfg.mi_local_global and all_global.shape[0] > 1:
                frozen = {name: p.detach() for name, p in self.mine.named_parameters()}
                mine = functools.partial(functional_call, self.mine, frozen)
                clip_own = own.repeat_interleave(k) + offset
                shift = torch.randint(1, all_global.shape[0], clip_own.shape, generator=local,
                                      device=device)
                other = (clip_own + shift) % all_global.shape[0]
                mi_local_global = donsker_varadhan(
                    mine((clip_vec.float(), all_global[clip_own])),
                    mine((clip_vec.float(), all_global[other])))
                loss = loss + cfg.mi_weight * mi_local_global
                outputs["mi_local_global"] = mi_local_global.detach()

        # local-global temporal dependency (Eq. 7, §3.3)
        if self.td_head is not None:
            ordered = clip_vec.reshape(batch_size, k, -1)
            orders = shuffled_orders(batch_size, k, cfg.td_shuffles, local, device)
            shuffled = torch.gather(
                ordered[:, None].expand(-1, cfg.td_shuffles, -1, -1), 2,
                orders[..., None].expand(-1, -1, -1, ordered.shape[-1]))
            correct = self.td_head(ordered, global_vec)
            wrong = self.td_head(shuffled.flatten(0, 1),
                                 global_vec.repeat_interleave(cfg.td_shuffles, dim=0))
            mi_td = donsker_varadhan(correct, wrong)
            loss = loss - cfg.td_weight * mi_td
            outputs["mi_td"] = mi_td.detach()
            outputs["td_accuracy"] = (correct[:, None] > wrong.view(batch_size, -1)
                                      ).float().mean().detach()
        outputs["loss"] = loss
        return outputs
