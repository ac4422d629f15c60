"""TensorRT backend: ``vsslzoo.load(folder, backend="tensorrt")`` runs ``model.engine``.

The engine is built by ``vsslzoo export FOLDER --format tensorrt`` (``export/tensorrt.py``)
for one GPU model and TensorRT version. Inputs and outputs are CUDA tensors (PyTorch
allocates them and provides the stream); batches beyond the engine's profile are split,
and a chunk below the profile's minimum batch is padded by repeating its last clip.

Written against the documented TensorRT 10 API; TensorRT is not available where vsslzoo
is tested, so only the checks around it are tested.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..encoder import Encoder, check_pooling
from ..errors import ConfigError, ModelFolderError

ENGINE_FILENAME = "model.engine"
ENGINE_INFO = "tensorrt.json"
INPUT_NAME = "video"
OUTPUT_NAME = "embedding"


def require_tensorrt():
    try:
        import tensorrt
    except ImportError:
        raise ConfigError(
            "the tensorrt backend needs TensorRT: on a machine with an NVIDIA GPU, "
            "pip install 'vsslzoo[gpu]' (TensorRT 10 or newer)"
        ) from None
    return tensorrt


def batch_chunks(total: int, max_batch: int) -> list[tuple[int, int]]:
    """[start, stop) ranges of at most ``max_batch`` clips covering ``total``."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    return [(start, min(start + max_batch, total)) for start in range(0, total, max_batch)]


def engine_batches(total: int, min_batch: int, max_batch: int) -> list[tuple[int, int, int]]:
    """``(start, stop, run)`` for each engine call over ``total`` clips: ``[start, stop)``
    holds at most ``max_batch`` clips, and ``run >= min_batch`` is the batch the engine
    runs (the chunk padded to the profile's minimum when it is smaller)."""
    if not 1 <= min_batch <= max_batch:
        raise ValueError(f"need 1 <= min_batch <= max_batch, got {min_batch}, {max_batch}")
    return [(start, stop, max(stop - start, min_batch))
            for start, stop in batch_chunks(total, max_batch)]


def pad_batch(chunk, run: int):
    """``chunk`` ``(n, ...)`` (a torch tensor) with its last clip repeated up to ``run``
    rows, contiguous."""
    missing = run - chunk.shape[0]
    if missing <= 0:
        return chunk.contiguous()
    import torch

    return torch.cat([chunk, chunk[-1:].expand(missing, *chunk.shape[1:])])


class TensorRTEncoder(Encoder):
    """A serialized TensorRT engine on one CUDA device."""

    backend = "tensorrt"

    def __init__(self, config: ModelConfig, engine_path: str | os.PathLike[str], *,
                 device: str | None = None, source: str | None = None) -> None:
        engine_path = Path(engine_path)
        if not engine_path.is_file():
            raise ModelFolderError(
                f"{engine_path} does not exist: build it with "
                f"`vsslzoo export {engine_path.parent} --format tensorrt`")
        info_path = engine_path.parent / ENGINE_INFO
        self.engine_info: dict[str, Any] = (json.loads(info_path.read_text())
                                            if info_path.exists() else {})
        trt = require_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("the tensorrt backend needs a CUDA device; none is available")
        self.device = torch.device(device or "cuda")
        if self.device.type != "cuda":
            raise ConfigError(f"the tensorrt backend runs on CUDA, not {device!r}")
        self.config = config
        self.precision = self.engine_info.get("precision", "unknown")
        self.source = source or str(engine_path.parent)
        self._torch = torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            runtime = trt.Runtime(self._logger)
            self.engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
            if self.engine is None:
                raise ModelFolderError(
                    f"{engine_path} cannot be deserialized (built for another GPU or "
                    "TensorRT version?); rebuild it on this machine")
            self.context = self.engine.create_execution_context()
        profile_min, _, profile_max = self.engine.get_tensor_profile_shape(INPUT_NAME, 0)
        self.min_batch, self.max_batch = int(profile_min[0]), int(profile_max[0])
        # the weights the engine was built from, recorded by `vsslzoo export`; an index
        # compares it with its own model's
        self.weights_sha256 = self.engine_info.get("weights_sha256")
        weights = engine_path.parent / "model.safetensors"
        if self.weights_sha256 is None and weights.exists():
            from ..artefacts import sha256_of

            self.weights_sha256 = sha256_of(weights)

    def embed_raw(self, clips: Any, *, pooling: str = "avg") -> np.ndarray:
        check_pooling(pooling)
        if pooling != "avg":
            raise ConfigError("the engine pools by average; vcop pooling needs the torch "
                              "backend")
        torch = self._torch
        tensor = torch.as_tensor(clips)
        self.check_clips(tuple(tensor.shape), str(tensor.dtype).replace("torch.", ""))
        tensor = tensor.to(self.device, non_blocking=True).contiguous()
        total = tensor.shape[0]
        output = torch.empty((total, self.embed_dim), dtype=torch.float32, device=self.device)
        stream = torch.cuda.current_stream(self.device)
        # Temporaries (padded chunks, their outputs) are freed while the engine may still
        # run, which is safe: PyTorch reuses their memory only for later work on this stream.
        for start, stop, run in engine_batches(total, self.min_batch, self.max_batch):
            chunk = pad_batch(tensor[start:stop], run)
            padded = run != stop - start
            out = torch.empty((run, self.embed_dim), dtype=torch.float32,
                              device=self.device) if padded else output[start:stop]
            self.context.set_input_shape(INPUT_NAME, tuple(chunk.shape))
            self.context.set_tensor_address(INPUT_NAME, chunk.data_ptr())
            self.context.set_tensor_address(OUTPUT_NAME, out.data_ptr())
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed (see the TensorRT log)")
            if padded:
                output[start:stop] = out[:stop - start]  # the padding's rows are dropped
        stream.synchronize()
        return output.cpu().numpy()
