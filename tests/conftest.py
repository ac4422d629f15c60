"""Shared fixtures: no network beyond loopback, a loopback Hub, tiny model folders."""

from __future__ import annotations

import pytest
from hub_server import LoopbackHub, forbid_non_loopback, point_client_at


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Every test: a connection to anything but loopback fails loudly."""
    forbid_non_loopback(monkeypatch)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A LoopbackHub with huggingface_hub pointed at it and its cache under tmp_path."""
    with LoopbackHub() as server:
        point_client_at(monkeypatch, server.endpoint, tmp_path)
        yield server


@pytest.fixture
def restore_registry():
    """Lets a test register zoo entries; the registry is restored afterwards."""
    from vsslzoo import registry

    saved = dict(registry._REGISTRY)
    yield registry
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)


TINY_PREPROCESS = dict(num_frames=4, frame_stride=1, resize=36, crop=(32, 32))


def make_tiny_config(architecture: str = "r3d_18", name: str | None = "tiny-r3d18", **model_args):
    """A ModelConfig for a width-1/8 backbone on 4x32x32 clips (fast on CPU)."""
    from vsslzoo.config import ModelConfig, PreprocessConfig, Provenance
    from vsslzoo.models import build

    model_args = {"width": 0.125, **model_args}
    preprocess = PreprocessConfig(**TINY_PREPROCESS)
    embed_dim = build(architecture, preprocess=preprocess, **model_args).embed_dim
    return ModelConfig(
        architecture=architecture, model_args=model_args, embed_dim=embed_dim,
        preprocess=preprocess, provenance=Provenance(kind="random-init", notes="test model"),
        name=name,
    )


def make_tiny_folder(folder, architecture: str = "r3d_18", seed: int = 0, **model_args):
    """Save a seeded tiny model to ``folder``; returns (config, network)."""
    import torch

    from vsslzoo.artefacts import build_network, save_pretrained

    config = make_tiny_config(architecture, **model_args)
    torch.manual_seed(seed)
    network = build_network(config)
    save_pretrained(network, config, folder)
    return config, network


@pytest.fixture
def tiny_folder(tmp_path):
    """Path of a saved tiny r3d_18 model folder."""
    folder = tmp_path / "tiny_model"
    make_tiny_folder(folder)
    return folder
