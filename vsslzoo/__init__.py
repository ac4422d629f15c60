"""vsslzoo: self-supervised video backbones as a model zoo.

    >>> import vsslzoo
    >>> vsslzoo.list_models("ctp-*")
    >>> model = vsslzoo.load("path/to/model_folder")   # or a zoo name, or hf-hub:org/repo
    >>> model.embed(clips)                              # (B, 3, T, H, W) uint8 -> (B, D)

Importing vsslzoo does not import torch; that happens on the first ``load``.
"""

from __future__ import annotations

from ._version import __version__
from .config import ModelConfig, PreprocessConfig, Provenance
from .errors import (
    ChecksumError,
    ConfigError,
    HubError,
    ModelFolderError,
    ModelNotAvailableError,
    UnknownArchitectureError,
    UnknownModelError,
    VerificationError,
    VideoDecodeError,
    VsslzooError,
    WeightsMismatchError,
)
from .loading import DEFAULT_MODEL, describe, load
from .registry import get_entry, list_models

__all__ = [
    "DEFAULT_MODEL",
    "ChecksumError",
    "Hit",
    "Index",
    "ConfigError",
    "HubError",
    "ModelConfig",
    "ModelFolderError",
    "ModelNotAvailableError",
    "PreprocessConfig",
    "Provenance",
    "UnknownArchitectureError",
    "UnknownModelError",
    "VerificationError",
    "VideoDecodeError",
    "VideoEncoder",
    "VsslzooError",
    "WeightsMismatchError",
    "__version__",
    "describe",
    "get_entry",
    "list_models",
    "load",
    "save_pretrained",
]


def __getattr__(name: str):
    # Torch-dependent names are imported on first use so `import vsslzoo` stays light.
    if name == "VideoEncoder":
        from .encoder import VideoEncoder

        return VideoEncoder
    if name in ("Index", "Hit"):
        from . import index

        return getattr(index, name)
    if name == "save_pretrained":
        from .artefacts import save_pretrained

        return save_pretrained
    raise AttributeError(f"module 'vsslzoo' has no attribute {name!r}")
