"""vsslzoo.load through the real huggingface_hub client against a loopback Hub."""

from __future__ import annotations

import hashlib
import socket
import time

import numpy as np
import pytest
import torch
from conftest import make_tiny_folder
from hub_server import point_client_at

import vsslzoo
from vsslzoo import registry
from vsslzoo.config import Provenance
from vsslzoo.errors import ChecksumError, HubError, ModelFolderError, ModelNotAvailableError

REPO = "someone/tiny-video"


def _publish(hub, tmp_path, seed, **kwargs):
    """Save a tiny model with ``seed`` and commit its folder to REPO; returns (commit, sha)."""
    folder = tmp_path / f"src{seed}"
    make_tiny_folder(folder, seed=seed)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    commit = hub.add_commit(REPO, files, **kwargs)
    return commit, hashlib.sha256(files["model.safetensors"]).hexdigest(), folder


def _clips():
    return torch.randint(0, 256, (2, 3, 4, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def _weight_gets(hub):
    return [p for m, p in hub.requests if m == "GET" and p.endswith("model.safetensors")]


def test_download_matches_local_folder_and_reuses_cache_offline(hub, tmp_path, monkeypatch):
    _, _, folder = _publish(hub, tmp_path, seed=1)
    remote = vsslzoo.load(f"hf-hub:{REPO}")
    local = vsslzoo.load(folder)
    np.testing.assert_array_equal(remote.embed(_clips()), local.embed(_clips()))
    assert len(_weight_gets(hub)) == 1

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = len(hub.requests)
    again = vsslzoo.load(f"hf-hub:{REPO}")
    assert len(hub.requests) == before  # offline: no request at all
    np.testing.assert_array_equal(again.embed(_clips()), local.embed(_clips()))


def test_revision_pinning(hub, tmp_path):
    old_commit, _, old_folder = _publish(hub, tmp_path, seed=1, tag="v1")
    _, _, new_folder = _publish(hub, tmp_path, seed=2)
    old = vsslzoo.load(old_folder).embed(_clips())
    new = vsslzoo.load(new_folder).embed(_clips())
    assert not np.allclose(old, new)
    np.testing.assert_array_equal(vsslzoo.load(f"hf-hub:{REPO}").embed(_clips()), new)
    np.testing.assert_array_equal(vsslzoo.load(f"hf-hub:{REPO}@v1").embed(_clips()), old)
    np.testing.assert_array_equal(
        vsslzoo.load(f"hf-hub:{REPO}", revision=old_commit).embed(_clips()), old)
    with pytest.raises(HubError, match="revision 'v9' does not exist"):
        vsslzoo.load(f"hf-hub:{REPO}@v9")


def _register(restore_registry, sha256, revision=None, kind="trained"):
    base = registry.get_entry("ctp-r3d18-k400")
    from conftest import make_tiny_config

    config = make_tiny_config()
    entry = registry.ZooEntry(
        name="tiny-r3d18-test", method="ctp", architecture=config.architecture,
        model_args=config.model_args, embed_dim=config.embed_dim,
        preprocess=config.preprocess, data="synthetic", hub_repo=REPO, revision=revision,
        sha256=sha256, provenance=Provenance(kind=kind, method="ctp", data="synthetic"),
        obtain=base.obtain,
    )
    restore_registry.register(entry)
    return entry


def test_zoo_entry_downloads_pinned_revision_and_checks_sha256(hub, tmp_path, restore_registry):
    commit, sha, folder = _publish(hub, tmp_path, seed=1)
    _publish(hub, tmp_path, seed=2)  # main moves on; the entry pins the first commit
    _register(restore_registry, sha, revision=commit)
    model = vsslzoo.load("tiny-r3d18-test")
    assert model.name == "tiny-r3d18-test"
    np.testing.assert_array_equal(model.embed(_clips()), vsslzoo.load(folder).embed(_clips()))


def test_sha256_mismatch_is_rejected(hub, tmp_path, restore_registry):
    _publish(hub, tmp_path, seed=1)
    _register(restore_registry, "0" * 64)
    with pytest.raises(ChecksumError, match=r"sha256 of .*model.safetensors is [0-9a-f]{64}, "
                                            r"but the registry records 0{64}"):
        vsslzoo.load("tiny-r3d18-test")


def test_unpublished_entry_says_how_to_obtain_weights(hub):
    with pytest.raises(ModelNotAvailableError) as info:
        vsslzoo.load("ctp-r2plus1d-k400")
    message = str(info.value)
    assert "no published weights" in message and "vsslzoo.training convert ctp" in message
    assert "--arch r2plus1d_18" in message and "vsslzoo.load('path/to/folder')" in message
    assert not hub.requests  # nothing was asked of the Hub


def test_offline_and_not_cached_is_one_clear_error(hub, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE"):
        vsslzoo.load(f"hf-hub:{REPO}")
    assert not hub.requests


def test_unreachable_endpoint_fails_fast_with_advice(monkeypatch, tmp_path):
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    point_client_at(monkeypatch, f"http://127.0.0.1:{port}", tmp_path)
    start = time.monotonic()
    with pytest.raises(HubError, match="cannot be reached.*connect to the internet"):
        vsslzoo.load(f"hf-hub:{REPO}")
    assert time.monotonic() - start < 5


def test_unknown_repo_and_non_model_repo(hub):
    with pytest.raises(HubError, match="not found"):
        vsslzoo.load("hf-hub:someone/nothing-here")
    hub.add_commit("someone/not-a-model", {"README.md": b"hello"})
    with pytest.raises(ModelFolderError, match="has no config.json, so it is not a vsslzoo model"):
        vsslzoo.load("hf-hub:someone/not-a-model")
    with pytest.raises(HubError, match="not a Hub reference"):
        vsslzoo.load("hf-hub:just-a-name")


def test_zoo_repo_holding_another_model_is_rejected(hub, tmp_path, restore_registry):
    _, sha, _ = _publish(hub, tmp_path, seed=1)
    entry = _register(restore_registry, sha)
    restore_registry.register(
        registry.ZooEntry(**{**entry.__dict__, "model_args": {"width": 0.25}}), overwrite=True)
    with pytest.raises(ModelFolderError, match="the repository does not hold this model"):
        vsslzoo.load("tiny-r3d18-test")


def test_describe_hub_model_fetches_config_only(hub, tmp_path):
    _publish(hub, tmp_path, seed=1)
    info = vsslzoo.describe(f"hf-hub:{REPO}")
    assert info["architecture"] == "r3d_18" and info["source"] == "hub"
    assert info["preprocess"]["num_frames"] == 4
    assert not _weight_gets(hub)


def test_weights_are_hashed_once_per_load(hub, tmp_path, restore_registry, monkeypatch):
    from vsslzoo import artefacts

    _, sha, _ = _publish(hub, tmp_path, seed=1)
    _register(restore_registry, sha)
    hashed = []
    sha256_of = artefacts.sha256_of
    monkeypatch.setattr(artefacts, "sha256_of", lambda path, *a: (hashed.append(path),
                                                                   sha256_of(path, *a))[1])
    model = vsslzoo.load("tiny-r3d18-test")
    assert len(hashed) == 1 and model.weights_sha256 == sha  # issue 15.10


def test_corrupt_cached_weights_are_fixed_by_the_advised_force_download(
        hub, tmp_path, restore_registry):
    _, sha, _ = _publish(hub, tmp_path, seed=1)
    _register(restore_registry, sha)
    vsslzoo.load("tiny-r3d18-test")  # now in the cache
    from pathlib import Path

    from huggingface_hub import hf_hub_download

    cached = Path(hf_hub_download(REPO, "model.safetensors", local_files_only=True)).resolve()
    data = bytearray(cached.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit in the last tensor: still a readable file
    cached.write_bytes(bytes(data))
    with pytest.raises(ChecksumError) as info:
        vsslzoo.load("tiny-r3d18-test")
    assert "vsslzoo.load('tiny-r3d18-test', force_download=True)" in str(info.value)
    model = vsslzoo.load("tiny-r3d18-test", force_download=True)  # what the advice says
    assert model.weights_sha256 == sha

