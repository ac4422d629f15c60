"""The training loop every recipe shares: DDP, bf16, schedules, checkpoints, logs, export.

A recipe gives the trainer a ``model`` (an ``nn.Module`` whose ``forward(batch)``
returns a dict with ``loss`` and any scalar metrics), a dataset of sample dicts, and a
function that exports the trained backbone. Two optional model methods:

* ``param_groups()`` -> list of optimiser parameter-group dicts (e.g. another learning
  rate for an adversary, or no weight decay for some tensors); default: all parameters
  in one group. A group's ``lr_scale`` multiplies the scheduled learning rate.
* ``after_step(step)``: called after every optimiser step (e.g. a momentum-encoder
  update); it must be deterministic so that ``--resume`` stays exact.

The trainer:

* joins a ``torchrun`` process group when ``WORLD_SIZE > 1`` (NCCL on GPUs, gloo on CPU),
  wraps the model in DDP (optionally with BatchNorm over the global batch,
  :func:`~.distributed.sync_batch_norm`) and shards the data with a DistributedSampler;
  :meth:`Trainer.close` leaves the process group (a process that exits inside one may
  abort in its destructors);
* decodes in DataLoader workers started with ``spawn`` (FFmpeg threads and ``fork`` do
  not mix: a forked child inherits the locks of the parent's decoder threads but not the
  threads; Python's ``multiprocessing`` docs, "Contexts and start methods"), skipping and
  counting broken videos;
* follows a per-iteration learning-rate array, bf16 autocast, gradient clipping;
  stops with ``FloatingPointError`` on every process together when the loss of any
  process is not finite;
* writes ``metrics.jsonl`` (one object per logged step: ``step``, ``loss``, ``lr``,
  ``clips_per_s``, ``videos_per_s``, ``skipped_videos`` and the model's metrics; losses
  and metrics are means over the steps since the last record and over the processes,
  counts and rates are totals over all processes, ``skipped_videos`` counts since this
  process started), TensorBoard events when tensorboard is installed, and a progress
  bar on a terminal; when stdout is not a terminal (a log file, a script), one line per
  logged step (step, loss, lr, clips/s, ETA) and a last line naming the exported model;
* saves ``checkpoint.pt`` (model, optimiser, step, config, RNG) atomically every
  ``checkpoint_every`` steps and at the end; ``resume`` continues from it, and
  ``metrics.jsonl`` keeps only the records up to the step it resumes from;
* exports the backbone to ``OUT/model`` (a vsslzoo model folder) at the end.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vsslzoo.errors import ConfigError

from .data.datasets import collate_skipping_broken
from .data.sampler import EpochSampler
from .distributed import launched, sync_batch_norm
from .optim import build_optimizer, lr_schedule

CHECKPOINT = "checkpoint.pt"


@dataclass
class TrainConfig:
    out: str
    steps: int
    batch_size: int  # per process
    lr: float
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    milestones: list[int] = field(default_factory=list)
    restarts: list[int] = field(default_factory=list)  # cosine warm restarts (SGDR), steps
    warmup_steps: int = 0
    grad_clip: float | None = None
    bf16: bool = False
    sync_bn: bool = False
    workers: int = 0
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 500
    max_steps: int | None = None  # stop early (the schedule still spans ``steps``)


def clips_in(batch: dict[str, Any]) -> int:
    """Clips a batch holds: for every pixel tensor ``(..., 3, T, H, W)`` the product of its
    leading dimensions (a model whose views are made on the device, e.g. ParamCrop's two
    crops of one decoded cube, says so with a ``clips_per_video`` attribute instead)."""
    total = 0
    for value in batch.values():
        if isinstance(value, torch.Tensor) and value.ndim >= 5 and value.shape[-4] == 3:
            total += int(torch.tensor(value.shape[:-4]).prod())
    return total


def _git_sha() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class Trainer:
    def __init__(self, config: TrainConfig, model: nn.Module, dataset,
                 export: Callable[[nn.Module, Path], None] | None = None,
                 run_info: dict[str, Any] | None = None) -> None:
        self.config = config
        self.out = Path(config.out)
        self.export = export
        self.run_info = run_info or {}
        self.rank, self.world, local_rank = launched()
        if torch.cuda.is_available():
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        self._owns_group = False
        if self.world > 1 and not torch.distributed.is_initialized():
            backend = "nccl" if self.device.type == "cuda" else "gloo"
            torch.distributed.init_process_group(backend)
            self._owns_group = True
        torch.manual_seed(config.seed)
        if config.sync_bn and self.world > 1:
            model = sync_batch_norm(model, self.device)
        self.model = model.to(self.device)
        self.wrapped = (nn.parallel.DistributedDataParallel(
            self.model, device_ids=[local_rank] if self.device.type == "cuda" else None)
            if self.world > 1 else self.model)
        groups = (self.model.param_groups() if hasattr(self.model, "param_groups")
                  else self.model.parameters())
        self.optimizer = build_optimizer(config.optimizer, groups,
                                         lr=config.lr, momentum=config.momentum,
                                         weight_decay=config.weight_decay)
        self.lrs = lr_schedule(config.lr, config.steps, warmup_steps=config.warmup_steps,
                               kind=config.schedule, milestones=config.milestones,
                               restarts=config.restarts)
        self.dataset = dataset
        self.sampler = EpochSampler(
            len(dataset), num_replicas=self.world, rank=self.rank, seed=config.seed,
            batch_size=config.batch_size, with_epoch=getattr(dataset, "takes_epoch", False))
        self.loader = torch.utils.data.DataLoader(
            dataset, batch_size=config.batch_size, sampler=self.sampler,
            num_workers=config.workers, collate_fn=collate_skipping_broken, drop_last=True,
            multiprocessing_context="spawn" if config.workers > 0 else None,
            persistent_workers=config.workers > 0)
        self.step = 0
        # where the data stream stands: the epoch, and the loader batches of it consumed
        # (trained on or skipped as empty); a resume starts the sampler exactly there
        self.epoch = 0
        self.epoch_batches = 0

    # -- checkpoints -------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "step": self.step, "epoch": self.epoch,
                 "epoch_batches": self.epoch_batches, "config": asdict(self.config),
                 "torch_rng": torch.get_rng_state()}
        tmp = self.out / f".{CHECKPOINT}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, self.out / CHECKPOINT)

    def load_checkpoint(self) -> bool:
        path = self.out / CHECKPOINT
        if not path.exists():
            return False
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        if "epoch" in state:
            self.epoch, self.epoch_batches = int(state["epoch"]), int(state["epoch_batches"])
        else:  # a checkpoint from before the position was recorded
            self.epoch, self.epoch_batches = divmod(self.step, self._batches_per_epoch())
        torch.set_rng_state(state["torch_rng"].cpu())
        return True

    def _batches_per_epoch(self) -> int:
        return max(self.sampler.per_epoch // self.config.batch_size, 1)

    # -- the loop ----------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, float]:
        config = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and self.load_checkpoint() and self.rank == 0:
            print(f"resumed from {self.out / CHECKPOINT} at step {self.step}", flush=True)
        stop = config.steps if config.max_steps is None else min(config.steps, config.max_steps)
        if self.rank == 0:
            info = {"git": _git_sha(), "world_size": self.world, "config": asdict(config),
                    **self.run_info}
            (self.out / "run.json").write_text(json.dumps(info, indent=2) + "\n")
            print(json.dumps(info), flush=True)
        writer = self._tensorboard()
        bar = self._progress(stop)
        if self.rank == 0:
            self._trim_metrics()
        log = open(self.out / "metrics.jsonl", "a") if self.rank == 0 else None  # noqa: SIM115
        # one line per logged step where no progress bar is seen (a log file, a script)
        lines = self.rank == 0 and not sys.stdout.isatty()
        sums: dict[str, float] = {}
        counts: dict[str, int] = {}
        clips, videos, skipped = 0, 0, 0  # this process's, reduced over processes to log
        tick = started = time.perf_counter()
        first_step = self.step
        last: dict[str, float] = {}
        self.model.train()
        try:
            while self.step < stop:
                # resume mid-epoch exactly: the same epoch's order, starting after the
                # batches already consumed (skipped by index: nothing is decoded for them)
                self.sampler.set_epoch(self.epoch, skip_batches=self.epoch_batches)
                if hasattr(self.dataset, "set_epoch"):
                    self.dataset.set_epoch(self.epoch)
                usable = self.epoch_batches  # batches trained on this epoch (or before resume)
                for batch in self.loader:
                    if self.step >= stop:
                        break
                    self.epoch_batches += 1
                    usable += 1
                    skipped += batch.pop("skipped", 0)
                    empty = torch.tensor([0 if batch else 1], device=self.device)
                    if self.world > 1:  # skip on every rank together, or DDP deadlocks
                        torch.distributed.all_reduce(empty)
                    if int(empty):
                        usable -= 1
                        continue
                    batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
                    for group in self.optimizer.param_groups:
                        group["lr"] = float(self.lrs[self.step]) * group.get("lr_scale", 1.0)
                    with torch.autocast(self.device.type, dtype=torch.bfloat16,
                                        enabled=config.bf16):
                        outputs = self.wrapped(batch)
                    loss = outputs["loss"]
                    self._check_finite(outputs)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if config.grad_clip:
                        nn.utils.clip_grad_norm_(self.model.parameters(), config.grad_clip)
                    self.optimizer.step()
                    if hasattr(self.model, "after_step"):
                        self.model.after_step(self.step)
                    self.step += 1
                    rows = next(iter(batch.values())).shape[0]
                    videos += rows
                    clips += (rows * self.model.clips_per_video
                              if hasattr(self.model, "clips_per_video") else clips_in(batch))
                    for key, value in outputs.items():
                        sums[key] = sums.get(key, 0.0) + float(value.detach())
                        counts[key] = counts.get(key, 0) + 1
                    if self.step % config.log_every == 0 or self.step == stop:
                        elapsed = time.perf_counter() - tick
                        last, totals = self._reduce_log(sums, counts,
                                                        (clips, videos, skipped))
                        record = {"step": self.step, **last,
                                  "lr": float(self.lrs[self.step - 1]),
                                  "clips_per_s": totals[0] / max(elapsed, 1e-9),
                                  "videos_per_s": totals[1] / max(elapsed, 1e-9),
                                  "skipped_videos": totals[2]}
                        if log is not None:
                            log.write(json.dumps(record) + "\n")
                            log.flush()
                        if writer is not None:
                            for key, value in record.items():
                                writer.add_scalar(f"train/{key}", value, self.step)
                        if bar is not None:
                            bar.set_postfix(loss=f"{last['loss']:.4f}",
                                            lr=f"{record['lr']:.2e}",
                                            clips_s=f"{record['clips_per_s']:.1f}")
                        if lines:
                            per_step = (time.perf_counter() - started) / (self.step - first_step)
                            eta = datetime.timedelta(seconds=round(per_step * (stop - self.step)))
                            print(f"step {self.step}/{stop}  loss {last['loss']:.4f}  "
                                  f"lr {record['lr']:.3g}  clips/s {record['clips_per_s']:.1f}  "
                                  f"ETA {eta}", flush=True)
                        sums, counts, clips, videos = {}, {}, 0, 0
                        tick = time.perf_counter()
                    if bar is not None:
                        bar.update(1)
                    if self.step % config.checkpoint_every == 0:
                        self.save_checkpoint()
                if usable == 0 and self.step < stop:
                    raise ConfigError(
                        f"a whole epoch gave no usable batch: {len(self.dataset)} videos, "
                        f"batch {config.batch_size} per process, {skipped} skipped as broken "
                        "or too short for this recipe's clip sampling; check --data")
                if self.step < stop:
                    self.epoch, self.epoch_batches = self.epoch + 1, 0
        finally:
            if bar is not None:
                bar.close()
            if log is not None:
                log.close()
            if writer is not None:
                writer.close()
        self.save_checkpoint()
        if self.world > 1:
            self._record_rank_agreement()
        if self.rank == 0 and self.export is not None and self.step >= stop:
            self.export(self.model, self.out / "model")
            print(f"exported the trained backbone to {self.out / 'model'}", flush=True)
        if self.world > 1:
            torch.distributed.barrier()
        return last

    def close(self) -> None:
        """Leave the process group this trainer joined (if it joined one). A process
        that exits with the group alive can abort in its destructors ("terminate called
        without an active exception")."""
        if self._owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        self._owns_group = False

    def _check_finite(self, outputs: dict[str, torch.Tensor | float]) -> None:
        """Raise on every process together when any process's loss, or any other output
        it logs, is not finite (a process raising alone leaves the others waiting in DDP's
        gradient all-reduce). The other outputs count too: a network that turned NaN can
        leave the loss finite (a ParamCrop run's crop network did, its IoU went NaN while
        the NT-Xent loss sat at chance), and would otherwise train on unnoticed."""
        names = list(outputs)
        values = torch.stack([torch.as_tensor(outputs[k], dtype=torch.float32,
                                              device=self.device).detach().reshape(())
                              for k in names])
        bad = torch.zeros(self.world, len(names), device=self.device)
        bad[self.rank] = (~torch.isfinite(values)).float()
        if self.world > 1:
            torch.distributed.all_reduce(bad)
        if bad.any():
            ranks = bad.any(dim=1).nonzero().flatten().tolist()
            keys = [names[k] for k in bad.any(dim=0).nonzero().flatten().tolist()]
            what = "loss is" if "loss" in keys else \
                f"{', '.join(keys)} {'is' if len(keys) == 1 else 'are'}"
            where = f" on process(es) {ranks}" if self.world > 1 else ""
            mine = {k: round(float(v), 6) for k, v in zip(names, values.tolist())}
            raise FloatingPointError(f"{what} not finite at step {self.step}{where} "
                                     f"(this process's outputs: {mine})")

    def _reduce_log(self, sums: dict[str, float], counts: dict[str, int],
                    totals: tuple[int, ...]) -> tuple[dict[str, float], tuple[int, ...]]:
        """Means of the logged outputs over steps and processes, and the sums of
        ``totals`` (clips, videos, skipped videos) over processes. Outputs a process did
        not return at some step (e.g. a term with no pair that iteration) are averaged
        over the steps that returned them."""
        parts = [(sums, counts, totals)]
        if self.world > 1:
            parts = [None] * self.world
            torch.distributed.all_gather_object(parts, (sums, counts, totals))
        merged_sums: dict[str, float] = {}
        merged_counts: dict[str, int] = {}
        for part_sums, part_counts, _ in parts:
            for key, value in part_sums.items():
                merged_sums[key] = merged_sums.get(key, 0.0) + value
                merged_counts[key] = merged_counts.get(key, 0) + part_counts[key]
        means = {key: value / merged_counts[key] for key, value in merged_sums.items()}
        return means, tuple(sum(column) for column in zip(*(t for *_, t in parts)))

    def _trim_metrics(self) -> None:
        """Keep the ``metrics.jsonl`` records up to the step training starts from: after
        a resume the steps past the checkpoint are trained (and logged) again."""
        path = self.out / "metrics.jsonl"
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                step = json.loads(line)["step"]
            except (ValueError, KeyError, TypeError):  # e.g. a line torn by a crash
                continue
            if step <= self.step:
                kept.append(line + "\n")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)

    def _record_rank_agreement(self) -> None:
        """Largest difference between any rank's parameters and rank 0's
        (``ranks_max_weight_difference``: DDP keeps them equal; non-zero means the
        replicas diverged) and between its buffers and rank 0's
        (``ranks_max_buffer_difference``), written to run.json. DDP copies rank 0's
        buffers to every rank before each forward pass, and each rank's forward pass then
        updates its own: BatchNorm running statistics differ after the last step unless
        ``sync_bn`` computes them over the global batch (rank 0's are the ones
        checkpointed); buffers a model keeps equal on every rank (a MoCo queue, counters)
        stay at 0."""
        worst = {"weight": torch.zeros((), device=self.device),
                 "buffer": torch.zeros((), device=self.device)}
        tensors = [("weight", t) for t in self.model.parameters()] + \
                  [("buffer", t) for t in self.model.buffers()]
        for kind, tensor in tensors:
            reference = tensor.detach().clone()
            torch.distributed.broadcast(reference, src=0)
            if not reference.numel():
                continue
            difference = (tensor.detach().double() - reference.double()).abs().max()
            worst[kind] = torch.maximum(worst[kind], difference.to(worst[kind].dtype))
        for value in worst.values():
            torch.distributed.all_reduce(value, op=torch.distributed.ReduceOp.MAX)
        if self.rank == 0:
            path = self.out / "run.json"
            info = json.loads(path.read_text())
            info["ranks_max_weight_difference"] = float(worst["weight"])
            info["ranks_max_buffer_difference"] = float(worst["buffer"])
            path.write_text(json.dumps(info, indent=2) + "\n")

    def _tensorboard(self):
        if self.rank != 0:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is in the `train` extra
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def _progress(self, stop: int):
        if self.rank != 0:
            return None
        from tqdm import tqdm

        return tqdm(total=stop, initial=self.step, unit="step", disable=None,
                    dynamic_ncols=True)
