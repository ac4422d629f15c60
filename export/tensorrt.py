"""ONNX graph -> serialized TensorRT engine (TensorRT 10 Python API).

``build_engine(folder)`` reads ``folder/model.onnx`` (written by ``export_onnx``) and
writes ``folder/model.engine`` plus ``folder/tensorrt.json`` (precision, optimisation
profile, sha256 of the weights the graph was exported from), reusing and updating a
timing cache (``folder/timing.cache``) so rebuilds are fast. The engine takes the same
uint8 ``video`` and returns the same ``embedding``; the ``tensorrt`` backend
(``vsslzoo.load(folder, backend="tensorrt")``) runs it.

TensorRT cannot be installed or run on the machines this project is developed and
tested on: this module is written against the documented TensorRT 10 API, the part that
calls TensorRT is kept to :func:`_build` and everything around it (profile shapes,
argument checks, the missing-TensorRT error) is unit-tested.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vsslzoo.config import ModelConfig
from vsslzoo.errors import ConfigError, ModelFolderError

ENGINE_FILENAME = "model.engine"
ENGINE_INFO = "tensorrt.json"
TIMING_CACHE = "timing.cache"
PRECISIONS = ("fp32", "fp16", "bf16")
INPUT_NAME = "video"


def require_tensorrt():
    """``import tensorrt`` or an error that says how to get it."""
    try:
        import tensorrt
    except ImportError:
        raise ConfigError(
            "TensorRT is not installed: on a machine with an NVIDIA GPU, "
            "pip install 'vsslzoo[gpu]' (TensorRT 10 or newer), then run this again"
        ) from None
    return tensorrt


@dataclass(frozen=True)
class Profile:
    """An optimisation profile: min / opt / max input shapes ``(B, 3, T, H, W)``."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {k: list(v) for k, v in asdict(self).items()}


def _range(name: str, value: tuple[int, int, int] | None, default: int) -> tuple[int, int, int]:
    if value is None:
        return default, default, default
    if len(value) != 3 or not (1 <= value[0] <= value[1] <= value[2]):
        raise ConfigError(f"{name} range must be MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, "
                          f"got {value}")
    return tuple(int(v) for v in value)


def profile_for(
    config: ModelConfig,
    *,
    min_batch: int = 1,
    opt_batch: int = 32,
    max_batch: int = 64,
    frames: tuple[int, int, int] | None = None,
    height: tuple[int, int, int] | None = None,
    width: tuple[int, int, int] | None = None,
    dynamic: str = "batch",
) -> Profile:
    """The optimisation profile for a model: batch range, and T/H/W ranges only when the
    ONNX graph was exported with ``dynamic="all"``; otherwise the model's preprocessing
    fixes them."""
    batch = _range("batch", (min_batch, opt_batch, max_batch), 1)
    if dynamic != "all" and any(r is not None for r in (frames, height, width)):
        raise ConfigError(
            "frame/height/width ranges need an ONNX graph exported with --dynamic all; "
            "this one has only a dynamic batch"
        )
    _, t, h, w = config.preprocess.input_shape
    t_range = _range("frames", frames, t)
    h_range = _range("height", height, h)
    w_range = _range("width", width, w)
    shapes = [(batch[i], 3, t_range[i], h_range[i], w_range[i]) for i in range(3)]
    return Profile(*shapes)


@dataclass
class EngineReport:
    engine_path: str
    precision: str
    profile: dict[str, list[int]]
    seconds: float
    timing_cache: str


def build_engine(
    folder: str | os.PathLike[str],
    *,
    precision: str = "fp16",
    min_batch: int = 1,
    opt_batch: int = 32,
    max_batch: int = 64,
    frames: tuple[int, int, int] | None = None,
    height: tuple[int, int, int] | None = None,
    width: tuple[int, int, int] | None = None,
    workspace_gb: float = 8.0,
    output: str | os.PathLike[str] | None = None,
) -> EngineReport:
    """Build ``model.engine`` from ``folder/model.onnx``.

    Args:
        folder: an ONNX export folder (``vsslzoo export MODEL --format onnx -o folder``).
        precision: "fp32", "fp16" or "bf16" (reduced precisions are allowed, not forced:
            TensorRT keeps fp32 where it is faster or required).
        min_batch, opt_batch, max_batch: the profile's batch range.
        frames, height, width: (min, opt, max) ranges for a ``--dynamic all`` export.
        workspace_gb: builder workspace limit.
        output: folder for the engine (default: ``folder``); it also gets ``folder``'s
            config.json, model.safetensors, README.md and export.json, so that it is a
            model folder whose weights identity an index can check.
    """
    import time

    folder = Path(folder)
    onnx_path = folder / "model.onnx"
    if not onnx_path.is_file():
        raise ModelFolderError(
            f"{onnx_path} does not exist; export ONNX first: "
            f"vsslzoo export MODEL --format onnx -o {folder}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if workspace_gb <= 0:
        raise ConfigError(f"workspace_gb must be positive, got {workspace_gb}")
    config = ModelConfig.from_file(folder / "config.json")
    export_info = json.loads((folder / "export.json").read_text()) \
        if (folder / "export.json").exists() else {}
    profile = profile_for(config, min_batch=min_batch, opt_batch=opt_batch,
                          max_batch=max_batch, frames=frames, height=height, width=width,
                          dynamic=export_info.get("dynamic", "batch"))
    trt = require_tensorrt()
    out = Path(output) if output is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cache_path = out / TIMING_CACHE
    engine_bytes, cache_bytes = _build(trt, onnx_path, profile, precision,
                                       int(workspace_gb * 1024**3),
                                       cache_path.read_bytes() if cache_path.exists() else b"")
    engine_path = out / ENGINE_FILENAME
    engine_path.write_bytes(engine_bytes)
    cache_path.write_bytes(cache_bytes)
    report = EngineReport(str(engine_path), precision, profile.to_dict(),
                          round(time.perf_counter() - started, 1), str(cache_path))
    info: dict[str, Any] = {"tensorrt": trt.__version__, **asdict(report),
                            "weights_sha256": _weights_sha256(folder, export_info)}
    (out / ENGINE_INFO).write_text(json.dumps(info, indent=2) + "\n")
    if out.resolve() != folder.resolve():  # the engine folder is a model folder too
        for name in ("config.json", "model.safetensors", "README.md", "export.json"):
            if (folder / name).exists():
                shutil.copyfile(folder / name, out / name)
    return report


def _weights_sha256(folder: Path, export_info: dict[str, Any]) -> str | None:
    """sha256 of the weights the ONNX graph was exported from (what an index compares)."""
    if export_info.get("weights_sha256"):
        return export_info["weights_sha256"]
    weights = folder / "model.safetensors"
    if not weights.exists():
        return None
    from vsslzoo.artefacts import sha256_of

    return sha256_of(weights)


def _build(trt, onnx_path: Path, profile: Profile, precision: str, workspace: int,
           cache: bytes) -> tuple[bytes, bytes]:
    """The TensorRT calls: parse, configure, build. Returns (engine, timing cache)."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ModelFolderError(f"TensorRT cannot parse {onnx_path}: " + "; ".join(errors))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    optimisation = builder.create_optimization_profile()
    optimisation.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(optimisation)
    timing_cache = config.create_timing_cache(cache)
    config.set_timing_cache(timing_cache, ignore_mismatch=False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelFolderError(f"TensorRT failed to build an engine from {onnx_path} "
                               "(see the TensorRT log above)")
    return bytes(serialized), bytes(config.get_timing_cache().serialize())
