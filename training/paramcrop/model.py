"""The ParamCrop training module (Fig. 2): two augmented views, two cropping modules, a
backbone with a projection head, and SimCLR or MoCo on top.

``forward(batch)`` takes ``video1`` and ``video2``, ``(B, 3, T_in, H_in, W_in)`` uint8
(or float 0..255): the two views' input cubes as the data sampler cut them (64 x 128^2
in the paper). On the training device it then applies, per view (§4, "Color jittering
and random horizontal flip are employed before our cropping module"):

    flip (p = 0.5) -> colour jitter -> ParamCrop (its own MLP per view) -> backbone -> head

and returns ``loss`` with the disparity metrics of Figure 5 (``iou``, ``distance``, per
axis ``distance_x/y/t``), the mean learnt scales and the fraction of entries of ``v``
held by the early-stopping rule (``detached``).

Choices where the paper is silent (:class:`ParamCropConfig` fields):

* colour jitter: torchvision ``ColorJitter(0.4, 0.4, 0.4, 0.1)`` applied with p = 0.8,
  the same for every frame of a clip, no grayscale (``grayscale_prob`` = 0: §4 names only
  jitter and flip); drawn independently per view.
* Gaussian blur (``blur_prob``, off): not in the paper; the ``default-cpu`` preset blurs
  half the views (sigma uniform in ``blur_sigma`` pixels) so that the embedding of a
  low-resolution re-encode stays near the original's.
* ``augment_after_crop`` (off): flip and jitter the cropped view instead of the input
  cube. Flip and the pointwise colour ops nearly commute with the crop, and this is
  ~5x cheaper; the smoke preset uses it for CPU speed, the paper's presets do not.
* projection head: Linear(D, D) - BatchNorm - ReLU - Linear(D, 128) (SimCLR's), the same
  for MoCo (``head_hidden``, ``head_dim``, ``head_bn``).
* SimCLR temperature 0.1; MoCo: τ = 0.2, queue 65,536, momentum 0.999 (MoCo v2 with an
  MLP head), the loss symmetrised over the two views (``symmetric``) so that *both*
  cropping modules receive gradient through a query (MoCo's key branch carries none),
  and the keys of both views enqueued. Shuffle-BN (MoCo §3.3) across processes under
  ``torchrun`` (``shuffle_bn``); in a single process there is nothing to shuffle across.
* both views go through the backbone as one batch (BatchNorm statistics over all 2n
  views, as SimCLR's implementation does); for MoCo the queries and the keys likewise.
* the cropping MLP and the crop run in float32 even under ``--bf16``.
* the cropping MLPs: their own optimiser group, lr x ``crop_lr_scale`` (1), no weight
  decay (``crop_weight_decay``), so decay does not pull the adversary to the centre.
* random draws (noise n, flips, jitter) come from a generator seeded by (seed, rank,
  forward count), the count being a buffer, so ``--resume`` reproduces them exactly and
  every process draws differently.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from vsslzoo.config import PreprocessConfig
from vsslzoo.models import build

from ..data.augment import gaussian_blur, grayscale, hflip, sample_colour_jitter
from ..distributed import gather_no_grad, world
from ..layers import ProjectionHead
from .crop import CropConfig, ParamCrop, view_disparity
from .losses import KeyQueue, moco_infonce, nt_xent

FRAMEWORKS = ("simclr", "moco")


@dataclass(frozen=True)
class ParamCropConfig:
    framework: str = "simclr"
    crop: CropConfig = field(default_factory=CropConfig)
    temperature: float | None = None  # None: 0.1 for SimCLR, 0.2 for MoCo
    head_dim: int = 128
    head_hidden: int | None = None  # None: the backbone's embed_dim
    head_bn: bool = True
    flip_prob: float = 0.5
    jitter_strength: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)
    jitter_prob: float = 0.8
    grayscale_prob: float = 0.0
    blur_prob: float = 0.0  # not in the paper (§4 names jitter and flip); default-cpu: 0.5
    blur_sigma: tuple[float, float] = (0.1, 1.5)  # pixels of the view, uniform
    blur_kernel: int = 9
    augment_after_crop: bool = False  # the paper: flip and jitter *before* the crop (§4)
    queue_size: int = 65536
    moco_momentum: float = 0.999
    symmetric: bool = True
    shuffle_bn: bool = True
    crop_lr_scale: float = 1.0  # the cropping MLPs' lr = scheduled lr x this
    crop_weight_decay: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.framework not in FRAMEWORKS:
            raise ValueError(f"framework must be one of {FRAMEWORKS}, got {self.framework!r}")
        if self.temperature is not None and self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        for name in ("flip_prob", "jitter_prob", "grayscale_prob", "blur_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.moco_momentum <= 1:
            raise ValueError(f"moco_momentum must lie in [0, 1], got {self.moco_momentum}")
        if self.queue_size < 1 or self.head_dim < 1:
            raise ValueError("queue_size and head_dim must be >= 1")
        if self.crop_lr_scale < 0 or self.crop_weight_decay < 0:
            raise ValueError("crop_lr_scale and crop_weight_decay must be >= 0")

    @property
    def tau(self) -> float:
        if self.temperature is not None:
            return self.temperature
        return 0.1 if self.framework == "simclr" else 0.2


class ParamCropModel(nn.Module):
    """Backbone + head + two :class:`ParamCrop` modules (+ a momentum encoder and queue
    for MoCo). ``backbone`` is what gets exported."""

    def __init__(self, architecture: str, model_args: dict[str, Any],
                 preprocess: PreprocessConfig, config: ParamCropConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build(architecture, preprocess=preprocess, **model_args)
        dim = self.backbone.embed_dim
        self.head = ProjectionHead(dim, config.head_hidden or dim, config.head_dim,
                                   batch_norm=config.head_bn)
        self.crop1 = ParamCrop(config.crop)
        self.crop2 = ParamCrop(config.crop)
        self.register_buffer("draws", torch.zeros((), dtype=torch.long))
        if config.framework == "moco":
            self.key_backbone = copy.deepcopy(self.backbone)
            self.key_head = copy.deepcopy(self.head)
            for param in (*self.key_backbone.parameters(), *self.key_head.parameters()):
                param.requires_grad_(False)
            self.queue = KeyQueue(config.queue_size, config.head_dim)

    # -- optimiser hooks -------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        """Backbone + head at the scheduled lr; the two cropping MLPs in their own group
        (``crop_lr_scale``; ``crop_weight_decay`` 0 by default so that decay does not
        pull the adversary back to the centre)."""
        crop = [*self.crop1.parameters(), *self.crop2.parameters()]
        main = [*self.backbone.parameters(), *self.head.parameters()]
        return [{"params": main},
                {"params": crop, "lr_scale": self.config.crop_lr_scale,
                 "weight_decay": self.config.crop_weight_decay}]

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """MoCo's momentum update of the key encoder (deterministic)."""
        if self.config.framework != "moco":
            return
        m = self.config.moco_momentum
        for query, key in ((self.backbone, self.key_backbone), (self.head, self.key_head)):
            for q, k in zip(query.parameters(), key.parameters()):
                k.mul_(m).add_(q.detach(), alpha=1 - m)

    # -- augmentation ----------------------------------------------------------------
    def _generator(self) -> torch.Generator:
        seed = np.random.SeedSequence([self.config.seed, world()[0], int(self.draws)])
        generator = torch.Generator().manual_seed(int(seed.generate_state(1)[0]))
        self.draws += 1
        return generator

    def _augment(self, video: torch.Tensor, generator: torch.Generator
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """R_i of Fig. 1/2: flip and colour jitter, drawn on the CPU, applied on the
        video's device -> (augmented video, which clips were flipped (B,) bool)."""
        batch = video.shape[0]
        config = self.config
        flip = torch.rand(batch, generator=generator) < config.flip_prob
        jitter = sample_colour_jitter(batch, config.jitter_strength, config.jitter_prob,
                                      generator=generator)
        grey = torch.rand(batch, generator=generator) < config.grayscale_prob
        video = hflip(video, flip.to(video.device))
        if config.jitter_prob > 0:
            video = jitter.apply(video)
        if config.grayscale_prob > 0:
            video = grayscale(video, grey.to(video.device))
        if config.blur_prob > 0:
            low, high = config.blur_sigma
            sigma = low + (high - low) * torch.rand(batch, generator=generator)
            sigma = torch.where(torch.rand(batch, generator=generator) < config.blur_prob,
                                sigma, torch.zeros_like(sigma))
            video = gaussian_blur(video, sigma, config.blur_kernel)
        return video, flip

    def views(self, batch: dict[str, torch.Tensor]):
        """The two cropped views ``(B, 3, T_out, S, S)`` and their :class:`CropParams`,
        in the coordinates of the (unflipped) input cube, so that the two views'
        regions compare in one frame (Figure 5)."""
        generator = self._generator()
        outputs = []
        after = self.config.augment_after_crop
        for key, crop in (("video1", self.crop1), ("video2", self.crop2)):
            video = batch[key].float()
            if not after:
                video, flip = self._augment(video, generator)
            noise = torch.randn(video.shape[0], self.config.crop.noise_dim,
                                generator=generator).to(video.device)
            view, params = crop(video, noise)
            if after:  # cheaper (the jitter runs on the small view); not the paper's order
                view, _ = self._augment(view, generator)  # a flip moves no region
            else:  # cut from the mirrored cube: mirror the parameters back
                params = params.mirrored(flip.to(params.dx.device))
            outputs.append((view, params))
        return outputs

    def embed(self, clips: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(clips))

    # -- MoCo key branch ------------------------------------------------------------
    @torch.no_grad()
    def _keys(self, clips: torch.Tensor) -> torch.Tensor:
        """Key-encoder embeddings; with Shuffle-BN across processes under torchrun."""
        clips = clips.detach()
        rank, size = world()
        if not (self.config.shuffle_bn and size > 1):
            return self.key_head(self.key_backbone(clips))
        everything = gather_no_grad(clips)
        # one permutation shared by all ranks: same seed on every rank
        seed = np.random.SeedSequence([self.config.seed, int(self.draws), 7])
        order = torch.randperm(len(everything), generator=torch.Generator().manual_seed(
            int(seed.generate_state(1)[0]))).to(clips.device)
        mine = order.tensor_split(size)[rank]
        keys = gather_no_grad(self.key_head(self.key_backbone(everything[mine])))
        unshuffled = torch.empty_like(keys)
        unshuffled[order] = keys
        start = gather_no_grad(torch.tensor([len(clips)], device=clips.device)).cumsum(0)
        begin = int(start[rank - 1]) if rank else 0
        return unshuffled[begin:begin + len(clips)]

    # -- forward ---------------------------------------------------------------------
    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        (view1, params1), (view2, params2) = self.views(batch)
        config = self.config
        if config.framework == "simclr":
            # both views in one backbone batch (BatchNorm statistics over all 2n views)
            z1, z2 = self.embed(torch.cat((view1, view2))).chunk(2)
            loss = nt_xent(z1, z2, config.tau)
        else:
            # both views' queries in one batch (BatchNorm over 2n views, as for SimCLR);
            # the keys too (Shuffle-BN mixes them across processes under torchrun)
            q1, q2 = self.embed(torch.cat((view1, view2))).chunk(2)
            k1, k2 = self._keys(torch.cat((view1, view2))).chunk(2)
            queue = self.queue.keys.clone()
            loss = moco_infonce(q1, k2, queue, config.tau)
            keys = [k2]
            if config.symmetric:
                loss = 0.5 * (loss + moco_infonce(q2, k1, queue, config.tau))
                keys = [k1, k2]
            self.queue.enqueue(gather_no_grad(torch.nn.functional.normalize(
                torch.cat(keys).float(), dim=1)))
        with torch.no_grad():
            disparity = view_disparity(params1, params2)
            metrics = {name: value.mean() for name, value in disparity.items()}
            bound = 0.5 - config.crop.detach_bound
            v = torch.cat((params1.v, params2.v))
            metrics["detached"] = ((v - 0.5).abs() > bound).float().mean()
            metrics["scale_p"] = 0.5 * (params1.scale_x.mean() + params2.scale_x.mean())
            metrics["scale_t"] = 0.5 * (params1.scale_t.mean() + params2.scale_t.mean())
        return {"loss": loss, **metrics}
