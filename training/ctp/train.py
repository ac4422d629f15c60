"""CtP pretraining (Wang et al., "Unsupervised Visual Representation Learning by Tracking
Patches in Video", CVPR 2021).

    python -m vsslzoo.training ctp --data /data/k400/train --arch r2plus1d_18 --preset k400 \\
        --out runs/ctp
    torchrun --nproc-per-node 8 -m vsslzoo.training ctp --data ... --preset k400 --out runs/ctp
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m vsslzoo.training ctp ...
    python -m vsslzoo.training ctp --resume runs/ctp      # continues where it stopped
    python -m vsslzoo.training ctp --data synth/labels.csv --preset smoke --out runs/smoke

Presets (the paper's, §5.1 and REFERENCE.md; batch is the *total* over all processes):

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
import dataclasses
import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from vsslzoo.config import IMAGENET_MEAN, IMAGENET_STD, ModelConfig, PreprocessConfig, Provenance

from ..data.datasets import ClipDataset, discover
from ..trainer import TrainConfig, Trainer
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
    parser = argparse.ArgumentParser(prog="python -m vsslzoo.training ctp",
                                     description="CtP pretraining")
    parser.add_argument("--data", help="video folder, class/video tree, or CSV path[,label]")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="r2plus1d_18")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="k400")
    parser.add_argument("--out", help="run folder (checkpoints, logs, model/)")
    parser.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--steps", type=int,
                        help="length of the schedule in steps (default: the preset's epochs)")
    parser.add_argument("--batch-size", type=int, help="total batch (default: the preset's)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    parser.add_argument("--width", type=float, help="backbone width multiplier")
    parser.add_argument("--workers", type=int, default=4, help="decoding workers per process")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--export-only", action="store_true",
                        help="with --resume: export the last checkpoint to RUN/model, no training")
    args = parser.parse_args(argv)
    if args.export_only and not args.resume:
        parser.error("--export-only needs --resume RUN")
    if args.resume:
        saved = json.loads((Path(args.resume) / "run.json").read_text())["args"]
        for key, value in saved.items():
            if key not in ("resume", "max_steps", "export_only") and \
                    getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
        args.out = args.resume
    if not args.data or not args.out:
        parser.error("--data and --out are required (or --resume RUN)")
    return args


def main(argv: list[str] | None = None) -> dict[str, float]:
    import torch

    args = parse_args(argv)
    torch.manual_seed(args.seed)  # the initial weights too are a function of the seed
    preset = PRESETS[args.preset]
    world = int(__import__("os").environ.get("WORLD_SIZE", "1"))
    total_batch = args.batch_size or preset.batch
    if total_batch % world:
        raise SystemExit(f"batch {total_batch} is not divisible by {world} processes")
    data_config = preset.data
    width = args.width or preset.width
    videos = discover(args.data)
    dataset = ClipDataset(videos, partial(ctp_sample, config=data_config), seed=args.seed)
    steps_per_epoch = max(len(videos) // total_batch, 1)
    steps = args.steps or preset.steps or preset.epochs * steps_per_epoch
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
    config = TrainConfig(
        out=args.out, steps=steps, batch_size=total_batch // world,
        lr=args.lr or preset.lr, optimizer=preset.optimizer, momentum=0.9, weight_decay=1e-4,
        schedule="step" if milestones else "constant", milestones=milestones, grad_clip=40.0,
        bf16=args.bf16, sync_bn=args.sync_bn, workers=args.workers, seed=args.seed,
        log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        max_steps=args.max_steps)

    def export(trained: torch.nn.Module, folder: Path) -> None:
        from vsslzoo.artefacts import build_network, save_pretrained

        backbone_config = ModelConfig(
            architecture=args.arch, model_args=model_args,
            embed_dim=trained.backbone.embed_dim, preprocess=preprocess,
            name=f"ctp-{args.arch.replace('_', '')}-run",
            provenance=Provenance(
                kind="trained", method="ctp", data=str(args.data),
                source=f"python -m vsslzoo.training ctp (run {args.out})",
                notes=f"preset {args.preset}, {trainer.step} steps, batch {total_batch}"))
        network = build_network(backbone_config)
        network.load_state_dict(trained.backbone.state_dict())
        save_pretrained(network, backbone_config, folder)

    trainer = Trainer(config, model, dataset, export=export,
                      run_info={"args": vars(args), "videos": len(videos),
                                "data_config": dataclasses.asdict(data_config)})
    if args.export_only:  # on demand, from the last checkpoint
        if not trainer.load_checkpoint():
            raise SystemExit(f"no checkpoint in {args.out}")
        export(trainer.model, Path(args.out) / "model")
        print(f"exported step {trainer.step} to {Path(args.out) / 'model'}")
        return {}
    return trainer.fit(resume=bool(args.resume))
