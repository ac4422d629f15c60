"""Model folders: save_pretrained, strict loading, and every kind of bad folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import make_tiny_config, make_tiny_folder

import vsslzoo
from vsslzoo.artefacts import build_network, save_pretrained
from vsslzoo.errors import ConfigError, ModelFolderError, UnknownModelError, WeightsMismatchError


def _clips(config, batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, *config.preprocess.input_shape), dtype=torch.uint8,
                         generator=generator)


def test_save_then_load_gives_identical_embeddings(tmp_path):
    config, network = make_tiny_folder(tmp_path / "m", seed=3)
    model = vsslzoo.load(tmp_path / "m", device="cpu")
    clips = _clips(config)
    with torch.inference_mode():
        expected = torch.nn.functional.normalize(network.eval()(clips), dim=1).numpy()
    got = model.embed(clips)
    assert got.dtype == np.float32 and got.shape == (2, config.embed_dim)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-5)
    assert model.embed_dim == config.embed_dim and model.config == config
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "README.md", "config.json", "model.safetensors"]


def test_loaded_model_round_trips_through_save_pretrained(tmp_path, tiny_folder):
    model = vsslzoo.load(str(tiny_folder))
    model.save_pretrained(tmp_path / "copy")
    again = vsslzoo.load(tmp_path / "copy")
    clips = _clips(model.config)
    np.testing.assert_array_equal(model.embed(clips), again.embed(clips))


def test_card_of_saved_folder_has_front_matter(tiny_folder):
    from vsslzoo.zoo_docs import parse_front_matter

    text = (tiny_folder / "README.md").read_text()
    meta = parse_front_matter(text)
    assert meta["library_name"] == "vsslzoo" and "r3d_18" in meta["tags"]
    assert "4 frames" in text and "random-init" in text


def test_bf16_on_cpu_close_to_fp32(tiny_folder):
    fp32 = vsslzoo.load(tiny_folder, device="cpu")
    bf16 = vsslzoo.load(tiny_folder, device="cpu", precision="bf16")
    clips = _clips(fp32.config)
    cosine = (fp32.embed(clips) * bf16.embed(clips)).sum(axis=1)
    assert bf16.precision == "bf16" and (cosine > 0.98).all()


def test_embed_checks_clip_shape(tiny_folder):
    model = vsslzoo.load(tiny_folder)
    with pytest.raises(ValueError, match=r"this model takes \(3, 4, 32, 32\)"):
        model.embed(np.zeros((1, 3, 16, 112, 112), np.uint8))


def test_folder_without_config_json(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ModelFolderError, match=r"has no config.json .*model.safetensors"):
        vsslzoo.load(tmp_path)


def test_missing_weights_file(tiny_folder):
    (tiny_folder / "model.safetensors").unlink()
    with pytest.raises(ModelFolderError, match="config but no weights"):
        vsslzoo.load(tiny_folder)


def test_zero_byte_weights(tiny_folder):
    (tiny_folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelFolderError, match=r"model.safetensors is empty"):
        vsslzoo.load(tiny_folder)


@pytest.mark.parametrize("keep", [0.5, 0.99])
def test_truncated_weights(tiny_folder, keep):
    path = tiny_folder / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFolderError, match="corrupt or truncated"):
        vsslzoo.load(tiny_folder)


def test_garbage_weights(tiny_folder):
    (tiny_folder / "model.safetensors").write_bytes(b"\x00" * 64 + b"not a safetensors file")
    with pytest.raises(ModelFolderError, match="corrupt or truncated"):
        vsslzoo.load(tiny_folder)


def test_weights_of_another_architecture_name_the_keys(tmp_path):
    make_tiny_folder(tmp_path / "m", architecture="r2d3d_18")
    config = make_tiny_config("r3d_18")
    (tmp_path / "m" / "config.json").write_text(config.to_json())  # claims r3d_18
    with pytest.raises(WeightsMismatchError) as info:
        vsslzoo.load(tmp_path / "m")
    message = str(info.value)
    assert "102 missing key(s): " in message and "layer1.0.conv1.0.weight" in message
    assert "unexpected key(s): bn1.bias" in message and "conv1.weight" in message
    assert "'r3d_18'" in message


def test_weights_of_another_variant_name_the_shapes(tmp_path):
    make_tiny_folder(tmp_path / "m", architecture="r2plus1d_18", midplanes="ctp")
    config = make_tiny_config("r2plus1d_18")  # torchvision mid-planes: other shapes
    (tmp_path / "m" / "config.json").write_text(config.to_json())
    with pytest.raises(WeightsMismatchError, match=r"shape mismatch\(es\).*layer2.0.conv2"):
        vsslzoo.load(tmp_path / "m")


def test_config_embed_dim_must_match_architecture(tiny_folder):
    data = json.loads((tiny_folder / "config.json").read_text())
    data["embed_dim"] = 999
    (tiny_folder / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="embed_dim=999"):
        vsslzoo.load(tiny_folder)


def test_save_pretrained_rejects_wrong_embed_dim(tmp_path):
    config = make_tiny_config()
    network = build_network(config)
    with pytest.raises(ConfigError, match="embed_dim"):
        save_pretrained(network, config.replace(embed_dim=7), tmp_path)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"precision": "fp8"}, "unsupported precision 'fp8'; choose one of fp32, bf16, fp16"),
        ({"precision": "fp16", "device": "cpu"}, "fp16' needs a CUDA device"),
        ({"device": "tpu"}, "unsupported device 'tpu'"),
    ],
)
def test_bad_device_or_precision(tiny_folder, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        vsslzoo.load(tiny_folder, **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_requested_without_cuda(tiny_folder):
    with pytest.raises(ConfigError, match="CUDA is not available here"):
        vsslzoo.load(tiny_folder, device="cuda")


def test_missing_folder_and_unknown_name(tmp_path, monkeypatch):
    with pytest.raises(ModelFolderError, match="no such model folder"):
        vsslzoo.load(str(tmp_path / "nope"))
    with pytest.raises(UnknownModelError, match="did you mean 'ctp-r2plus1d-k400'"):
        vsslzoo.load("ctp-r2plus1d-k40")
    monkeypatch.setattr("vsslzoo.loading.DEFAULT_MODEL", None)  # a build without a default
    with pytest.raises(UnknownModelError, match="no embedded default model"):
        vsslzoo.load()


def test_a_file_is_not_a_model_folder(tiny_folder):
    with pytest.raises(ModelFolderError, match="is a file, not a model folder"):
        vsslzoo.load(tiny_folder / "config.json")
