"""ModelConfig / PreprocessConfig: JSON round trip and validation messages."""

from __future__ import annotations

import json

import pytest

from vsslzoo.config import ModelConfig, PreprocessConfig, Provenance
from vsslzoo.errors import ConfigError


def _config() -> ModelConfig:
    return ModelConfig(
        architecture="r2plus1d_18",
        model_args={"midplanes": "ctp", "bn_eps": 1e-3, "width": 0.5},
        embed_dim=256,
        preprocess=PreprocessConfig(num_frames=8, frame_stride=3, resize=144, crop=(128, 112),
                                    mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225)),
        provenance=Provenance(kind="trained", method="ctp", data="synthetic", source="runs/x"),
        name="my-model",
    )


def test_json_round_trip_is_exact():
    config = _config()
    again = ModelConfig.from_json(config.to_json())
    assert again == config
    assert json.loads(config.to_json())["vsslzoo_version"]


def test_from_file_round_trip(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(_config().to_json())
    assert ModelConfig.from_file(path) == _config()


def test_crop_int_means_square():
    assert PreprocessConfig(crop=112).crop == (112, 112)
    assert PreprocessConfig().input_shape == (3, 16, 112, 112)


def test_unknown_keys_are_named():
    data = _config().to_dict()
    data["preprocess"]["numframes"] = 16
    with pytest.raises(ConfigError, match=r"preprocess: unknown key\(s\) \['numframes'\]"):
        ModelConfig.from_dict(data)
    data = _config().to_dict()
    data["archtecture"] = "x"
    with pytest.raises(ConfigError, match="archtecture"):
        ModelConfig.from_dict(data)


def test_invalid_json_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="config.json is not valid JSON"):
        ModelConfig.from_file(path)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"num_frames": 0}, "num_frames must be >= 1"),
        ({"frame_stride": 0}, "frame_stride must be >= 1"),
        ({"resize": 100}, "smaller than the crop"),
        ({"std": (0.2, 0.0, 0.2)}, "std must be positive"),
        ({"channel_order": "rbg"}, "channel_order must be"),
        ({"fps": -1.0}, "fps must be positive"),
    ],
)
def test_preprocess_validation(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        PreprocessConfig(**kwargs)


def test_model_config_validation():
    with pytest.raises(ConfigError, match="embed_dim"):
        ModelConfig(architecture="r3d_18", embed_dim=0)
    with pytest.raises(ConfigError, match="missing 'architecture'"):
        ModelConfig.from_dict({"embed_dim": 3})
    with pytest.raises(ConfigError, match="provenance.kind"):
        Provenance(kind="stolen")
