"""What every recipe's command line shares: common flags, ``--resume``, export of the backbone.

A recipe (``ctp``, ``paramcrop``, ``ca``, ``corp``) adds its own flags to the parser
from :func:`recipe_parser`, calls :func:`finish_args` (which restores a resumed run's
flags from ``RUN/run.json`` unless given again), builds its model and dataset, and hands
:func:`backbone_exporter` to the :class:`~.trainer.Trainer`. :func:`run_or_export` then
trains, or with ``--export-only`` writes ``RUN/model`` from the last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

# flags that describe this invocation only, never restored from run.json on --resume
_NOT_RESTORED = ("resume", "max_steps", "export_only")


def recipe_parser(method: str, description: str, *, default_workers: int = 4
                  ) -> argparse.ArgumentParser:
    """A parser with the flags every recipe has; the recipe adds ``--arch``,
    ``--preset`` and its own."""
    parser = argparse.ArgumentParser(prog=f"python -m vsslzoo.training {method}",
                                     description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="video folder, class/video tree, or CSV path[,label]")
    parser.add_argument("--out", help="run folder (checkpoints, logs, model/)")
    parser.add_argument("--resume", metavar="RUN", help="continue the run in this folder")
    parser.add_argument("--max-steps", type=int, help="stop after this many steps")
    parser.add_argument("--steps", type=int,
                        help="length of the schedule in steps (default: the preset's epochs)")
    parser.add_argument("--batch-size", type=int, help="total batch (default: the preset's)")
    parser.add_argument("--lr", type=float, help="learning rate (default: the preset's)")
    parser.add_argument("--width", type=float, help="backbone width multiplier")
    parser.add_argument("--workers", type=int, default=default_workers,
                        help="decoding workers per process")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast")
    parser.add_argument("--sync-bn", action="store_true", help="SyncBatchNorm under DDP")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--export-only", action="store_true",
                        help="with --resume: export the last checkpoint to RUN/model, no training")
    return parser


def finish_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse; on ``--resume RUN`` take every flag not given again from ``RUN/run.json``."""
    args = parser.parse_args(argv)
    if args.export_only and not args.resume:
        parser.error("--export-only needs --resume RUN")
    if args.resume:
        run_json = Path(args.resume) / "run.json"
        if not run_json.exists():
            parser.error(f"--resume {args.resume}: no run.json there (not a run folder)")
        saved = json.loads(run_json.read_text())["args"]
        for key, value in saved.items():
            if key not in _NOT_RESTORED and hasattr(args, key) and \
                    getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
        args.out = args.resume
    if not args.data or not args.out:
        parser.error("--data and --out are required (or --resume RUN)")
    return args


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def per_process_batch(total: int) -> int:
    world = world_size()
    if total % world:
        raise SystemExit(f"batch {total} is not divisible by {world} processes")
    return total // world


def backbone_exporter(method: str, args: argparse.Namespace, architecture: str,
                      model_args: dict[str, Any], preprocess, *, notes: Callable[[], str],
                      attribute: str = "backbone") -> Callable[[Any, Path], None]:
    """``export(trained_model, folder)``: writes ``trained_model.<attribute>`` as a vsslzoo
    model folder (config.json + model.safetensors) that ``vsslzoo.load`` accepts.
    ``notes()`` is called at export time (e.g. to include the step reached)."""

    def export(trained, folder: Path) -> None:
        from vsslzoo.artefacts import build_network, save_pretrained
        from vsslzoo.config import ModelConfig, Provenance

        backbone = getattr(trained, attribute)
        config = ModelConfig(
            architecture=architecture, model_args=dict(model_args),
            embed_dim=backbone.embed_dim, preprocess=preprocess,
            name=f"{method}-{architecture.replace('_', '')}-run",
            provenance=Provenance(
                kind="trained", method=method, data=str(args.data),
                source=f"python -m vsslzoo.training {method} (run {args.out})",
                notes=notes()))
        network = build_network(config)
        network.load_state_dict(backbone.state_dict())  # strict: names every mismatch
        save_pretrained(network, config, folder)

    return export


def run_or_export(trainer, args: argparse.Namespace, export: Callable[[Any, Path], None]
                  ) -> dict[str, float]:
    """Train (resuming with ``--resume``), or with ``--export-only`` export the last
    checkpoint to ``RUN/model``."""
    if args.export_only:
        if not trainer.load_checkpoint():
            raise SystemExit(f"no checkpoint in {args.out}")
        export(trainer.model, Path(args.out) / "model")
        print(f"exported step {trainer.step} to {Path(args.out) / 'model'}")
        return {}
    return trainer.fit(resume=bool(args.resume))
