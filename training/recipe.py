"""What every recipe's command line shares: common flags, ``--resume``, export of the backbone.

A recipe (``ctp``, ``paramcrop``, ``ca``, ``corp``) adds its own flags to the parser
from :func:`recipe_parser`, calls :func:`finish_args` (which restores a resumed run's
flags from ``RUN/run.json`` unless given again), builds its model and dataset, and hands
:func:`backbone_exporter` to the :class:`~.trainer.Trainer`. :func:`run_or_export` then
trains, or with ``--export-only`` writes ``RUN/model`` from the last checkpoint.

Resuming: run.json records every flag's value (``args``) and which flags were given on
the command line (``args.given``); ``--data`` is recorded as an absolute path. A resumed
run takes every flag it is not given again from there, except the ones that describe one
invocation (``--resume``, ``--max-steps``, ``--export-only``) and ``--workers`` when the
first run left it at its default (the default follows the machine). A run.json from
before ``given`` was recorded restores every flag not given again.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vsslzoo.errors import ConfigError

# flags that describe this invocation only, never restored from run.json on --resume
_NOT_RESTORED = ("resume", "max_steps", "export_only", "given")
# flags whose default depends on the machine: restored only if the first run gave them
_MACHINE_DEFAULTS = ("workers",)


def default_workers() -> int:
    """Decoding workers per process when ``--workers`` is not given: the cores this
    process may use (its CPU affinity, shared among ``torchrun``'s processes on the
    node), less one for the training step itself, at most 4 (the decoding of one
    video per worker keeps pace with a GPU step at the smaller presets; give more for the
    paper-size presets). 2 cores: 1 worker; 1 core: 0 (decode in the training process)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    per_process = cores // max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return max(0, min(4, per_process - 1))


def given_or(value: Any, default: Any) -> Any:
    """``value`` unless it is None (a flag not given): an explicit 0 is kept."""
    return default if value is None else value


def bad_options(error: Exception) -> ConfigError:
    """A recipe's invalid combination of options (a ValueError from a config's checks)
    as the error ``python -m vsslzoo.training`` reports in one line."""
    return ConfigError(f"invalid options: {error}")


def recipe_parser(method: str, description: str, *, workers: int | None = None
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
    workers = default_workers() if workers is None else workers
    parser.add_argument("--workers", type=int, default=workers,
                        help=f"decoding workers per process (default here: {workers}, the "
                             "usable cores less one, at most 4)")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False,
                        help="bf16 autocast")
    parser.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=None,
                        help="BatchNorm statistics over all processes under DDP (default: "
                             "the preset's; off unless it says otherwise)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--checkpoint-every", type=int, default=1000)
    parser.add_argument("--export-only", action="store_true",
                        help="with --resume: export the last checkpoint to RUN/model, no training")
    return parser


def given_flags(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The destinations of the options present in ``argv`` (whatever their values)."""
    defaults = {action: action.default for action in parser._actions}
    try:
        for action in defaults:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        for action, default in defaults.items():
            action.default = default


def finish_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse; on ``--resume RUN`` take the flags not given again from ``RUN/run.json``
    (see the module docstring); check the common flags' values."""
    args = parser.parse_args(argv)
    given = given_flags(parser, argv)
    if args.export_only and not args.resume:
        parser.error("--export-only needs --resume RUN")
    if args.data and "data" in given:  # recorded absolute: a resume may start elsewhere
        args.data = os.path.abspath(args.data)
    if args.resume:
        run_json = Path(args.resume) / "run.json"
        if not run_json.exists():
            parser.error(f"--resume {args.resume}: no run.json there (not a run folder)")
        saved = json.loads(run_json.read_text())["args"]
        first_given = set(saved["given"]) if "given" in saved else None
        for key, value in saved.items():
            if key in _NOT_RESTORED or key in given or not hasattr(args, key):
                continue
            if key in _MACHINE_DEFAULTS and first_given is not None and \
                    key not in first_given:
                continue
            setattr(args, key, value)
        given |= first_given or set()
        args.out = args.resume
    args.given = sorted(given - {"resume", "max_steps", "export_only"})
    if not args.data or not args.out:
        parser.error("--data and --out are required (or --resume RUN)")
    checks = {"batch_size": (1, "a positive number of videos"),
              "steps": (1, "a positive number of steps"),
              "max_steps": (0, ">= 0"), "lr": (0, ">= 0"), "workers": (0, ">= 0"),
              "log_every": (1, ">= 1"), "checkpoint_every": (1, ">= 1")}
    for key, (low, wanted) in checks.items():
        value = getattr(args, key)
        if value is not None and value < low:
            parser.error(f"--{key.replace('_', '-')} {value}: must be {wanted}")
    if args.width is not None and args.width <= 0:
        parser.error(f"--width {args.width}: must be > 0 (a backbone width multiplier)")
    return args


def per_process_batch(total: int) -> int:
    """The batch of each process for a ``total`` batch over every process."""
    from .distributed import launched

    world = launched()[1]
    if total % world:
        raise SystemExit(f"batch {total} is not divisible by {world} processes")
    return total // world


def schedule_steps(args: argparse.Namespace, preset_steps: int | None,
                   preset_epochs: int | None, videos: int, total_batch: int
                   ) -> tuple[int, int]:
    """``(steps, steps per epoch)``: ``--steps`` if given, else the preset's fixed step
    count, else its epochs over ``videos`` at ``total_batch``."""
    per_epoch = max(videos // total_batch, 1)
    return given_or(args.steps, preset_steps or preset_epochs * per_epoch), per_epoch


def train_config(args: argparse.Namespace, **recipe: Any):
    """The :class:`~.trainer.TrainConfig` of a run: the recipe's settings (``steps``,
    ``batch_size``, ``lr``, optimiser, schedule, ...) and the common flags' values."""
    from .trainer import TrainConfig

    common = {"out": args.out, "bf16": args.bf16, "sync_bn": bool(args.sync_bn),
              "workers": args.workers, "seed": args.seed, "log_every": args.log_every,
              "checkpoint_every": args.checkpoint_every, "max_steps": args.max_steps}
    return TrainConfig(**{**common, **recipe})


def make_trainer(args: argparse.Namespace, config, model, dataset,
                 export: Callable[[Any, Path], None], **configs: Any):
    """The :class:`~.trainer.Trainer` of a run; run.json records the flags (``args``),
    the number of videos and each of ``configs`` (dataclasses) under its name."""
    import dataclasses

    from .trainer import Trainer

    run_info = {"args": vars(args), "videos": len(dataset),
                **{name: dataclasses.asdict(value) for name, value in configs.items()}}
    return Trainer(config, model, dataset, export=export, run_info=run_info)


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
    checkpoint to ``RUN/model``; leave the process group at the end either way."""
    try:
        if args.export_only:
            if not trainer.load_checkpoint():
                raise SystemExit(f"no checkpoint in {args.out}")
            if trainer.rank == 0:
                export(trainer.model, Path(args.out) / "model")
                print(f"exported step {trainer.step} to {Path(args.out) / 'model'}")
            return {}
        return trainer.fit(resume=bool(args.resume))
    finally:
        trainer.close()
