"""``VideoEncoder``: a loaded model, ready to turn uint8 clips into embeddings.

What :func:`vsslzoo.load` returns. It holds the ``ModelConfig`` (preprocessing included),
the network on its device, and the numeric precision; ``embed`` is the one interface
every backend shares: uint8 clips ``(B, 3, T, H, W)`` in, float32 ``(B, D)`` out.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import ModelConfig, PreprocessConfig
from .errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from .extract import VideoFeatures

PRECISIONS = ("fp32", "bf16", "fp16")
POOLINGS = ("avg", "vcop")
VCOP_GRID = (2, 3, 3)  # adaptive pooling grid (T, H, W) of the VCOP/CtP retrieval protocol
VCOP_CELLS = 18
_PRECISION_ALIASES = {
    "fp32": "fp32", "float32": "fp32", "float": "fp32", "32": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "half": "fp16", "16": "fp16",
}


def model_source(model) -> str:
    """How to load ``model`` again later: its zoo name or hf-hub reference, or the
    absolute path of its folder."""
    source = model.source
    return os.path.abspath(source) if os.path.isdir(source) else source


def check_pooling(pooling: str) -> None:
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` -> CUDA if available, else CPU; an unavailable device is an error."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"unsupported device {device!r} ({exc}); use 'cpu', 'cuda' or 'cuda:N'"
        ) from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(
                f"device {device!r} asked for, but CUDA is not available here "
                "(torch.cuda.is_available() is False); use device='cpu' or leave it unset"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ConfigError(
                f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) exist"
            )
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {device!r}: MPS is not available here; use 'cpu'")
    elif resolved.type != "cpu":
        raise ConfigError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    return resolved


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``None`` -> fp32. fp16 needs a GPU (CPU fp16 kernels are slow or missing)."""
    if precision is None:
        return "fp32"
    key = str(precision).lower()
    if key not in _PRECISION_ALIASES:
        raise ConfigError(
            f"unsupported precision {precision!r}; choose one of {', '.join(PRECISIONS)}"
        )
    resolved = _PRECISION_ALIASES[key]
    if resolved == "fp16" and device.type == "cpu":
        raise ConfigError(
            "precision 'fp16' needs a CUDA device; on the CPU use 'bf16' or 'fp32'"
        )
    return resolved


class Encoder(ABC):
    """What every backend offers: uint8 clips ``(B, 3, T, H, W)`` in, float32 out.

    Subclasses set ``config``, ``source``, ``weights_sha256`` and implement
    :meth:`embed_raw`; clip/video features of files come from here.
    """

    backend = "base"
    config: ModelConfig
    source: str
    weights_sha256: str | None = None

    @property
    def name(self) -> str | None:
        return self.config.name

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    @property
    def preprocess(self) -> PreprocessConfig:
        return self.config.preprocess

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.source!r}, architecture="
            f"{self.config.architecture!r}, embed_dim={self.embed_dim}, backend="
            f"'{self.backend}', device='{getattr(self, 'device', 'cpu')}')"
        )

    def output_dim(self, pooling: str = "avg") -> int:
        """Embedding size for ``pooling``: D for "avg", D x 2 x 3 x 3 for "vcop"."""
        check_pooling(pooling)
        return self.embed_dim * (1 if pooling == "avg" else VCOP_CELLS)

    def check_clips(self, shape: tuple[int, ...], dtype_name: str) -> None:
        expected = self.preprocess.input_shape
        if len(shape) != 5 or shape[1] != 3:
            raise ValueError(f"clips must have shape (B, 3, T, H, W); got {tuple(shape)}")
        if tuple(shape[1:]) != expected:
            raise ValueError(
                f"clips have shape {tuple(shape[1:])} per clip but this model takes "
                f"{expected} (preprocess: {self.preprocess.num_frames} frames, crop "
                f"{self.preprocess.crop})"
            )
        if dtype_name != "uint8":
            raise ValueError(f"clips must be uint8 pixels, got {dtype_name}")

    @abstractmethod
    def embed_raw(self, clips: Any, *, pooling: str = "avg") -> np.ndarray:
        """Un-normalised ``(B, output_dim(pooling))`` float32 features of uint8 clips."""

    def embed(self, clips: Any, *, normalize: bool = True, pooling: str = "avg") -> np.ndarray:
        """Embeddings of a batch of clips.

        Args:
            clips: ``(B, 3, T, H, W)`` uint8 pixels (numpy array, or a torch tensor for the
                torch backend), RGB, preprocessed as ``self.preprocess`` says.
            normalize: L2-normalise each embedding (cosine-ready).
            pooling: "avg" (global average pooling, ``embed_dim``) or "vcop" (adaptive
                average pooling to 2x3x3, flattened: ``18 * embed_dim``; torch backend).

        Returns:
            ``(B, output_dim(pooling))`` float32 numpy array.
        """
        from .extract import l2_normalize

        raw = self.embed_raw(clips, pooling=pooling)
        return l2_normalize(raw) if normalize else raw

    def clip_features(
        self,
        video: str | os.PathLike[str],
        clips: str = "uniform:10",
        *,
        batch_size: int | None = None,
        pooling: str = "avg",
    ) -> VideoFeatures:
        """Clip embeddings of one video file.

        Args:
            video: a video file PyAV can decode.
            clips: ``uniform:N``, ``sliding:S`` (a clip every S seconds) or
                ``segment:A-B`` (the moment from A to B seconds).

        Returns:
            :class:`~vsslzoo.extract.VideoFeatures`: ``embeddings`` (N, D) float32
            L2-normalised, ``spans`` N x (start_s, end_s), ``video_embedding``. A
            damaged file gives its intact clips only (``partial``; ``damage`` says where).

        Raises:
            VideoDecodeError: the file cannot be decoded (not even one clip).
        """
        from .errors import VideoDecodeError
        from .extract import extract_videos

        (result,) = extract_videos(self, [video], clips=clips, batch_size=batch_size,
                                   workers=0, pooling=pooling)
        if result.error is not None:
            raise VideoDecodeError(os.fspath(video), result.error)
        return result

    def video_feature(
        self, video: str | os.PathLike[str], clips: str = "uniform:10", *, pooling: str = "avg"
    ) -> np.ndarray:
        """``(D,)`` float32: the L2-normalised mean of the video's clip features
        (10 uniformly spaced clips by default: the retrieval protocol)."""
        return self.clip_features(video, clips, pooling=pooling).video_embedding


