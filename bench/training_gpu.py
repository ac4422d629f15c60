"""GPU check of the pretraining recipes (a benchmark, not a test): one script, one run.

For each recipe check it measures, side by side in one run:

1. **throughput**: full training steps (forward, backward, optimiser step, the recipe's
   ``after_step``) on random batches at the paper's input sizes, from the recipe's
   ``benchmark_setup`` (no decoding, so the numbers are the model's): iterations/s,
   clips/s (every clip the step consumes, e.g. both views of SimCLR) and peak GPU memory,
   in bf16 autocast. With ``largest_batch`` the batch is doubled until it no longer fits
   and the largest that ran is reported (and said so);
2. **curves** (``--curves``): a few hundred real iterations of the recipe's command line
   on synthetic motion videos (decoded by DataLoader workers), summarised from its
   ``metrics.jsonl`` (first / last values of the logged loss terms and metrics).

    python bench/training_gpu.py --out /tmp/gpu_check --curves        # the device check
    python bench/training_gpu.py --only corp --device cpu --tiny      # try the script on CPU
    python bench/training_gpu.py --device cpu --skip-throughput --curves \
        --curve-preset smoke --curve-steps 60 --videos 32 --frames 48 --size 128 96 \
        --workers 1 --log-every 5 --no-bf16                        # the CPU smoke curves

Prints one JSON object per measurement and a markdown table at the end (paste it into
``training/RESULTS.md`` with the command line and machine).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Check:
    """One throughput measurement: ``training.<recipe>.train.benchmark_setup(arch, batch,
    device, **options)`` and the optimiser the recipe's full-scale preset uses."""

    name: str
    recipe: str
    arch: str
    batch: int
    optimizer: str
    lr: float
    options: dict[str, Any] = field(default_factory=dict)
    largest_batch: bool = False
    tiny: dict[str, Any] = field(default_factory=dict)  # --tiny overrides (CPU dry run)


CHECKS = [
    Check("paramcrop-simclr-s3dg", "paramcrop", "s3dg", 64, "lars", 0.3 * 64 / 1024,
          {"framework": "simclr"}, tiny={"width": 0.125, "preset": "smoke"}),
    Check("ca-r3d18", "ca", "r3d_18", 128, "adam", 1e-3, {},
          largest_batch=False, tiny={"width": 0.125, "tiny": True}),
    Check("corp-f-r3d50", "corp", "r3d_50", 16, "lars", 16 / 256, {"variant": "f"},
          largest_batch=True, tiny={"width": 0.125, "tiny": True}),
]

# A few hundred real iterations per recipe on synthetic videos (--curves).
CURVES = {
    "paramcrop": ["--arch", "s3dg", "--framework", "simclr"],
    "ca": ["--arch", "r3d_18"],
    "corp": ["--variant", "f", "--arch", "r3d_50"],
}


def time_steps(check: Check, batch_size: int, device, *, steps: int, warmup: int,
               bf16: bool, tiny: bool) -> dict[str, Any]:
    import torch

    from vsslzoo.training.optim import build_optimizer
    from vsslzoo.training.trainer import clips_in

    module = importlib.import_module(f"vsslzoo.training.{check.recipe}.train")
    options = {**check.options, **(check.tiny if tiny else {})}
    model, make_batch = module.benchmark_setup(check.arch, batch_size, device, **options)
    model = model.to(device).train()
    groups = model.param_groups() if hasattr(model, "param_groups") else model.parameters()
    optimizer = build_optimizer(check.optimizer, groups, lr=check.lr, momentum=0.9,
                                weight_decay=1e-6)
    cuda = torch.device(device).type == "cuda"
    clips = 0
    start = time.perf_counter()
    for index in range(warmup + steps):
        if index == warmup:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
        batch = make_batch()
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            outputs = model(batch)
        optimizer.zero_grad(set_to_none=True)
        outputs["loss"].backward()
        optimizer.step()
        if hasattr(model, "after_step"):
            model.after_step(index)
        if index >= warmup:
            rows = next(iter(batch.values())).shape[0]
            clips += (rows * model.clips_per_video if hasattr(model, "clips_per_video")
                      else clips_in(batch))
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    result = {"check": check.name, "batch": batch_size, "bf16": bf16,
              "iterations_per_s": steps / elapsed, "clips_per_s": clips / elapsed,
              "clips_per_step": clips // steps,
              "loss": float(outputs["loss"].detach().float())}
    if cuda:
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    del model, optimizer, outputs
    return result


