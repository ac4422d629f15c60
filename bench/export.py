"""ONNX Runtime vs PyTorch eager on this CPU, per backbone (a benchmark, not a test).

For every architecture at full width and its reference input: export time and ONNX file
size, then clips/s of PyTorch eager (contiguous and channels_last_3d, the default) and
ONNX Runtime (CPU provider) on the same uint8 batches, side by side in one run.

    python bench/export.py [--batch 4] [--iters 2] [--arch r2plus1d_18 ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def clips_per_s(run, clips: np.ndarray, iters: int) -> float:
    """Clips per second of ``run(clips)`` after one warm-up call."""
    run(clips)
    start = time.perf_counter()
    for _ in range(iters):
        run(clips)
    return len(clips) * iters / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iters", type=int, default=2)
    parser.add_argument("--arch", nargs="*")
    args = parser.parse_args()

    import onnxruntime as ort
    import torch

    from vsslzoo.artefacts import build_network, save_pretrained
    from vsslzoo.config import ModelConfig, PreprocessConfig, Provenance
    from vsslzoo.encoder import VideoEncoder
    from vsslzoo.export.onnx import export_onnx
    from vsslzoo.models import build, get_architecture, list_architectures

    print(f"torch {torch.__version__} threads {torch.get_num_threads()}, onnxruntime "
          f"{ort.__version__}, batch {args.batch}, {args.iters} timed iterations", flush=True)
    rows = []
    for arch in args.arch or list_architectures():
        model_args = {"midplanes": "ctp"} if arch == "r2plus1d_18" else {}
        _, frames, height, width = get_architecture(arch).reference_input
        pre = PreprocessConfig(num_frames=frames, frame_stride=2, resize=height,
                               crop=(height, width))
        config = ModelConfig(arch, model_args, build(arch, **model_args).embed_dim, pre,
                             Provenance(kind="random-init"), name=f"bench-{arch}")
        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            save_pretrained(build_network(config), config, Path(tmp) / "src")
            import vsslzoo

            model = vsslzoo.load(Path(tmp) / "src", device="cpu")
            start = time.perf_counter()
            export_onnx(model, Path(tmp) / "onnx", check=False)
            export_s = time.perf_counter() - start
            onnx_path = Path(tmp) / "onnx" / "model.onnx"
            size_mb = onnx_path.stat().st_size / 1e6
            clips = np.random.default_rng(0).integers(
                0, 256, (args.batch, 3, frames, height, width), dtype=np.uint8)
            eager_cl = clips_per_s(model.embed_raw, clips, args.iters)
            plain = VideoEncoder(model.config,
                                 model.network.to(memory_format=torch.contiguous_format),
                                 device="cpu", channels_last=False)
            eager = clips_per_s(plain.embed_raw, clips, args.iters)
            session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
            onnxrt = clips_per_s(lambda x, s=session: s.run(["embedding"], {"video": x}),
                                 clips, args.iters)
        row = {
            "architecture": arch, "input": f"{frames}x{height}x{width}",
            "export_s": round(export_s, 1), "onnx_mb": round(size_mb, 1),
            "torch_eager_clips_per_s": round(eager, 3),
            "torch_channels_last_clips_per_s": round(eager_cl, 3),
            "onnxruntime_clips_per_s": round(onnxrt, 3),
            "onnxruntime_over_torch_default": round(onnxrt / eager_cl, 2),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
