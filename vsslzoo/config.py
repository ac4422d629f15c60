"""Model artefact configuration: what travels with the weights in ``config.json``.

``ModelConfig`` = architecture + builder arguments + embedding size + preprocessing +
provenance. ``PreprocessConfig`` holds every input fact (clip length, frame stride,
resize, crop, mean, std, channel order) so that extraction, export and evaluation read
them from the model instead of hard-coding 16x112^2.

Both are plain dataclasses with a strict JSON round trip: unknown keys are an error
that names them, so a typo in a hand-edited config.json is caught at load time.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError

CONFIG_FILENAME = "config.json"
WEIGHTS_FILENAME = "model.safetensors"
CARD_FILENAME = "README.md"

# Kinetics statistics used by torchvision's video models (RGB, [0, 1] scale).
KINETICS_MEAN = (0.43216, 0.394666, 0.37645)
KINETICS_STD = (0.22803, 0.22145, 0.216989)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PROVENANCE_KINDS = ("converted", "trained", "unpublished", "random-init")


def _check_keys(cls: type, data: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; known keys are {sorted(known)}. "
            "Fix the file, or upgrade vsslzoo if a newer version wrote it."
        )


@dataclass(frozen=True)
class PreprocessConfig:
    """How raw video becomes the uint8 clips a model takes.

    Attributes:
        num_frames: frames per clip (T).
        frame_stride: take every ``frame_stride``-th decoded frame (in the video's own
            frame rate) when ``fps`` is None.
        fps: if set, resample the video to this many frames per second instead of
            using ``frame_stride``.
        resize: short side in pixels after resizing (aspect ratio kept).
        crop: (height, width) of the centre crop in pixels.
        mean, std: per-channel statistics on the [0, 1] scale, in ``channel_order``.
        channel_order: "rgb" or "bgr": the order the network expects. Decoders always
            produce RGB; the network's input module reorders if needed.
        normalize: "dataset" (default): ``(x / 255 - mean) / std`` with the data set's
            statistics above; "clip": each clip is standardised by its own mean and
            standard deviation over all channels and pixels (``(x - m) / sqrt(v + 1)`` on the
            0..255 scale; ``mean``/``std`` unused), so a global brightness shift or
            contrast change of the video leaves the network's input unchanged; "frame":
            the same per frame (over channels and pixels), so brightness and contrast
            changes from frame to frame (flicker, auto-exposure) do too.
    """

    num_frames: int = 16
    frame_stride: int = 2
    fps: float | None = None
    resize: int = 128
    crop: tuple[int, int] = (112, 112)
    mean: tuple[float, float, float] = KINETICS_MEAN
    std: tuple[float, float, float] = KINETICS_STD
    channel_order: str = "rgb"
    normalize: str = "dataset"

    def __post_init__(self) -> None:
        crop = self.crop
        if isinstance(crop, int):
            crop = (crop, crop)
        object.__setattr__(self, "crop", tuple(int(c) for c in crop))
        object.__setattr__(self, "mean", tuple(float(m) for m in self.mean))
        object.__setattr__(self, "std", tuple(float(s) for s in self.std))
        if self.num_frames < 1:
            raise ConfigError(f"preprocess.num_frames must be >= 1, got {self.num_frames}")
        if self.frame_stride < 1:
            raise ConfigError(f"preprocess.frame_stride must be >= 1, got {self.frame_stride}")
        if self.fps is not None and self.fps <= 0:
            raise ConfigError(f"preprocess.fps must be positive or null, got {self.fps}")
        if len(self.crop) != 2 or min(self.crop) < 1:
            raise ConfigError(f"preprocess.crop must be (height, width) > 0, got {self.crop}")
        if self.resize < min(self.crop):
            raise ConfigError(
                f"preprocess.resize (short side {self.resize} px) is smaller than the crop "
                f"{self.crop}; make resize >= the crop's short side"
            )
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ConfigError("preprocess.mean and preprocess.std need 3 values (one per channel)")
        if min(self.std) <= 0:
            raise ConfigError(f"preprocess.std must be positive, got {self.std}")
        if self.normalize not in ("dataset", "clip", "frame"):
            raise ConfigError(
                f"preprocess.normalize must be 'dataset', 'clip' or 'frame', "
                f"got {self.normalize!r}"
            )
        if self.channel_order not in ("rgb", "bgr"):
            raise ConfigError(
                f"preprocess.channel_order must be 'rgb' or 'bgr', got {self.channel_order!r}"
            )

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(3, T, H, W) of one clip."""
        return (3, self.num_frames, self.crop[0], self.crop[1])

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["crop"] = list(self.crop)
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessConfig:
        _check_keys(cls, data, "preprocess")
        return cls(**data)


@dataclass(frozen=True)
class Provenance:
    """Where a model's weights come from.

    Attributes:
        kind: "converted" (official weights converted to this layout), "trained" (trained
            with ``vsslzoo.training``), "unpublished" (no weights exist yet), or
            "random-init".
        method: pretraining method ("ctp", "paramcrop", "ca", "corpf", "corpm").
        data: pretraining data set ("kinetics400", "ucf101", "ssv2", "synthetic", ...).
        source: where the weights came from (checkpoint URL, run folder, command).
        notes: anything else a user should know (free text).
    """

    kind: str = "unpublished"
    method: str = ""
    data: str = ""
    source: str = ""
    notes: str = ""

    def __post_init__(self) -> None:
        if self.kind not in PROVENANCE_KINDS:
            raise ConfigError(
                f"provenance.kind must be one of {PROVENANCE_KINDS}, got {self.kind!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        _check_keys(cls, data, "provenance")
        return cls(**data)


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model and feed it: the content of config.json."""

    architecture: str
    model_args: dict[str, Any] = field(default_factory=dict)
    embed_dim: int = 0
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    provenance: Provenance = field(default_factory=Provenance)
    name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, str) or not self.architecture:
            raise ConfigError("config.architecture must be a non-empty string")
        if not isinstance(self.model_args, dict):
            raise ConfigError(f"config.model_args must be an object, got {self.model_args!r}")
        if self.embed_dim < 1:
            raise ConfigError(f"config.embed_dim must be >= 1, got {self.embed_dim}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "architecture": self.architecture,
            "model_args": dict(self.model_args),
            "embed_dim": self.embed_dim,
            "preprocess": self.preprocess.to_dict(),
            "provenance": self.provenance.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "config") -> ModelConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object, got {type(data).__name__}")
        data = dict(data)
        data.pop("vsslzoo_version", None)  # informative only
        _check_keys(cls, data, where)
        if "architecture" not in data:
            raise ConfigError(f"{where}: missing 'architecture'")
        if "embed_dim" not in data:
            raise ConfigError(f"{where}: missing 'embed_dim'")
        return cls(
            architecture=data["architecture"],
            model_args=dict(data.get("model_args") or {}),
            embed_dim=int(data["embed_dim"]),
            preprocess=PreprocessConfig.from_dict(data.get("preprocess") or {}),
            provenance=Provenance.from_dict(data.get("provenance") or {}),
            name=data.get("name"),
        )

    def to_json(self) -> str:
        from ._version import __version__

        payload = self.to_dict()
        payload["vsslzoo_version"] = __version__
        return json.dumps(payload, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "config.json") -> ModelConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where} is not valid JSON ({exc}); fix or re-create it") from exc
        return cls.from_dict(data, where=where)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ModelConfig:
        with open(path, encoding="utf-8") as handle:
            return cls.from_json(handle.read(), where=str(path))

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)