class VideoEncoder(Encoder):
    """A model ready for inference (torch backend).

    Attributes:
        config: the model's :class:`ModelConfig`.
        network: the ``nn.Module`` (eval mode) on ``device``.
        device: where it runs.
        precision: "fp32", "bf16" or "fp16" (autocast; weights stay float32).
        source: where it was loaded from (zoo name, ``hf-hub:...`` or a folder).
        compile: wrap the network in ``torch.compile`` (worth it on GPU for long runs).
        channels_last: use the ``channels_last_3d`` memory format for the network and its
            input (default: on CPU and CUDA, where 3D convolutions run faster with it).

    Without ``compile``, clips run through a copy of ``network`` with its BatchNorms
    folded into the convolutions (:mod:`vsslzoo.models.fusion`; same embeddings up to
    float rounding, fewer passes over the activations). The copy is rebuilt when the
    network's parameters or buffers change (in place or replaced); a network switched to
    training mode runs as it is.
    """

    backend = "torch"

    def __init__(
        self,
        config: ModelConfig,
        network: nn.Module,
        *,
        device: str | torch.device | None = None,
        precision: str | None = None,
        source: str | None = None,
        compile: bool = False,
        channels_last: bool | None = None,
    ) -> None:
        import torch

        self.config = config
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.network = network.to(self.device).eval()
        if channels_last is None:  # faster 3D convolutions on both (bench/RESULTS.md)
            channels_last = self.device.type in ("cpu", "cuda")
        self._channels_last = channels_last
        if self._channels_last:
            self.network = self.network.to(memory_format=torch.channels_last_3d)
        self._compiled = torch.compile(self.network.forward_features) if compile else None
        self._folded: tuple[tuple, nn.Module] | None = None  # (weights' signature, copy)
        self.source = source or config.name or "<in memory>"
        self.weights_sha256: str | None = None  # set by vsslzoo.load from the weights file

    def embed_raw(self, clips: Any, *, pooling: str = "avg") -> np.ndarray:
        """Un-normalised ``(B, output_dim(pooling))`` float32 features of uint8 clips."""
        import numpy as np
        import torch

        check_pooling(pooling)
        tensor = torch.as_tensor(clips)
        self.check_clips(tuple(tensor.shape), str(tensor.dtype).replace("torch.", ""))
        tensor = tensor.to(self.device, non_blocking=True)
        if self._channels_last:
            tensor = tensor.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), self._autocast():
            features = self._forward_features()(tensor)
            if pooling == "avg":
                output = features.mean(dim=(2, 3, 4))
            else:
                output = torch.nn.functional.adaptive_avg_pool3d(features, VCOP_GRID).flatten(1)
        return np.ascontiguousarray(output.float().cpu().numpy(), dtype=np.float32)

    def _forward_features(self):
        """The function that maps a clip batch to feature maps (see the class docstring)."""
        if self._compiled is not None:
            return self._compiled
        if self.network.training:
            return self.network.forward_features
        tensors = [*self.network.parameters(), *self.network.buffers()]
        signature = tuple((id(t), t._version, t.data_ptr()) for t in tensors)
        if self._folded is None or self._folded[0] != signature:
            import torch

            from .models.fusion import fold_batch_norms

            folded = fold_batch_norms(self.network)
            if self._channels_last:
                folded = folded.to(memory_format=torch.channels_last_3d)
            self._folded = (signature, folded)
        return self._folded[1].forward_features

    def _autocast(self):
        import contextlib

        import torch

        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def save_pretrained(self, folder: str | os.PathLike[str]) -> Path:
        """Write config.json + model.safetensors + README.md to ``folder``."""
        from .artefacts import save_pretrained

        return save_pretrained(self.network, self.config, folder)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool | None = None,
        commit_message: str | None = None,
        token: str | None = None,
    ):
        """Publish this model to the Hub as one commit (like huggingface_hub's
        ``ModelHubMixin.push_to_hub``): saves it to a temporary folder, strict-loads it,
        and uploads config.json, model.safetensors, a card and ``vsslzoo.json``
        (:func:`vsslzoo.publish.push_folder` says what is sent).

        Args:
            repo_id: ``ORG/NAME``; created when missing (``private`` applies then).
            commit_message: summary of the commit.
            token: Hub token (default: ``HF_TOKEN`` or ``hf auth login``'s).

        Returns:
            :class:`~vsslzoo.publish.PushResult`: ``commit`` and the pinned ``reference``
            ``hf-hub:ORG/NAME@COMMIT`` that ``vsslzoo.load`` accepts.
        """
        from .publish import push_encoder

        return push_encoder(self, repo_id, private=private, commit_message=commit_message,
                            token=token)
