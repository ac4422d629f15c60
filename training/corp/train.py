"""CORP pretraining (Hu et al., "Contrast and Order Representations for Video
Self-supervised Learning", ICCV 2021): CORP_f and CORP_m with decoupling attention.

    python -m vsslzoo.training corp --variant f --data /data/k400/train --arch r3d_50 \\
        --preset k400 --out runs/corpf
    torchrun --nproc-per-node 8 -m vsslzoo.training corp --variant f --data ... \\
        --arch r3d_50 --preset k400 --bf16 --out runs/corpf
    torchrun --nproc-per-node 8 -m vsslzoo.training corp --variant m --clips 4 \\
        --data /data/ssv2/train --preset ssv2 --bf16 --out runs/corpm
    torchrun --nnodes 8 --nproc-per-node 8 --rdzv-endpoint HOST:29500 \\
        -m vsslzoo.training corp ...
    python -m vsslzoo.training corp ... --attention decoupled|mixed \\
        --task contrast+order|contrast|order                   # Table 6a / 6c ablations
    python -m vsslzoo.training corp --resume runs/corpf        # continues where it stopped
    python -m vsslzoo.training corp --data synth/labels.csv --preset smoke --out runs/smoke

Presets (§4.1; batch is the *total* over all processes, in videos; lr = batch / 256):

=========  ==========  ===========  =======  ============================================
preset     batch f/m   lr f/m       epochs   input (T x stride, crop)
=========  ==========  ===========  =======  ============================================
k400       512 / 64    2.0 / 0.25   800      16 x 2, 224^2 from short side 256
ssv2       512 / 64    2.0 / 0.25   200      16 x 1, 224^2 from short side 256
gpu-check  16 / 8      1/16, 1/32   300 st.  as k400, one GPU (the device check's curves)
smoke      8 / 4       3e-3         60 st.   4 x 1, 32^2 from 48, width 1/8, Adam (CPU)
=========  ==========  ===========  =======  ============================================

LARS (momentum 0.9, weight decay 1e-6), linear warm-up over the first 5% of the steps then
half-cosine decay, SyncBatchNorm under DDP for the backbone and the projection head (on
for k400/ssv2 even without ``--sync-bn``; ``--no-sync-bn`` turns it off). CORP_m uses
K = ``--clips`` clips per video (4 by default, Table 6b) and forms its video pairs within
each process (§3.2), so its per-process batch must be >= 2; CORP_f gathers all
processes' clips as negatives.
Epoch counts: 800 on K400 for both variants (§4.2), 200 on SSv2 (Table 6e, the setting
of the paper's SSv2 results).

The smoke preset trains in seconds on CPU: Adam (as CtP's smoke preset), no warm-up,
4-frame clips (an R3D-50 step at 4 x 32^2 takes ~0.1 s on 2 CPU cores, at 8 x 32^2 ~1-2 s),
and milder crops (area 0.7-1, aspect 0.8-1.25, no flip, no blur) so that the clips of a
small synthetic video keep the cue that orders them; everything else as the paper.

Every open choice of the paper is written in the docstrings of :mod:`.sampling`,
:mod:`.data`, :mod:`.relation`, :mod:`.losses` and :mod:`.model`, and is a field of
:class:`~.data.CorpDataConfig` or :class:`~.model.CorpConfig`.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
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
from .data import CorpDataConfig, corp_sample
from .losses import REDUCTIONS, TASKS
from .model import VARIANTS, CorpConfig, CorpModel
from .relation import ATTENTIONS
from .sampling import SAMPLING_METHODS

ARCHITECTURES = ("r3d_50", "r3d_18")


@dataclass(frozen=True)
class Preset:
    batch: dict[str, int]  # per variant, total over processes (videos)
    epochs: int | None
    steps: int | None = None  # fixed step count (smoke)
    lr: float | None = None  # None: batch / 256 (§4.1)
    optimizer: str = "lars"
    weight_decay: float = 1e-6
    warmup_fraction: float = 0.05
    sync_bn: bool = True
    width: float = 1.0
    proj_hidden: int = 2048
    data: CorpDataConfig = CorpDataConfig()


_K400_DATA = CorpDataConfig(num_frames=16, frame_stride=2, decode_short=256, crop=224)
PRESETS = {
    "k400": Preset(batch={"f": 512, "m": 64}, epochs=800, data=_K400_DATA),
    "ssv2": Preset(batch={"f": 512, "m": 64}, epochs=200,
                   data=dataclasses.replace(_K400_DATA, frame_stride=1)),
    # the device check's curves: the k400 recipe (LARS, lr = batch / 256) for 300 steps at
    # a batch one GPU holds
    "gpu-check": Preset(batch={"f": 16, "m": 8}, epochs=None, steps=300, data=_K400_DATA),
    "smoke": Preset(
        batch={"f": 8, "m": 4}, epochs=None, steps=60, lr=3e-3, optimizer="adam",
        weight_decay=0.0, warmup_fraction=0.0, sync_bn=False, width=0.125, proj_hidden=256,
        data=CorpDataConfig(num_frames=4, frame_stride=1, decode_short=48, crop=32,
                            crop_area=(0.7, 1.0), crop_aspect=(0.8, 1.25), flip_prob=0.0,
                            blur_prob=0.0)),
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = recipe_parser("corp", __doc__)
    parser.add_argument("--variant", choices=VARIANTS, default="f",
                        help="f: B videos x 2 clips, InfoNCE + order (§3.3); "
                             "m: K clips per video, 3-way pairs (§3.2)")
    parser.add_argument("--clips", type=int,
                        help="clips per video K (CORP_m; default 4, CORP_f: 2)")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="r3d_50")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="k400")
    parser.add_argument("--attention", choices=ATTENTIONS, default="decoupled")
    parser.add_argument("--task", choices=TASKS, default="contrast+order")
    parser.add_argument("--pair-reduction", choices=REDUCTIONS, default="sum",
                        help="CORP_m: sum (paper) or mean over a video pair's clip pairs")
    parser.add_argument("--sampling", choices=SAMPLING_METHODS, default="rejection",
                        help="clip starts by the paper's re-drawing or the direct sampler")
    args = finish_args(parser, argv)
    if args.variant == "f" and args.clips not in (None, 2):
        parser.error("--variant f takes exactly 2 clips per video (§3.3)")
    return args


def build_configs(variant: str, preset: Preset, *, clips: int | None = None,
                  **overrides: Any) -> tuple[CorpDataConfig, CorpConfig]:
    """The data and method configs of ``variant`` under ``preset``; ``overrides`` go to
    :class:`CorpConfig`."""
    num_clips = clips or (2 if variant == "f" else 4)
    data = dataclasses.replace(preset.data, num_clips=num_clips)
    method = CorpConfig(variant=variant, num_clips=num_clips,
                        **{"proj_hidden": preset.proj_hidden, **overrides})
    return data, method


def export_preprocess(data: CorpDataConfig) -> PreprocessConfig:
    """The input the trained backbone expects: T frames at the training stride, short
    side ``decode_short``, centre crop ``crop``."""
    return PreprocessConfig(num_frames=data.num_frames, frame_stride=data.frame_stride,
                            resize=data.decode_short, crop=(data.crop, data.crop),
                            mean=IMAGENET_MEAN, std=IMAGENET_STD)


def main(argv: list[str] | None = None) -> dict[str, float]:
    import torch

    args = parse_args(argv)
    torch.manual_seed(args.seed)  # the initial weights too are a function of the seed
    preset = PRESETS[args.preset]
    total_batch = given_or(args.batch_size, preset.batch[args.variant])
    batch = per_process_batch(total_batch)
    if args.variant == "m" and batch < 2:
        raise SystemExit(f"CORP_m pairs videos within a process: the per-process batch is "
                         f"{batch}; use --batch-size >= {2 * (total_batch // batch)}")
    try:
        data_config, method = build_configs(args.variant, preset, clips=args.clips,
                                            attention=args.attention, task=args.task,
                                            pair_reduction=args.pair_reduction)
    except ValueError as exc:
        raise bad_options(exc) from None
    data_config = dataclasses.replace(data_config, sampling=args.sampling)
    width = given_or(args.width, preset.width)
    videos = discover(args.data)
    dataset = ClipDataset(videos, partial(corp_sample, config=data_config), seed=args.seed)
    steps, _ = schedule_steps(args, preset.steps, preset.epochs, len(videos), total_batch)
    preprocess = export_preprocess(data_config)
    model_args: dict[str, Any] = {}
    if width != 1.0:
        model_args["width"] = width
    model = CorpModel(args.arch, model_args, preprocess, method, data_config.blur_kernel)
    config = train_config(
        args, steps=steps, batch_size=batch,
        lr=given_or(args.lr, given_or(preset.lr, total_batch / 256)),
        optimizer=preset.optimizer, momentum=0.9, weight_decay=preset.weight_decay,
        schedule="cosine", warmup_steps=round(preset.warmup_fraction * steps),
        sync_bn=given_or(args.sync_bn, preset.sync_bn))

    method_name = f"corp{args.variant}"
    export = backbone_exporter(
        method_name, args, args.arch, model_args, preprocess,
        notes=lambda: (f"preset {args.preset}, K={method.num_clips}, {method.attention} "
                       f"attention, task {method.task}, {trainer.step} steps, "
                       f"batch {total_batch}"))
    trainer = make_trainer(args, config, model, dataset, export, data_config=data_config,
                           corp_config=method)
    return run_or_export(trainer, args, export)


def benchmark_setup(arch: str, batch_size: int, device, **options: Any):
    """``(model, make_batch)`` for timing one optimiser step without decoding.

    ``model`` is the full training module (backbone, projection, relation, loss) at the
    preset's input size, in train mode on ``device``; ``make_batch()`` returns random
    tensors on ``device`` shaped and typed exactly as the DataLoader delivers them:
    ``batch_size`` videos (per process) of K clips each (``batch_size * K`` clips).

    Options: ``variant`` ("f"), ``clips``, ``preset`` ("k400"), ``width``, ``crop``,
    ``num_frames``, ``tiny`` (a CPU dry run: 4 x 32^2 clips and a 256-wide projection
    unless given), and :class:`CorpConfig` fields (``attention``, ``task``,
    ``proj_hidden``, ...).
    """
    import torch

    options = dict(options)
    variant = options.pop("variant", "f")
    preset = PRESETS[options.pop("preset", "k400")]
    width = options.pop("width", preset.width)
    if options.pop("tiny", False):
        options = {"crop": 32, "num_frames": 4, "proj_hidden": 256, **options}
    data_fields = {k: options.pop(k) for k in ("crop", "num_frames") if k in options}
    data_config, method = build_configs(variant, preset, clips=options.pop("clips", None),
                                        **options)
    if data_fields:
        data_config = dataclasses.replace(
            data_config, decode_short=max(data_config.decode_short,
                                          data_fields.get("crop", 0)), **data_fields)
    model_args = {"width": width} if width != 1.0 else {}
    model = CorpModel(arch, model_args, export_preprocess(data_config), method,
                      data_config.blur_kernel).to(device).train()
    k, t, s = data_config.num_clips, data_config.num_frames, data_config.crop
    device = torch.device(device)

    def make_batch() -> dict[str, torch.Tensor]:
        gap = data_config.num_frames * data_config.frame_stride
        starts = torch.rand(batch_size, 1, device=device) * 10 + \
            gap * torch.arange(k, device=device).float()
        jitter = torch.rand(batch_size, k, 4, device=device) * 0.8 + 0.6
        jitter[..., 3] = torch.rand(batch_size, k, device=device) * 0.2 - 0.1
        blur = torch.rand(batch_size, k, device=device) * 2.0
        return {
            "clips": torch.randint(0, 256, (batch_size, k, 3, t, s, s), dtype=torch.uint8,
                                   device=device),
            "starts": starts,
            "flip": torch.rand(batch_size, k, device=device) < 0.5,
            "jitter": jitter,
            "grayscale": torch.rand(batch_size, k, device=device) < 0.2,
            "blur_sigma": torch.where(torch.rand(batch_size, k, device=device) < 0.5, blur,
                                      torch.zeros_like(blur)),
        }

    return model, make_batch
