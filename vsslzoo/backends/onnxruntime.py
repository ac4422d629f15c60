"""ONNX Runtime backend: ``vsslzoo.load(folder, backend="onnxruntime")``.

Runs the graph ``vsslzoo export`` writes (input ``video`` uint8, output ``embedding``).
CUDA execution provider when asked for and installed (``onnxruntime-gpu``, the ``gpu``
extra), else CPU. This module and everything it imports at run time need no PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelConfig
from ..encoder import Encoder, check_pooling
from ..errors import ConfigError, ModelFolderError

ONNX_FILENAME = "model.onnx"
INPUT_NAME = "video"
OUTPUT_NAME = "embedding"


def _providers(device: str | None) -> tuple[list[str], str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    device = device or ("cuda" if "CUDAExecutionProvider" in available else "cpu")
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in available:
            raise ConfigError(
                f"device {device!r} needs onnxruntime's CUDA provider, which this install "
                f"lacks (it has {available}); pip install 'vsslzoo[gpu]' or use device='cpu'"
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"], device
    if device != "cpu":
        raise ConfigError(f"unsupported device {device!r} for onnxruntime; use cpu or cuda")
    return ["CPUExecutionProvider"], "cpu"


def _check_metadata(metadata: dict[str, str], config: ModelConfig, onnx_path: Path) -> None:
    """The graph's embedded config must describe the same model as config.json."""
    embedded = metadata.get("vsslzoo_config")
    if not embedded:
        raise ModelFolderError(
            f"{onnx_path} carries no vsslzoo metadata: it was not written by `vsslzoo "
            "export`, so its input and output conventions are unknown; export it again")
    graph_config = ModelConfig.from_json(embedded, where=f"{onnx_path} metadata")
    differing = [name for name in ("architecture", "model_args", "embed_dim", "preprocess")
                 if getattr(graph_config, name) != getattr(config, name)]
    if differing:
        raise ModelFolderError(
            f"{onnx_path} was exported from another model than {onnx_path.parent}/"
            f"config.json describes (they differ in {', '.join(differing)}); export again "
            "into a fresh folder")


class OnnxRuntimeEncoder(Encoder):
    """A model folder's ``model.onnx`` on ONNX Runtime."""

    backend = "onnxruntime"

    def __init__(self, config: ModelConfig, onnx_path: str | os.PathLike[str], *,
                 device: str | None = None, precision: str | None = None,
                 source: str | None = None, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ConfigError(
                "the onnxruntime backend needs onnxruntime: pip install 'vsslzoo[export]' "
                "(CPU) or 'vsslzoo[gpu]' (CUDA)"
            ) from None
        if precision not in (None, "fp32"):
            raise ConfigError(
                f"precision {precision!r}: the ONNX graph is fp32; for reduced precision use "
                "the torch backend or a TensorRT engine (vsslzoo export --format tensorrt)"
            )
        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise ModelFolderError(
                f"{onnx_path} does not exist: export the model first "
                f"(vsslzoo export MODEL --format onnx -o {onnx_path.parent})"
            )
        self.config = config
        self.precision = "fp32"
        providers, self.device = _providers(device)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Decode workers share the cores: worker threads that spin while waiting for work
        # (ONNX Runtime's default) take a core from them (bench/extract.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFolderError(f"{onnx_path} cannot be loaded by onnxruntime: {exc}"
                                   ) from None
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
            raise ModelFolderError(
                f"{onnx_path} is not a vsslzoo export (inputs {sorted(inputs)}, outputs "
                f"{sorted(outputs)}; expected {INPUT_NAME!r} -> {OUTPUT_NAME!r})")
        self.source = source or str(onnx_path.parent)
        metadata = self.session.get_modelmeta().custom_metadata_map
        _check_metadata(metadata, config, onnx_path)
        self.weights_sha256 = metadata.get("vsslzoo_weights_sha256") or None

    def embed_raw(self, clips: Any, *, pooling: str = "avg") -> np.ndarray:
        check_pooling(pooling)
        if pooling != "avg":
            raise ConfigError("the ONNX graph pools by average; vcop pooling needs the torch "
                              "backend")
        array = np.ascontiguousarray(clips)
        self.check_clips(array.shape, str(array.dtype))
        output = self.session.run([OUTPUT_NAME], {INPUT_NAME: array})[0]
        return np.ascontiguousarray(output, dtype=np.float32)