def throughput(check: Check, device, args) -> dict[str, Any]:
    import torch

    if not check.largest_batch:
        return time_steps(check, check.batch, device, steps=args.steps, warmup=args.warmup,
                          bf16=args.bf16, tiny=args.tiny)
    best, batch = None, check.batch
    while True:
        try:
            result = time_steps(check, batch, device, steps=args.steps, warmup=args.warmup,
                                bf16=args.bf16, tiny=args.tiny)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            break
        best = result
        print(json.dumps(result), flush=True)
        if torch.device(device).type != "cuda" or batch >= args.max_batch:
            break
        batch *= 2
        torch.cuda.empty_cache()
    if best is None:
        raise SystemExit(f"{check.name}: batch {check.batch} does not fit")
    best["largest_batch_that_fits"] = best["batch"]
    return best


def curves(recipe: str, data: str, out: Path, args) -> dict[str, Any]:
    run = out / f"curve-{recipe}"
    command = [sys.executable, "-m", "vsslzoo.training", recipe, "--data", data,
               "--out", str(run), "--steps", str(args.curve_steps), "--workers",
               str(args.workers), "--log-every", str(args.log_every), *CURVES[recipe],
               "--preset", args.curve_preset]
    if args.bf16:
        command.append("--bf16")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        return {"curve": recipe, "error": done.stderr[-2000:]}
    records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
    keys = [k for k in records[0] if k not in ("step", "lr", "skipped_videos")]
    return {"curve": recipe, "steps": records[-1]["step"],
            "seconds": time.perf_counter() - start,
            "first": {k: records[0][k] for k in keys},
            "last": {k: records[-1][k] for k in keys},
            "series": {k: [round(r[k], 4) for r in records] for k in keys}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="gpu_check", help="folder for videos and runs")
    parser.add_argument("--only", action="append", help="check name or recipe (repeatable)")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--no-bf16", dest="bf16", action="store_false")
    parser.add_argument("--max-batch", type=int, default=512)
    parser.add_argument("--tiny", action="store_true", help="tiny models (a CPU dry run)")
    parser.add_argument("--curves", action="store_true", help="also run the curve checks")
    parser.add_argument("--curve-steps", type=int, default=300)
    parser.add_argument("--curve-preset", default="gpu-check",
                        help="preset of the curve runs (smoke: the CPU presets)")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--videos", type=int, default=512, help="synthetic videos for curves")
    parser.add_argument("--frames", type=int, default=96, help="frames per synthetic video")
    parser.add_argument("--size", type=int, nargs=2, default=(160, 120), metavar=("W", "H"))
    parser.add_argument("--workers", type=int, default=min(12, os.cpu_count() or 1))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    selected = [c for c in CHECKS
                if not args.only or c.name in args.only or c.recipe in args.only]
    rows = []
    for check in [] if args.skip_throughput else selected:
        result = throughput(check, args.device, args)
        print(json.dumps(result), flush=True)
        rows.append(result)
    curve_results = []
    if args.curves:
        from vsslzoo.training.data.synthetic import generate

        labels = out / "synthetic" / "labels.csv"
        if not labels.exists():
            generate(out / "synthetic", videos=args.videos, task="all",
                     num_frames=args.frames, size=tuple(args.size))
        for recipe in dict.fromkeys(c.recipe for c in selected):
            result = curves(recipe, str(labels), out, args)
            print(json.dumps(result), flush=True)
            curve_results.append(result)
    print("\n| check | batch | iterations/s | clips/s | peak memory (GiB) |")
    print("|---|---|---|---|---|")
    for row in rows:
        note = " (largest that fits)" if "largest_batch_that_fits" in row else ""
        memory = f"{row['peak_memory_gib']:.1f}" if "peak_memory_gib" in row else "n/a"
        print(f"| {row['check']} | {row['batch']}{note} | {row['iterations_per_s']:.2f} | "
              f"{row['clips_per_s']:.1f} | {memory} |")
    for result in curve_results:
        print(f"\n{result['curve']}: " + json.dumps({k: result.get(k) for k in
                                                     ("steps", "first", "last", "error")}))


if __name__ == "__main__":
    main()
