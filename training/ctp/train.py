"""CtP pretraining (Wang et al., "Unsupervised Visual Representation Learning by Tracking
Patches in Video", CVPR 2021).

    python -m vsslzoo.training ctp --data /data/k400/train --arch r2plus1d_18 --preset k400 \\
        --out runs/ctp
    torchrun --nproc-per-node 8 -m vsslzoo.training ctp --data ... --preset k400 --out runs/ctp
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m vsslzoo.training ctp ...
    python -m vsslzoo.training ctp --resume runs/ctp      # continues where it stopped
    python -m vsslzoo.training ctp --data synth/labels.csv --preset smoke --out runs/smoke

Presets (the paper's §5.1, and the reference configs microsoft/CtP
``configs/ctp/pretraining_runtime_ucf.py`` / ``pretraining_runtime_kinetics.py``; batch
is the *total* over all processes):

=======  =====  ======  ==========  ============  ====================================
preset   batch  lr      epochs      lr steps at   input
=======  =====  ======  ==========  ============  ====================================
ucf101   32     0.01    300         100, 200      16 frames, stride 1-5, 112^2
k400     32     0.01    90          30, 60        16 frames, stride 1-5, 112^2
smoke    8      2e-3    60 steps    --            8 frames, 64^2, width 1/8, Adam (CPU)
=======  =====  ======  ==========  ============  ====================================

SGD, momentum 0.9, weight decay 1e-4, gradient clipping at 40. The backbone trains with
output stride 8 and is exported at its usual stride (same weights) to ``OUT/model``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

from vsslzoo.config import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig

from ..data.datasets import ClipDataset, discover
from ..recipe import (
    backbone_exporter,
    finish_args,
    given_or,
    make_trainer,
    per_process_batch,
    recipe_parser,
    run_or_export,
    schedule_steps,
    train_config,
)
from .data import CtPDataConfig, ctp_sample
from .model import CtPModel
from .trajectories import TrajectoryConfig

ARCHITECTURES = ("r3d_18", "r2plus1d_18")


@dataclass(frozen=True)
class Preset:
    batch: int
    lr: float
    epochs: int | None
    milestones: tuple[int, ...]  # epochs
    steps: int | None = None  # fixed step count (smoke)
    width: float = 1.0
    optimizer: str = "sgd"
    data: CtPDataConfig = CtPDataConfig()


PRESETS = {
    "ucf101": Preset(batch=32, lr=0.01, epochs=300, milestones=(100, 200)),
    "k400": Preset(batch=32, lr=0.01, epochs=90, milestones=(30, 60)),
    "smoke": Preset(
        batch=8, lr=2e-3, epochs=None, milestones=(), steps=60, width=0.125, optimizer="adam",
        data=CtPDataConfig(num_frames=8, short_sides=(64, 72, 80), crop=64,
                           trajectories=TrajectoryConfig(scales=(12, 16, 20, 24))),
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = recipe_parser("ctp", __doc__)
    parser.add_argument("--arch", choices=ARCHITECTURES, default="r2plus1d_18")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="k400")
    return finish_args(parser, argv)


def main(argv: list[str] | None = None) -> dict[str, float]:
    import torch

    args = parse_args(argv)
    torch.manual_seed(args.seed)  # the initial weights too are a function of the seed
    preset = PRESETS[args.preset]
    total_batch = given_or(args.batch_size, preset.batch)
    data_config = preset.data
    width = given_or(args.width, preset.width)
    videos = discover(args.data)
    dataset = ClipDataset(videos, partial(ctp_sample, config=data_config), seed=args.seed)
    steps, steps_per_epoch = schedule_steps(args, preset.steps, preset.epochs, len(videos),
                                            total_batch)
    milestones = [m * steps_per_epoch for m in preset.milestones]
    preprocess = PreprocessConfig(num_frames=data_config.num_frames, frame_stride=2,
                                  resize=math.ceil(data_config.crop * 128 / 112),
                                  crop=(data_config.crop, data_config.crop),
                                  mean=IMAGENET_MEAN, std=IMAGENET_STD)
    model_args: dict[str, Any] = {"bn_eps": 1e-3}
    if args.arch == "r2plus1d_18":
        model_args["midplanes"] = "ctp"
    if width != 1.0:
        model_args["width"] = width
    model = CtPModel(args.arch, model_args, preprocess, data_config.num_frames, data_config.crop)
    config = train_config(
        args, steps=steps, batch_size=per_process_batch(total_batch),
        lr=given_or(args.lr, preset.lr), optimizer=preset.optimizer, momentum=0.9,
        weight_decay=1e-4, schedule="step" if milestones else "constant",
        milestones=milestones, grad_clip=40.0)

    export = backbone_exporter(
        "ctp", args, args.arch, model_args, preprocess,
        notes=lambda: f"preset {args.preset}, {trainer.step} steps, batch {total_batch}")
    trainer = make_trainer(args, config, model, dataset, export, data_config=data_config)
    return run_or_export(trainer, args, export)
