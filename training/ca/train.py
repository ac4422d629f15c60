"""Controllable Augmentations pretraining (Qian et al., "Controllable Augmentations for
Video Representation Learning", 2022): local-global region contrast, low-level shortcut
elimination and local-global temporal dependency.

    python -m vsslzoo.training ca --data /data/k400/train --arch r3d_18 --preset k400 \\
        --out runs/ca-r3d18-k400
    torchrun --nproc-per-node 8 -m vsslzoo.training ca --data ... --arch r3d_18 --preset k400 \\
        --out runs/ca
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-endpoint HOST:29500 -m vsslzoo.training ca ...
    python -m vsslzoo.training ca --resume runs/ca        # continues where it stopped
    python -m vsslzoo.training ca --data synth/labels.csv --preset smoke --out runs/smoke
    # ablations (Tables 4, 6, 7):
    python -m vsslzoo.training ca ... --clips 4 --global-temporal-res 8 \\
        --td-head gru|mlp|gru+mlp|none --no-mi --no-rc

Presets (§4.2; batch is the *total* over all processes):

=========  =====  ====  =========  ==========  =========================================
preset     batch  lr    epochs     lr x0.1 at  input
=========  =====  ====  =========  ==========  =========================================
ucf101     128    1e-3  200        150         K=4 clips + global, 16 frames, 112^2
k400       128    1e-3  100        70          K=4 clips + global, 16 frames, 112^2
gpu-check  32     1e-3  300 steps  --          as k400 (the device check's loss curves)
smoke      4      1e-3  40 steps   --          8 frames, 32^2, width 1/8, grid 2 (CPU)
=========  =====  ====  =========  ==========  =========================================

Adam, weight decay 1e-5 (§4.2), no gradient clipping (the paper mentions none). R3D-18:
clip features 2 x 4 x 4, global features 8 x 4 x 4 (``--global-temporal-res``). The
exported backbone (``OUT/model``) is the plain encoder f, preprocessing as the paper's
evaluation: 16 frames at stride 2, resize 128, centre crop 112, ImageNet mean/std (the
paper names no statistics; the zoo's ``ca-r3d18-*`` entries use these).

Choices where the paper is silent are listed in the docstrings of :mod:`.data`,
:mod:`.lowlevel`, :mod:`.correspondence`, :mod:`.heads` and :mod:`.model`; each is a
field of :class:`~.data.CADataConfig`, :class:`~.lowlevel.LowLevelConfig` or
:class:`~.model.CAModelConfig`, the main ones also a flag below.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from vsslzoo.config import IMAGENET_MEAN, IMAGENET_STD, PreprocessConfig

from ..data.datasets import ClipDataset, discover
from ..recipe import (
    backbone_exporter,
    bad_options,
    finish_args,
    given_or,
    make_trainer,
    per_process_batch,
    recipe_parser,
    run_or_export,
    schedule_steps,
    train_config,
)
from .data import CADataConfig, ca_sample
from .heads import TD_HEADS
from .model import CAModel, CAModelConfig

ARCHITECTURES = ("r3d_18", "r2plus1d_18")


@dataclass(frozen=True)
class Preset:
    batch: int
    lr: float
    epochs: int | None
    milestones: tuple[int, ...]  # epochs
    steps: int | None = None  # fixed step count (smoke)
    width: float = 1.0
    data: CADataConfig = field(default_factory=CADataConfig)
    model: CAModelConfig = field(default_factory=CAModelConfig)


PRESETS = {
    "ucf101": Preset(batch=128, lr=1e-3, epochs=200, milestones=(150,)),
    "k400": Preset(batch=128, lr=1e-3, epochs=100, milestones=(70,)),
    # the device check's loss curves: paper-size inputs and model, a batch whose decoding
    # a 16-core host keeps up with, a few hundred steps
    "gpu-check": Preset(batch=32, lr=1e-3, epochs=None, milestones=(), steps=300),
    # CPU in seconds: 8 frames (T_c = 1, T_v = 4), 32^2 crops (2 x 2 cells), width 1/8
    "smoke": Preset(
        batch=4, lr=1e-3, epochs=None, milestones=(), steps=40, width=0.125,
        data=CADataConfig(num_frames=8, crop=32, decode_short=48, decode_size=(48, 64)),
        model=CAModelConfig(num_frames=8, crop=32, global_temporal_res=4, grid=2,
                            proj_hidden=64, proj_dim=32, mine_hidden=64),
    ),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = recipe_parser("ca", __doc__)
    parser.add_argument("--arch", choices=ARCHITECTURES, default="r3d_18")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="k400")
    parser.add_argument("--clips", type=int, help="local clips per video, K (default 4)")
    parser.add_argument("--global-temporal-res", type=int,
                        help="T_v, time steps of the global feature map (default 8 at 16 "
                             "frames; T_c x 1, 2, 4 or 8)")
    parser.add_argument("--td-head", choices=TD_HEADS,
                        help="temporal dependency head (default gru; Table 6)")
    parser.add_argument("--no-mi", action="store_true",
                        help="no low-level shortcut elimination (L_mi, Table 7)")
    parser.add_argument("--no-rc", action="store_true",
                        help="instance-level L_nce instead of region contrast (Table 7)")
    parser.add_argument("--temperature", type=float, help="tau of Eq. 4 (default 0.1)")
    parser.add_argument("--negatives", choices=("cells", "pooled", "none"),
                        help="negatives from other videos in Eq. 4 (default cells)")
    parser.add_argument("--clip-stride", type=int,
                        help="source frames between frames of a local clip (default 2)")
    return finish_args(parser, argv)


def configs(args: argparse.Namespace, preset: Preset, seed: int
            ) -> tuple[CADataConfig, CAModelConfig]:
    """The preset's data and model settings with the command line's overrides."""
    data, model = preset.data, preset.model
    if args.clips is not None:
        data = dataclasses.replace(data, clips=args.clips)
    if args.clip_stride is not None:
        data = dataclasses.replace(data, clip_stride=args.clip_stride)
    changes: dict[str, Any] = {"clips": data.clips, "num_frames": data.num_frames,
                               "crop": data.crop, "seed": seed}
    if args.global_temporal_res is not None:
        changes["global_temporal_res"] = args.global_temporal_res
    if args.td_head is not None:
        changes["td_head"] = args.td_head
    if args.no_mi:
        changes["mi"] = False
    if args.no_rc:
        changes["contrast"] = "instance"
    if args.temperature is not None:
        changes["temperature"] = args.temperature
    if args.negatives is not None:
        changes["negatives"] = args.negatives
    return data, dataclasses.replace(model, **changes)


def export_preprocess(data: CADataConfig) -> PreprocessConfig:
    """Evaluation input of the exported backbone (§4.2: 112^2 centre crops of 128-high
    frames, clips as long as the local clips)."""
    return PreprocessConfig(num_frames=data.num_frames, frame_stride=data.clip_stride,
                            resize=math.ceil(data.crop * 128 / 112), crop=(data.crop, data.crop),
                            mean=IMAGENET_MEAN, std=IMAGENET_STD)


def main(argv: list[str] | None = None) -> dict[str, float]:
    import torch

    args = parse_args(argv)
    torch.manual_seed(args.seed)  # the initial weights too are a function of the seed
    preset = PRESETS[args.preset]
    total_batch = given_or(args.batch_size, preset.batch)
    try:
        data_config, model_config = configs(args, preset, args.seed)
    except ValueError as exc:
        raise bad_options(exc) from None
    batch = per_process_batch(total_batch)
    if batch < 2:
        raise SystemExit(f"batch {total_batch} over the processes leaves {batch} video per "
                         "process; the method needs >= 2 (negatives, MI marginals)")
    width = given_or(args.width, preset.width)
    videos = discover(args.data)
    dataset = ClipDataset(videos, partial(ca_sample, config=data_config), seed=args.seed)
    steps, steps_per_epoch = schedule_steps(args, preset.steps, preset.epochs, len(videos),
                                            total_batch)
    milestones = [m * steps_per_epoch for m in preset.milestones]
    preprocess = export_preprocess(data_config)
    model_args: dict[str, Any] = {}
    if width != 1.0:
        model_args["width"] = width
    try:  # the feature-map sizes are checked against the settings here
        model = CAModel(args.arch, model_args, preprocess, model_config)
    except ValueError as exc:
        raise bad_options(exc) from None
    config = train_config(
        args, steps=steps, batch_size=batch, lr=given_or(args.lr, preset.lr),
        optimizer="adam", weight_decay=1e-5,
        schedule="step" if milestones else "constant", milestones=milestones, grad_clip=None)

    export = backbone_exporter(
        "ca", args, args.arch, model_args, preprocess,
        notes=lambda: f"preset {args.preset}, {trainer.step} steps, batch {total_batch}")
    trainer = make_trainer(args, config, model, dataset, export, data_config=data_config,
                           model_config=model_config)
    return run_or_export(trainer, args, export)


def benchmark_setup(arch: str, batch_size: int, device, **options: Any):
    """``(model, make_batch)`` for timing one optimiser step without decoding.

    ``model`` is the full training module (:class:`~.model.CAModel`) at the paper's input
    sizes (K=4 clips + a global view, 16 x 112^2) on ``device``; ``make_batch()`` returns a
    batch dict of random tensors on ``device`` shaped and typed exactly as the DataLoader
    delivers it (uint8 pixels, boxes nested as the sampler makes them). ``options``
    override :class:`~.model.CAModelConfig` fields (``clips``, ``num_frames`` and ``crop``
    also set the data shapes), plus ``width`` for the backbone and ``tiny=True`` for the
    smoke preset's sizes (8 frames, 32^2, small heads: a CPU dry run).
    """
    import numpy as np
    import torch

    from .data import clip_centres, random_box

    options = dict(options)
    width = options.pop("width", 1.0)
    base = PRESETS["smoke"].model if options.pop("tiny", False) else CAModelConfig()
    model_config = dataclasses.replace(base, **options)
    data_config = CADataConfig(num_frames=model_config.num_frames, crop=model_config.crop,
                               clips=model_config.clips)
    model_args = {"width": width} if width != 1.0 else {}
    model = CAModel(arch, model_args, export_preprocess(data_config), model_config).to(device)
    rng = np.random.default_rng(0)
    k, frames, crop = data_config.clips, data_config.num_frames, data_config.crop
    height, frame_width = data_config.decode_size

    def make_batch() -> dict[str, torch.Tensor]:
        g_boxes, c_boxes, c_spans = [], [], []
        for _ in range(batch_size):
            g = random_box(rng, height, frame_width, data_config.global_scale,
                           data_config.aspect)
            g_boxes.append(g)
            boxes = []
            for _ in range(k):
                x0, y0, x1, y1 = random_box(rng, g[3] - g[1], g[2] - g[0],
                                            data_config.local_scale, data_config.aspect)
                boxes.append((g[0] + x0, g[1] + y0, g[0] + x1, g[1] + y1))
            c_boxes.append(boxes)
            length = frames * data_config.clip_stride / 25.0  # a 10 s, 25 fps video
            starts = clip_centres(10.0, length, k, rng) - length / 2
            c_spans.append(np.stack([starts, starts + length], 1))
        scale = np.array([frame_width, height, frame_width, height], dtype=np.float64)

        def tensor(values, dtype=torch.float32):
            return torch.as_tensor(np.asarray(values), dtype=dtype, device=device)

        return {
            "global": torch.randint(0, 256, (batch_size, 3, frames, crop, crop),
                                    dtype=torch.uint8, device=device),
            "clips": torch.randint(0, 256, (batch_size, k, 3, frames, crop, crop),
                                   dtype=torch.uint8, device=device),
            "global_box": tensor(np.asarray(g_boxes) / scale),
            "clip_boxes": tensor(np.asarray(c_boxes) / scale),
            "global_span": tensor([[0.0, 10.0]] * batch_size),
            "clip_spans": tensor(c_spans),
            "global_flip": tensor(rng.random(batch_size) < 0.5, torch.bool),
            "clip_flips": tensor(rng.random((batch_size, k)) < 0.5, torch.bool),
        }

    return model, make_batch
