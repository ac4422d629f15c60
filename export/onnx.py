"""Backbones to ONNX, checked against PyTorch on export.

The graph takes ``video``: uint8 ``(B, 3, T, H, W)`` RGB pixels and returns ``embedding``:
float32 ``(B, D)``, the un-normalised global-average-pooled features, exactly what the
torch backend's ``embed_raw`` returns. Scaling and mean/std normalisation are the
graph's first operations (DESIGN.md), so any runtime feeds it decoded pixels as they are.

* Exporter: ``torch.onnx.export(dynamo=True)`` (the only one that handles every op we
  use, and the default), opset 20 by default (>= 17 accepted), one file
  (``external_data=False``) unless the weights pass 2 GB.
* Dynamic axes: ``dynamic="batch"`` (default) makes B dynamic; ``"all"`` also T, H and W.
* Identity travels with the file: ONNX metadata holds the model config, the vsslzoo
  version and the source weights' sha256, and the output folder is itself a model
  folder (``config.json``, ``model.safetensors``, ``README.md``, ``model.onnx``,
  ``export.json``) that ``vsslzoo.load(folder, backend="onnxruntime")`` accepts.
* Check on every export: ``onnx.checker``, then ONNX Runtime (CPU) against PyTorch on
  random uint8 clips: cosine >= 0.9999 and max |difference| <= 1e-4 (fp32), reported in
  ``export.json``; a failure renames the graph ``model.parity-failed.onnx`` (kept for
  inspection, never loaded as the model) and raises :class:`ExportCheckError`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vsslzoo.errors import ConfigError, VsslzooError
from vsslzoo.fileio import atomic_write_bytes

ONNX_FILENAME = "model.onnx"
FAILED_ONNX_FILENAME = "model.parity-failed.onnx"
EXPORT_INFO = "export.json"
INPUT_NAME = "video"
OUTPUT_NAME = "embedding"
MIN_OPSET = 17
DEFAULT_OPSET = 20
COSINE_MIN = 0.9999
MAX_ABS_DIFF = 1e-4
_TWO_GB = 2 * 1024**3


class ExportCheckError(VsslzooError):
    """An exported graph whose outputs differ from PyTorch's beyond the tolerance."""


@dataclass
class ParityReport:
    batch: int
    cosine_min: float
    max_abs_diff: float
    passed: bool


@dataclass
class ExportReport:
    folder: str
    onnx_path: str
    opset: int
    dynamic: str
    seconds: float
    parity: list[ParityReport] = field(default_factory=list)
    input_shape: list[Any] = field(default_factory=list)
    output_shape: list[Any] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _graph_module(network):
    import torch

    class VideoToEmbedding(torch.nn.Module):
        """uint8 video -> float32 embedding (normalisation is the network's first op)."""

        def __init__(self, backbone: torch.nn.Module) -> None:
            super().__init__()
            self.backbone = backbone

        def forward(self, video: torch.Tensor) -> torch.Tensor:
            return self.backbone(video).float()

    return VideoToEmbedding(network).eval()


