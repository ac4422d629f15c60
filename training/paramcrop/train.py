"""ParamCrop pretraining (Qing, Huang et al., "ParamCrop: Parametric Cubic Cropping for
Video Contrastive Learning", 2021).

    python -m vsslzoo.training paramcrop --data /data/k400/train --arch s3dg \\
        --framework simclr --preset k400 --out runs/paramcrop-s3dg-k400
    torchrun --nproc-per-node 8 -m vsslzoo.training paramcrop --data /data/k400/train \\
        --arch s3dg --framework simclr --preset k400 --bf16 --out runs/paramcrop-s3dg-k400
    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-endpoint HOST:29500 \\
        -m vsslzoo.training paramcrop --data ... --arch r2d3d_18 --framework moco --preset k400
    python -m vsslzoo.training paramcrop --resume runs/paramcrop-s3dg-k400  # continues
    python -m vsslzoo.training paramcrop --data synth/labels.csv --preset smoke --out runs/smoke
    # ablations (Tables 2-5, Fig. 6):
    ... --no-temporal | --no-spatial | --no-grl | --detach-bound 0 | --aspect-ratio --rotation

Presets (§4; batch is the *total* over all processes; with ``--batch-size`` the lr
scales linearly, lr = 0.3 x batch / 1024, unless ``--lr`` is given):

=============  =====  =====  ======  ======  ======================================
preset         batch  lr     epochs  warmup  input -> views
=============  =====  =====  ======  ======  ======================================
k400           1024   0.3    100     10      64 x 128^2 -> 16 x 112^2, LARS, wd 1e-6
k400-ablation  1024   0.3    20      2       as k400 (the paper's ablation length)
gpu-check      64     0.019  300 st. 2       as k400, one GPU (the device check's curve)
smoke          8      1e-3   20 st.  --      16 x 48^2 -> 8 x 32^2, width 1/8, Adam,
                                             crop MLP lr x20, jitter after crop (CPU)
default-cpu    32     1e-3   300 st. 5       16 x 128^2 (stride 2) -> 8 x 112^2, S3D-G
                                             x1/4, Adam, blur, jitter after crop (CPU)
=============  =====  =====  ======  ======  ======================================

``default-cpu`` trains the embedded default model (``vsslzoo.DEFAULT_MODEL``) on a 2-core
CPU in about 80 minutes, on the corpus of :mod:`vsslzoo.training.data.corpus`::

    python -m vsslzoo.training.data.corpus corpus/
    python -m vsslzoo.training paramcrop --data corpus/train.csv --arch s3dg \\
        --preset default-cpu --workers 1 --out runs/default

On Linux, run it with jemalloc (Debian: ``apt-get install libjemalloc2``), prefixing the
command with ``LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1``: with glibc's malloc the large
per-step tensors go back to the kernel and are faulted in again every step, which spent
more than half of the process's CPU time in the kernel on the 2-core machine (measured:
5.4 s system against 4.4 s user in 5 s of wall time; with jemalloc 0.02 s system against
15.6 s user in 10 s). The weights do not depend on the allocator.

Its deviations from the paper (§4), each for a 2-core CPU and for retrieval of footage:

* S3D-G at width 1/4 (256-d embedding, 0.59 M parameters), 8 x 112^2 views cut from
  16-frame cubes at stride 2 (the paper: full S3D-G, 16 x 112^2 from 64 x 128^2). Chosen
  by measurement on the 2-core machine: 16.5 ms per clip for inference and ~6 s per
  training step of 32 videos, against 31-41 ms per clip for S3D-G x1/2, R(2+1)D-18 x1/4
  and R3D-18 x1/4 at the same input, and ~4x the step time for R-2D3D-18 x1/2.
* Adam (lr 1e-3, weight decay 1e-5, 5 epochs warm-up, cosine) at batch 32 instead of
  LARS at batch 1024: LARS at lr 0.3 x 32/1024 barely moves in a few hundred steps.
* Per-clip input standardisation (``normalize="clip"``: each clip minus its mean, over
  its standard deviation) instead of fixed mean/std: a brightness offset or contrast
  change of the whole video no longer moves the embedding. Measured on the held-out
  footage of ``bench/retrieval.py`` at step 175 of a run with the fixed statistics: a
  +35 brightness shift found its source 3 times in 12, against 11 in 12 for the naive
  thumbnail baseline, which is zero-mean by construction.
* The exported model standardises each *frame* by its own statistics
  (``export_normalize="frame"``; training standardises each clip): the same weights, whose
  input is nearly unchanged for footage of steady exposure, while a frame that flickers
  (old film, auto-exposure) no longer shifts the input of its whole clip. Measured with
  the 600-step weights (``bench/retrieval.py``, R@1 re-encode / flip / brightness / crop):
  16 held-out segments 0.94 / 0.94 / 0.94 / 0.81 per clip, 1.00 / 1.00 / 1.00 / 0.81 per
  frame (the one query that every variant missed comes from a flickering 1906 film); 61
  segments, mean 0.730 per clip, 0.725 per frame.
* Gaussian blur on half the views (sigma 0.1-1.5 px), so that low-resolution re-encodes
  embed near their source; flip and colour jitter after the crop (cheaper; they nearly
  commute with it).
* The exported backbone is flip-invariant (``flip_invariant=True``: a weight-free
  symmetrisation, twice the inference cost): measured at step 175 of the same run, flipped
  queries found their source 10 times in 12 instead of 5.
* 600 steps (100 epochs of the 201-video corpus, each epoch a new random cube per video)
  instead of 100 epochs of Kinetics-400. Measured on the held-out footage of
  ``bench/retrieval.py`` (mean R@1 over its four variants, 16 segments): 0.86 after a
  300-step run, 0.91 after this 600-step one (78 min of wall time on the 2-core
  machine), both with per-clip statistics at test time. 300 more steps in a second cosine
  cycle (``restarts=(600,)``, ``steps=900``: SGDR) did not help: 0.875 / 0.94 / 0.94 /
  0.81 (mean 0.89) against 1.00 / 1.00 / 1.00 / 0.81 on the 16 segments, both with
  per-frame statistics. Nor did training with per-frame statistics (``normalize="frame"``,
  600 steps): 0.875 / 1.00 / 1.00 / 0.94 (mean 0.95, but below the naive baseline's 0.94
  on re-encodes).

LARS (momentum 0.9, trust 0.001), linear warm-up then cosine decay (the schedule and the
warm-up length are not in the paper; SimCLR's). SimCLR τ = 0.1; MoCo τ = 0.2, queue
65,536, momentum 0.999. ParamCrop: scales in [0.5, 1], θ = 0, no aspect ratio,
b_detach = 0.2, gradient reversal on. Every choice the paper leaves open is listed in the
docstrings of :mod:`.crop`, :mod:`.model` and :mod:`.data`. The smoke preset uses Adam
and a 20x learning rate for the cropping MLPs, because LARS moves too little in a few
dozen steps to see anything on a CPU, and jitters after the crop (cheaper).

The run writes ``metrics.jsonl`` with the per-step disparity of the two views (``iou``,
``distance``: Figure 5), ``OUT/disparity.png`` (the plot) and the backbone as a vsslzoo
model folder ``OUT/model`` with the ParamCrop preprocessing: 16 frames at stride 2, short
side 128, centre crop 112 (what ``s_t = 0.5, s_p = 112/128`` at zero offsets crops from
the 64 x 128^2 input), mean 0.45 and std 0.225.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from vsslzoo.config import PreprocessConfig

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
from .crop import CropConfig
from .data import ParamCropDataConfig, paramcrop_sample
from .model import FRAMEWORKS, ParamCropConfig, ParamCropModel

ARCHITECTURES = ("s3dg", "r2d3d_18")
# the input statistics of the authors' code base (Alibaba's video SSL models; registry)
MEAN = (0.45, 0.45, 0.45)
STD = (0.225, 0.225, 0.225)


@dataclass(frozen=True)
class Preset:
    batch: int
    lr: float
    epochs: int | None
    warmup_epochs: int = 0
    steps: int | None = None  # fixed step count (smoke)
    restarts: tuple[int, ...] = ()  # cosine warm restarts at these steps (SGDR)
    width: float = 1.0
    optimizer: str = "lars"
    weight_decay: float = 1e-6
    out_frames: int = 16
    out_size: int = 112
    crop_lr_scale: float = 1.0
    queue_size: int = 65536
    moco_momentum: float = 0.999
    augment_after_crop: bool = False
    blur_prob: float = 0.0
    normalize: str = "dataset"  # the backbone's input normalisation (PreprocessConfig)
    export_normalize: str | None = None  # the exported model's, if not ``normalize``
    flip_invariant_export: bool = False  # export with model_args flip_invariant=True
    data: ParamCropDataConfig = field(default_factory=ParamCropDataConfig)


PRESETS = {
    "k400": Preset(batch=1024, lr=0.3, epochs=100, warmup_epochs=10),
    "k400-ablation": Preset(batch=1024, lr=0.3, epochs=20, warmup_epochs=2),
    # the device check's disparity curve: k400 settings at one GPU's batch, 300 steps
    "gpu-check": Preset(batch=64, lr=0.3 * 64 / 1024, epochs=None, warmup_epochs=2, steps=300),
    "smoke": Preset(
        batch=8, lr=1e-3, epochs=None, steps=20, width=0.125, optimizer="adam",
        weight_decay=0.0, out_frames=8, out_size=32, crop_lr_scale=20.0, queue_size=64,
        moco_momentum=0.9, augment_after_crop=True,
        data=ParamCropDataConfig(input_frames=16, input_size=48, short_sides=(48, 56)),
    ),
    # the embedded default model (vsslzoo.DEFAULT_MODEL), trained on this project's
    # corpus (python -m vsslzoo.training.data.corpus) on a 2-core CPU: see DEFAULT_CPU_NOTES
    "default-cpu": Preset(
        batch=32, lr=1e-3, epochs=None, steps=600, warmup_epochs=5, width=0.25,
        optimizer="adam", weight_decay=1e-5, out_frames=8, out_size=112,
        augment_after_crop=True, blur_prob=0.5, normalize="clip", export_normalize="frame",
        flip_invariant_export=True,
        data=ParamCropDataConfig(input_frames=16, input_stride=2, input_size=128,
                                 short_sides=(128, 160)),
    ),
}


def export_preprocess(data: ParamCropDataConfig, crop: CropConfig,
                      normalize: str = "dataset") -> PreprocessConfig:
    """The test-time input equivalent of a central ParamCrop: ``out_frames`` frames over
    ``fixed_temporal_scale`` of the input span, the centre ``out_size`` of ``input_size``."""
    span = data.input_frames * data.input_stride * crop.fixed_temporal_scale
    return PreprocessConfig(num_frames=crop.out_frames,
                            frame_stride=max(1, round(span / crop.out_frames)),
                            resize=data.input_size, crop=(crop.out_size, crop.out_size),
                            mean=MEAN, std=STD, normalize=normalize)


def build_configs(preset: Preset, *, framework: str = "simclr", seed: int = 0,
                  **options: Any) -> tuple[ParamCropDataConfig, ParamCropConfig]:
    """Data and model configs of a preset; ``options`` override fields of
    :class:`ParamCropDataConfig`, :class:`CropConfig` or :class:`ParamCropConfig` by
    name (an unknown name is a ValueError that lists the valid ones)."""
    fields = {kind: {f.name for f in dataclasses.fields(kind)}
              for kind in (ParamCropDataConfig, CropConfig, ParamCropConfig)}
    unknown = set(options) - set().union(*fields.values())
    if unknown:
        raise ValueError(f"unknown ParamCrop option(s) {sorted(unknown)}; valid: "
                         f"{sorted(set().union(*fields.values()))}")

    def pick(kind):
        return {k: v for k, v in options.items() if k in fields[kind]}

    data = dataclasses.replace(preset.data, **pick(ParamCropDataConfig))
    crop_options = {"out_frames": preset.out_frames, "out_size": preset.out_size,
                    "fixed_spatial_scale": preset.out_size / data.input_size,
                    **pick(CropConfig)}
    crop = CropConfig(**crop_options)
    model_options = {"queue_size": preset.queue_size, "moco_momentum": preset.moco_momentum,
                     "crop_lr_scale": preset.crop_lr_scale,
                     "augment_after_crop": preset.augment_after_crop,
                     "blur_prob": preset.blur_prob, **pick(ParamCropConfig)}
    model_options.pop("crop", None)
    model = ParamCropConfig(framework=framework, crop=crop, seed=seed, **model_options)
    return data, model


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = recipe_parser("paramcrop", __doc__)
    parser.add_argument("--arch", choices=ARCHITECTURES, default="s3dg")
    parser.add_argument("--framework", choices=FRAMEWORKS, default="simclr")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="k400")
    parser.add_argument("--no-temporal", action="store_true",
                        help="fix the temporal crop to the centre (Table 2)")
    parser.add_argument("--no-spatial", action="store_true",
                        help="fix the spatial crop to the centre (Table 2)")
    parser.add_argument("--no-grl", action="store_true",
                        help="no gradient reversal: the crops minimise the loss (Table 3)")
    parser.add_argument("--detach-bound", type=float, default=0.2,
                        help="b_detach of Eq. 7 in [0, 0.5]; 0 disables early stopping")
    parser.add_argument("--aspect-ratio", action="store_true",
                        help="learn the aspect ratio too (Table 5)")
    parser.add_argument("--rotation", action="store_true",
                        help="learn a rotation in +-rotation-max degrees (Table 5)")
    parser.add_argument("--rotation-max", type=float, default=30.0, help="degrees")
    parser.add_argument("--no-random-crop", action="store_true",
                        help="no random crop before ParamCrop (Table 2 rows without Rand.)")
    parser.add_argument("--temperature", type=float,
                        help="contrastive temperature (default 0.1 SimCLR, 0.2 MoCo)")
    parser.add_argument("--queue-size", type=int, help="MoCo queue length")
    parser.add_argument("--moco-momentum", type=float, help="MoCo key-encoder momentum")
    parser.add_argument("--crop-lr-scale", type=float,
                        help="lr multiplier of the cropping MLPs (default: the preset's)")
    return finish_args(parser, argv)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "temporal": not args.no_temporal, "spatial": not args.no_spatial,
        "grl": not args.no_grl, "detach_bound": args.detach_bound,
        "aspect_ratio": args.aspect_ratio, "rotation": args.rotation,
        "rotation_max": math.radians(args.rotation_max),
        "random_crop": not args.no_random_crop, "temperature": args.temperature,
    }
    for key in ("queue_size", "moco_momentum", "crop_lr_scale"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    return options


def main(argv: list[str] | None = None) -> dict[str, float]:
    import torch

    args = parse_args(argv)
    torch.manual_seed(args.seed)  # the initial weights too are a function of the seed
    preset = PRESETS[args.preset]
    total_batch = given_or(args.batch_size, preset.batch)
    try:
        data_config, model_config = build_configs(preset, framework=args.framework,
                                                  seed=args.seed, **_options(args))
    except ValueError as exc:
        raise bad_options(exc) from None
    width = given_or(args.width, preset.width)
    videos = discover(args.data)
    dataset = ClipDataset(videos, partial(paramcrop_sample, config=data_config),
                          seed=args.seed)
    steps, steps_per_epoch = schedule_steps(args, preset.steps, preset.epochs, len(videos),
                                            total_batch)
    warmup = min(preset.warmup_epochs * steps_per_epoch, steps - 1)
    preprocess = export_preprocess(data_config, model_config.crop, preset.normalize)
    model_args: dict[str, Any] = {} if width == 1.0 else {"width": width}
    # the exported backbone may add a weight-free symmetrisation (vsslzoo.models.build)
    export_args = ({**model_args, "flip_invariant": True} if preset.flip_invariant_export
                   else model_args)
    model = ParamCropModel(args.arch, model_args, preprocess, model_config)
    if preset.export_normalize is not None:  # the same weights, run with other statistics
        preprocess = dataclasses.replace(preprocess, normalize=preset.export_normalize)
    lr = given_or(args.lr, preset.lr * total_batch / preset.batch)
    config = train_config(
        args, steps=steps, batch_size=per_process_batch(total_batch), lr=lr,
        optimizer=preset.optimizer, momentum=0.9, weight_decay=preset.weight_decay,
        schedule="cosine", warmup_steps=warmup, restarts=list(preset.restarts))
    export = backbone_exporter(
        "paramcrop", args, args.arch, export_args, preprocess,
        notes=lambda: (f"{args.framework}, preset {args.preset}, {trainer.step} steps, "
                       f"batch {total_batch}"))
    trainer = make_trainer(args, config, model, dataset, export, data_config=data_config,
                           model_config=model_config)
    result = run_or_export(trainer, args, export)
    metrics = Path(args.out) / "metrics.jsonl"
    if trainer.rank == 0 and not args.export_only and metrics.exists():
        from .plot import plot_disparity

        try:
            plot_disparity(metrics, Path(args.out) / "disparity.png")
        except ImportError as exc:
            print(f"note: no disparity.png: {exc}; draw it later with "
                  f"python -m vsslzoo.training.paramcrop.plot {args.out}")
    return result


def benchmark_setup(arch: str, batch_size: int, device, **options: Any):
    """``(model, make_batch)`` for timing one optimiser step without decoding.

    ``model``: the full training module (:class:`ParamCropModel`, train mode, on
    ``device``) at the paper's sizes (64 x 128^2 input cubes, 16 x 112^2 views) unless
    ``options`` override them; ``options`` also take ``framework`` ("simclr"), ``width``
    and any field of the data / crop / model configs (e.g. ``input_frames``,
    ``input_size``, ``out_frames``, ``out_size``, ``queue_size``). ``make_batch()``: a
    dict ``video1``, ``video2`` of random uint8 ``(batch_size, 3, T_in, S_in, S_in)`` on
    ``device``, as the DataLoader delivers them."""
    import torch

    framework = options.pop("framework", "simclr")
    width = options.pop("width", 1.0)
    preset = options.pop("preset", "k400")
    data_config, model_config = build_configs(PRESETS[preset], framework=framework,
                                              **options)
    preprocess = export_preprocess(data_config, model_config.crop)
    model_args = {} if width == 1.0 else {"width": width}
    model = ParamCropModel(arch, model_args, preprocess, model_config).to(device).train()
    shape = (batch_size, 3, data_config.input_frames, data_config.input_size,
             data_config.input_size)

    def make_batch() -> dict[str, torch.Tensor]:
        return {key: torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
                for key in ("video1", "video2")}

    return model, make_batch
