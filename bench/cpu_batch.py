"""CPU batch size: throughput and peak memory of R(2+1)D-18 per batch size (a benchmark).

Chooses the default ``--batch-size`` on CPU (``vsslzoo.extract.CPU_BATCH_SIZE``). For each
batch size, side by side in one run, each measurement in a fresh process:

  (a) model only: clips/s of the model on uint8 clips already in memory (after one
      warm-up call at that batch size), and the process's peak RSS (``VmHWM``);
  (b) end to end: ``extract_videos`` on 10-second h264 videos (one decode worker,
      ``uniform:16``), clips/s and the main process's peak RSS.

Each also reports CPU seconds per clip (``time.process_time``, all threads of the
process): on a machine shared with other jobs, wall-clock clips/s follows their load,
CPU time per clip much less.

Rounds alternate the batch sizes so that a load change on a shared machine hits all of
them alike.

    nice -n 19 python bench/cpu_batch.py               # batches 1 2 4 8 16, 2 rounds
    nice -n 19 python bench/cpu_batch.py --batches 4 16 --rounds 1

The model is R(2+1)D-18 as CtP trains it (16x112^2 clips, ~31 M parameters, randomly
initialised: speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def _peak_rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _model(folder: Path):
    import vsslzoo

    return vsslzoo.load(folder, device="cpu")


def child(mode: str, batch: int, folder: Path, videos: list[str], clips: int) -> dict:
    import numpy as np

    model = _model(folder)
    if mode == "model":
        rng = np.random.default_rng(0)
        data = rng.integers(0, 256, (clips, *model.preprocess.input_shape), dtype=np.uint8)
        model.embed_raw(data[:batch])  # warm-up: oneDNN builds its kernels per shape
        started, cpu_started = time.perf_counter(), time.process_time()
        for start in range(0, clips, batch):
            model.embed_raw(data[start:start + batch])
        seconds = time.perf_counter() - started
        done = clips
    else:
        from vsslzoo.extract import extract_videos

        started, cpu_started = time.perf_counter(), time.process_time()
        done = 0
        for result in extract_videos(model, videos, clips="uniform:16", batch_size=batch,
                                     workers=1):
            assert result.error is None, result.error
            done += len(result.spans)
        seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    return {"mode": mode, "batch": batch, "clips": done, "seconds": round(seconds, 2),
            "clips_per_s": round(done / seconds, 3),
            "cpu_s_per_clip": round(cpu_seconds / done, 3),
            "peak_rss_mib": round(_peak_rss_mib())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clips", type=int, default=16, help="model-only clips per run")
    parser.add_argument("--videos", type=int, default=1,
                        help="10-second videos extracted per end-to-end run (16 clips each)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, batch, folder, videos = args.child
        print(json.dumps(child(mode, int(batch), Path(folder), json.loads(videos),
                               args.clips)))
        return

    import torch
    from extract import _model_folder, write_textured_video  # bench/extract.py

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder = _model_folder(tmp / "model", width=1.0)
        videos = [str(write_textured_video(tmp / f"v{i}.mp4", seconds=10))
                  for i in range(args.videos)]
        print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"R(2+1)D-18 16x112^2; model only: {args.clips} clips; end to end: "
              f"{args.videos} x 10 s 640x360 h264, uniform:16, 1 decode worker", flush=True)
        rows = []
        for round_number in range(args.rounds):
            order = args.batches if round_number % 2 == 0 else args.batches[::-1]
            for batch in order:
                for mode in ("model", "extract"):
                    out = subprocess.run(
                        [sys.executable, __file__, "--clips", str(args.clips), "--child",
                         mode, str(batch), str(folder), json.dumps(videos)],
                        capture_output=True, text=True, check=True)
                    row = json.loads(out.stdout.strip().splitlines()[-1])
                    row["round"] = round_number
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    print("\n| batch | model only: clips/s | CPU s/clip | peak RSS (MiB) | end to end: "
          "clips/s | CPU s/clip (main process) | peak RSS (MiB) |\n"
          "|---|---|---|---|---|---|---|")
    for batch in args.batches:
        def pick(mode, key, rows=rows, batch=batch):
            values = [r[key] for r in rows if r["batch"] == batch and r["mode"] == mode]
            # speed: the mean over rounds; memory: the highest peak
            return max(values) if key == "peak_rss_mib" else sum(values) / len(values)

        print(f"| {batch} | " + " | ".join(
            f"{pick(mode, 'clips_per_s'):.3f} | {pick(mode, 'cpu_s_per_clip'):.2f} | "
            f"{pick(mode, 'peak_rss_mib')}" for mode in ("model", "extract")) + " |")


if __name__ == "__main__":
    main()