def export_onnx(
    model: Any,
    folder: str | os.PathLike[str],
    *,
    dynamic: str = "batch",
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    check_batches: tuple[int, ...] = (1, 3),
) -> ExportReport:
    """Export ``model`` (a name/folder/hf-hub ref or a loaded torch VideoEncoder) to
    ``folder/model.onnx`` and make ``folder`` a loadable model folder.

    Args:
        dynamic: "batch" (dynamic B) or "all" (dynamic B, T, H, W).
        opset: ONNX opset (>= 17).
        check: run onnx.checker and the ONNX Runtime vs PyTorch parity check.
        check_batches: batch sizes the parity check runs (exercises the dynamic axis).
    """
    import torch

    import vsslzoo
    from vsslzoo.artefacts import save_pretrained, sha256_of
    from vsslzoo.config import WEIGHTS_FILENAME
    from vsslzoo.encoder import VideoEncoder

    if dynamic not in ("batch", "all"):
        raise ConfigError(f"dynamic must be 'batch' or 'all', got {dynamic!r}")
    if opset < MIN_OPSET:
        raise ConfigError(f"opset {opset} is too old; use >= {MIN_OPSET}")
    if not isinstance(model, VideoEncoder):
        model = vsslzoo.load(model, device="cpu")
    started = time.perf_counter()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    network = model.network.to("cpu", memory_format=torch.contiguous_format).eval()
    graph = _graph_module(network)
    shape = model.preprocess.input_shape
    example = torch.randint(0, 256, (2, *shape), dtype=torch.uint8)
    batch = torch.export.Dim("batch", min=1, max=65536)
    axes: dict[int, Any] = {0: batch}
    if dynamic == "all":
        axes.update({2: torch.export.Dim.AUTO, 3: torch.export.Dim.AUTO,
                     4: torch.export.Dim.AUTO})
    # the folder is a full model folder: config, weights, card (+ the graph)
    save_pretrained(network, model.config, folder)
    weights_sha256 = sha256_of(folder / WEIGHTS_FILENAME)
    param_bytes = sum(p.numel() * p.element_size() for p in network.parameters())
    onnx_path = folder / ONNX_FILENAME
    tmp_path = folder / f".{ONNX_FILENAME}.tmp"
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            graph, (example,), dynamo=True, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], opset_version=opset,
            dynamic_shapes=({k: v for k, v in axes.items()},), report=False,
            verbose=False,
        )
    program.save(str(tmp_path), external_data=param_bytes > _TWO_GB)
    _add_metadata(tmp_path, model, weights_sha256)
    os.replace(tmp_path, onnx_path)
    report = ExportReport(
        folder=str(folder), onnx_path=str(onnx_path), opset=opset, dynamic=dynamic,
        seconds=0.0,
        input_shape=["batch", *(shape if dynamic == "batch" else (3, "T", "H", "W"))],
        output_shape=["batch", model.embed_dim],
    )
    if check:
        import onnx

        onnx.checker.check_model(str(onnx_path))
        report.parity = parity_check(onnx_path, graph, shape, check_batches)
    report.seconds = round(time.perf_counter() - started, 2)
    info = {"format": "onnx", "weights_sha256": weights_sha256,
            "source_weights_sha256": model.weights_sha256,
            "torch": torch.__version__, **report.to_dict()}
    atomic_write_bytes(folder / EXPORT_INFO, (json.dumps(info, indent=2) + "\n").encode())
    failed = [p for p in report.parity if not p.passed]
    if failed:
        kept = folder / FAILED_ONNX_FILENAME  # kept for inspection, never loaded by mistake
        os.replace(onnx_path, kept)
        raise ExportCheckError(
            f"{kept}: ONNX Runtime differs from PyTorch beyond the tolerance "
            f"(cosine >= {COSINE_MIN}, max |diff| <= {MAX_ABS_DIFF}): "
            + "; ".join(f"batch {p.batch}: cosine {p.cosine_min:.6f}, max diff "
                        f"{p.max_abs_diff:.2e}" for p in failed)
        )
    return report


@contextlib.contextmanager
def _quiet_exporter():
    """Hide the exporter's notes about torchvision ops we never use and its
    deprecation warnings, which read like problems with the user's model."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "torch.export")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _add_metadata(path: Path, model, weights_sha256: str) -> None:
    import onnx

    from vsslzoo._version import __version__

    proto = onnx.load(str(path), load_external_data=False)
    entries = {
        "vsslzoo_config": model.config.to_json(),
        "vsslzoo_version": __version__,
        "vsslzoo_weights_sha256": weights_sha256,
        "vsslzoo_input": "video: uint8 (B, 3, T, H, W) RGB pixels",
        "vsslzoo_output": "embedding: float32 (B, D), un-normalised average-pooled features",
    }
    del proto.metadata_props[:]
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.doc_string = f"vsslzoo {model.config.name or model.config.architecture}"
    onnx.save(proto, str(path))


def parity_check(onnx_path: Path, graph, shape: tuple[int, ...],
                 batches: tuple[int, ...]) -> list[ParityReport]:
    """ONNX Runtime (CPU) vs PyTorch on random uint8 clips, per batch size."""
    import numpy as np
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reports = []
    generator = torch.Generator().manual_seed(0)
    for batch in batches:
        clips = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8, generator=generator)
        with torch.no_grad():
            expected = graph(clips).numpy()
        got = session.run([OUTPUT_NAME], {INPUT_NAME: clips.numpy()})[0]
        cosine = (got * expected).sum(1) / (
            np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1) + 1e-12)
        max_diff = float(np.abs(got - expected).max())
        cosine_min = float(cosine.min())
        reports.append(ParityReport(batch, cosine_min, max_diff,
                                    cosine_min >= COSINE_MIN and max_diff <= MAX_ABS_DIFF))
    return reports
