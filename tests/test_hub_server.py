"""The real huggingface_hub client against tests/hub_server.py's loopback Hub."""

from __future__ import annotations

import hashlib
import io
import os

import pytest
from huggingface_hub import constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

REPO = "vsslzoo/tiny"
CONFIG_V1 = b'{"arch": "r3d", "dim": 8}\n'
WEIGHTS_V1 = bytes(range(256)) * 8


def _read(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _gets(hub, filename):
    return [r for r in hub.requests if r[0] == "GET" and r[1].endswith("/" + filename)]


def test_client_points_at_loopback_and_tmp_cache(hub, tmp_path):
    assert constants.ENDPOINT == hub.endpoint and hub.endpoint.startswith("http://127.0.0.1:")
    assert constants.HF_HUB_CACHE.startswith(str(tmp_path))


def test_module_level_api_helpers_use_loopback(hub):
    import huggingface_hub

    sha = hub.add_commit(REPO, {"config.json": CONFIG_V1, "sub/w.bin": b"\0" * 10})
    assert huggingface_hub.model_info(REPO).sha == sha
    assert sorted(huggingface_hub.list_repo_files(REPO)) == ["config.json", "sub/w.bin"]


def test_download_two_files_into_cache(hub, tmp_path):
    sha = hub.add_commit(REPO, {"config.json": CONFIG_V1, "model.safetensors": WEIGHTS_V1})
    config = hf_hub_download(REPO, "config.json")
    weights = hf_hub_download(REPO, "model.safetensors")
    assert _read(config) == CONFIG_V1 and _read(weights) == WEIGHTS_V1
    assert config.startswith(str(tmp_path)) and f"snapshots{os.sep}{sha}" in config
    refs_main = os.path.join(constants.HF_HUB_CACHE, "models--vsslzoo--tiny", "refs", "main")
    assert _read(refs_main).decode() == sha
    # The LFS-like file is stored under its sha256, as for the real Hub.
    assert os.path.basename(os.path.realpath(weights)) == hashlib.sha256(WEIGHTS_V1).hexdigest()
    assert len(_gets(hub, "config.json")) == 1 and len(_gets(hub, "model.safetensors")) == 1


def test_second_download_is_served_from_cache(hub):
    hub.add_commit(REPO, {"config.json": CONFIG_V1})
    first = hf_hub_download(REPO, "config.json")
    hub.requests.clear()
    second = hf_hub_download(REPO, "config.json")
    assert second == first
    assert hub.requests == [("HEAD", f"/{REPO}/resolve/main/config.json")]  # metadata check only, no GET


def test_tag_and_commit_id_pin_old_content_after_main_moves(hub):
    old = hub.add_commit(REPO, {"config.json": CONFIG_V1}, tag="v1.0")
    new = hub.add_commit(REPO, {"config.json": b'{"arch": "r3d", "dim": 16}\n'})
    assert old != new
    assert _read(hf_hub_download(REPO, "config.json")) == b'{"arch": "r3d", "dim": 16}\n'
    assert _read(hf_hub_download(REPO, "config.json", revision="v1.0")) == CONFIG_V1
    assert _read(hf_hub_download(REPO, "config.json", revision=old)) == CONFIG_V1
    # A cached file pinned by commit id is returned without any request at all.
    hub.requests.clear()
    assert _read(hf_hub_download(REPO, "config.json", revision=old)) == CONFIG_V1
    assert hub.requests == []


def test_commit_replaces_whole_tree(hub):
    hub.add_commit(REPO, {"a.txt": b"a", "b.txt": b"b"})
    hub.add_commit(REPO, {"a.txt": b"a2"})
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "b.txt")


def test_offline_mode_uses_cache_without_requests(hub, monkeypatch):
    hub.add_commit(REPO, {"config.json": CONFIG_V1})
    path = hf_hub_download(REPO, "config.json")
    hub.requests.clear()
    assert hf_hub_download(REPO, "config.json", local_files_only=True) == path
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert hf_hub_download(REPO, "config.json") == path
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(REPO, "never-downloaded.json")
    assert hub.requests == []


def test_hub_down_falls_back_to_cache(hub):
    hub.add_commit(REPO, {"config.json": CONFIG_V1})
    path = hf_hub_download(REPO, "config.json")
    hub.fail_next(1, status=500)
    assert hf_hub_download(REPO, "config.json") == path


def test_missing_file_raises_entry_not_found(hub):
    hub.add_commit(REPO, {"config.json": CONFIG_V1})
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "nope.bin")


def test_unknown_revision_raises_revision_not_found(hub):
    hub.add_commit(REPO, {"config.json": CONFIG_V1})
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="no-such-branch")


def test_unknown_repo_raises_repository_not_found(hub):
    hub.add_commit(REPO, {"config.json": CONFIG_V1})
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("vsslzoo/absent", "config.json")
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("vsslzoo/absent")


def test_snapshot_download_fetches_all_files(hub, tmp_path):
    files = {"config.json": CONFIG_V1, "model.safetensors": WEIGHTS_V1, "sub/dir/notes.txt": b"hello\n"}
    sha = hub.add_commit(REPO, files)
    folder = snapshot_download(REPO)
    assert folder.startswith(str(tmp_path)) and os.path.basename(folder) == sha
    for name, data in files.items():
        assert _read(os.path.join(folder, *name.split("/"))) == data
    # Offline afterwards: same folder, no request.
    hub.requests.clear()
    assert snapshot_download(REPO, local_files_only=True) == folder
    assert hub.requests == []


def test_resumed_download_range_request(hub):
    """The client's resume path sends `Range: bytes=N-`; the server must answer 206 with the tail only."""
    from huggingface_hub.file_download import hf_hub_url, http_get

    hub.add_commit(REPO, {"model.safetensors": WEIGHTS_V1})
    # A prefix that differs from the real one shows the tail was appended: a 200 would have rewritten it.
    buf = io.BytesIO(b"x" * 1000)
    buf.seek(1000)
    http_get(hf_hub_url(REPO, "model.safetensors"), buf, resume_size=1000, expected_size=len(WEIGHTS_V1))
    assert buf.getvalue() == b"x" * 1000 + WEIGHTS_V1[1000:]


def test_non_loopback_connections_are_refused(hub):
    import socket

    with pytest.raises(ConnectionRefusedError, match="non-loopback"):
        socket.create_connection(("10.255.255.1", 80), timeout=0.1)
