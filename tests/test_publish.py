"""vsslzoo.publish: push a model folder, load it by name, verify it, paste its zoo entry.

Everything goes through the real huggingface_hub client against the loopback Hub of
tests/hub_server.py, which speaks the LFS upload protocol; ``point_client_at`` turns the
client's Xet uploads off (``HF_HUB_DISABLE_XET``), since hf_xet is installed.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import make_tiny_config

import vsslzoo
from vsslzoo import publish, registry
from vsslzoo.cli import main
from vsslzoo.config import Provenance
from vsslzoo.errors import ChecksumError, VerificationError, WeightsMismatchError

REPO = "someone/ctp-tinyr3d-synthetic"
RUN_JSON = {
    "git": "abc1234", "world_size": 1, "videos": 32,
    "args": {"data": "/data/train.csv", "out": "runs/tiny", "resume": None, "arch": "r3d_18",
             "preset": "smoke", "bf16": False, "seed": 0, "given": ["arch", "preset"]},
}
METRICS = [{"step": 10, "loss": 4.5, "lr": 0.01}, {"step": 20, "loss": 3.25, "lr": 0.005}]


def _save_trained(folder, seed=0, **config_changes):
    """A tiny r3d_18 folder whose config says it was trained (zoo entries serve those)."""
    from vsslzoo.artefacts import build_network, save_pretrained

    config = make_tiny_config().replace(
        provenance=Provenance(kind="trained", method="ctp", data="synthetic",
                              source="python -m vsslzoo.training ctp (test run)"),
        **config_changes)
    torch.manual_seed(seed)
    save_pretrained(build_network(config), config, folder)
    return folder


@pytest.fixture
def run_folder(tmp_path):
    """RUN/model of a (pretend) training run: run.json and metrics.jsonl beside it."""
    run = tmp_path / "run"
    _save_trained(run / "model")
    (run / "run.json").write_text(json.dumps(RUN_JSON))
    lines = [json.dumps(m) for m in METRICS]
    (run / "metrics.jsonl").write_text(lines[0] + "\n{\"step\": 15, \"lo\n" + lines[1] + "\n")
    return run / "model"


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_write")
    return "hf_write"


def _clips():
    return torch.randint(0, 256, (2, 3, 4, 32, 32), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def _cli(*args):
    return CliRunner().invoke(main, list(args))


def test_push_run_folder_then_load_by_pinned_name_online_and_offline(hub, token, run_folder,
                                                                      monkeypatch):
    result = _cli("push", str(run_folder), "--repo", REPO, "--private",
                  "--revision-message", "CtP tiny, 20 steps")
    assert result.exit_code == 0, result.output
    (repo, commit, summary, _), = hub.commits
    assert (repo, summary) == (REPO, "CtP tiny, 20 steps") and len(commit) == 40
    assert hub.visibility[REPO] == "private"
    assert f"pinned reference: hf-hub:{REPO}@{commit}" in result.output
    assert f"vsslzoo registry-entry hf-hub:{REPO}@{commit}" in result.output
    files = hub.files(REPO, commit)
    assert set(files) == {".gitattributes", "config.json", "model.safetensors", "README.md",
                          "vsslzoo.json"}
    assert files["model.safetensors"] == (run_folder / "model.safetensors").read_bytes()
    assert ("PUT", "/_lfs/" + hashlib.sha256(files["model.safetensors"]).hexdigest()) \
        in hub.requests  # the weights went through the LFS upload, not inline
    card = files["README.md"].decode()
    assert "python -m vsslzoo.training ctp --data /data/train.csv --out runs/tiny --arch " \
           "r3d_18 --preset smoke" in card
    assert "| loss | 4.5 | 3.25 |" in card and "`abc1234`" in card
    assert f"vsslzoo.load('hf-hub:{REPO}')" in card
    assert hashlib.sha256(files["model.safetensors"]).hexdigest() in card
    info = json.loads(files["vsslzoo.json"])
    assert info["files"]["config.json"] == hashlib.sha256(files["config.json"]).hexdigest()
    assert info["training"]["last"] == METRICS[-1]  # the cut line in between is skipped

    local = vsslzoo.load(run_folder).embed(_clips())
    remote = vsslzoo.load(f"hf-hub:{REPO}@{commit}")
    np.testing.assert_array_equal(remote.embed(_clips()), local)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    before = len(hub.requests)
    cached = vsslzoo.load(f"hf-hub:{REPO}@{commit}")
    assert len(hub.requests) == before  # from the cache, no request
    np.testing.assert_array_equal(cached.embed(_clips()), local)
    assert _cli("verify", f"hf-hub:{REPO}@{commit}").exit_code == 0  # offline, from cache
    assert len(hub.requests) == before


def test_push_again_unchanged_makes_no_commit(hub, token, run_folder):
    first = publish.push_folder(run_folder, REPO)
    second = publish.push_folder(run_folder, f"hf-hub:{REPO}")
    assert second.commit == first.commit and len(hub.commits) == 1


def test_an_edited_card_is_uploaded_as_is_and_said_so(hub, token, run_folder):
    (run_folder / "README.md").write_text("---\nlicense: cc-by-4.0\n---\n# My model\n")
    result = _cli("push", str(run_folder), "--repo", REPO)
    assert result.exit_code == 0, result.output
    assert hub.files(REPO)["README.md"] == (run_folder / "README.md").read_bytes()
    assert "note: README.md differs from the card vsslzoo generates" in result.output
    entry = publish.registry_entry(f"hf-hub:{REPO}")
    assert entry.license == "cc-by-4.0"  # the card's front matter


def test_push_refuses_a_folder_that_does_not_load(hub, token, tmp_path):
    folder = _save_trained(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    config["model_args"]["width"], config["embed_dim"] = 0.25, 128  # 1/8-width weights
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsMismatchError, match=r"refusing to push .*shape mismatch"):
        publish.push_folder(folder, REPO)
    (folder / "config.json").unlink()
    result = _cli("push", str(folder), "--repo", REPO)
    assert result.exit_code == 1 and "Error: refusing to push" in result.output
    assert "has no config.json" in result.output
    assert not hub.requests  # refused before any request


def test_push_refuses_an_onnx_graph_of_other_weights(hub, token, tmp_path):
    folder = _save_trained(tmp_path / "model")
    (folder / "model.onnx").write_bytes(b"not checked")
    with pytest.raises(vsslzoo.ModelFolderError, match="no export.json saying which weights"):
        publish.push_folder(folder, REPO)
    (folder / "export.json").write_text(json.dumps({"weights_sha256": "0" * 64}))
    with pytest.raises(vsslzoo.ModelFolderError, match="records weights sha256 0{64}.*"
                                                       "vsslzoo export"):
        publish.push_folder(folder, REPO)
    assert not hub.requests


def test_push_without_token_says_how_to_log_in(hub, run_folder):
    result = _cli("push", str(run_folder), "--repo", REPO)
    assert result.exit_code == 1
    assert result.output.startswith("Error: no Hugging Face token")
    assert "hf auth login" in result.output and "HF_TOKEN" in result.output
    assert not hub.requests


@pytest.mark.parametrize("token_sent, status, advice", [
    ("hf_expired", 401, "refused the token (401 Unauthorized"),
    ("hf_read", 403, "may not write to someone/ctp-tinyr3d-synthetic (403 Forbidden)"),
])
def test_push_refused_by_the_hub_says_what_to_do(hub, run_folder, monkeypatch, token_sent,
                                                 status, advice):
    hub.write_tokens, hub.read_only_tokens = {"hf_write"}, {"hf_read"}
    monkeypatch.setenv("HF_TOKEN", token_sent)
    result = _cli("push", str(run_folder), "--repo", REPO)
    assert result.exit_code == 1 and advice in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1  # one line, no traceback
    assert "hf auth login" in result.output or "write access" in result.output
    assert not hub.commits


def test_verify_passes_and_catches_a_corrupt_download_and_a_changed_repo(hub, token,
                                                                         run_folder):
    pushed = publish.push_folder(run_folder, REPO)
    report = publish.verify(f"hf-hub:{REPO}")
    assert report.reference == pushed.reference and report.cosine > 0.99999
    text = "\n".join(report.checks)
    assert "model.safetensors: sha256" in text and "the Hub's LFS sha256" in text
    assert "config.json: sha256" in text and "git blob sha1 = the Hub's" in text
    assert "= vsslzoo.json" in text and "strict load: r3d_18" in text

    from huggingface_hub import hf_hub_download

    cached = hf_hub_download(REPO, "model.safetensors", revision=pushed.commit)
    data = bytearray(open(cached, "rb").read())
    data[-1] ^= 0xFF
    with open(cached, "wb") as handle:
        handle.write(bytes(data))
    result = _cli("verify", f"hf-hub:{REPO}")
    assert result.exit_code == 1
    assert "model.safetensors in the local cache" in result.output
    assert "the Hub's LFS metadata says" in result.output and "--force-download" in result.output
    assert _cli("verify", f"hf-hub:{REPO}", "--force-download").exit_code == 0

    # someone replaces the weights on the Hub and leaves vsslzoo.json as pushed
    tree = hub.files(REPO)
    _save_trained(run_folder.parent / "other", seed=1)
    tree["model.safetensors"] = (run_folder.parent / "other" / "model.safetensors").read_bytes()
    hub.add_commit(REPO, tree)
    with pytest.raises(ChecksumError, match="model.safetensors has sha256 .* but vsslzoo.json "
                                            "recorded .* changed after the push"):
        publish.verify(f"hf-hub:{REPO}")
    publish.verify(pushed.reference)  # the pinned commit still verifies


def test_verify_catches_a_changed_preprocessing(hub, token, run_folder):
    publish.push_folder(run_folder, REPO)
    tree = hub.files(REPO)
    config = json.loads(tree["config.json"])
    config["preprocess"]["mean"] = [0.5, 0.5, 0.5]  # shapes unchanged: only embeddings tell
    tree["config.json"] = json.dumps(config).encode()
    info = json.loads(tree["vsslzoo.json"])
    info["files"]["config.json"] = hashlib.sha256(tree["config.json"]).hexdigest()
    tree["vsslzoo.json"] = json.dumps(info).encode()
    hub.add_commit(REPO, tree)
    with pytest.raises(VerificationError, match=r"embedding of the reference clip differs .*"
                                                r"cosine 0\.\d+, needs >= 0.9999"):
        publish.verify(f"hf-hub:{REPO}")


def test_registry_entry_pastes_into_the_zoo_and_loads_by_name(hub, token, run_folder,
                                                              restore_registry, monkeypatch):
    pushed = publish.push_folder(run_folder, REPO)
    publish.push_folder(_save_trained(run_folder.parent / "v2", seed=1), REPO)  # main moves on
    result = _cli("registry-entry", pushed.reference)
    assert result.exit_code == 0, result.output
    source = result.output.split("\n", 1)[1].strip().rstrip(",")
    entry = eval(source, vars(registry))  # what a maintainer pastes into registry.py
    assert entry.name == "ctp-tinyr3d-synthetic" and (entry.method, entry.data) == ("ctp",
                                                                                     "synthetic")
    assert entry.revision == pushed.commit and entry.hub_repo == REPO
    assert entry.pinned_files() == {k: v for k, v in pushed.files.items()}
    assert registry.pinning_problems(entry) == []
    assert "--preset smoke" in entry.obtain and entry.available
    as_json = json.loads(_cli("registry-entry", pushed.reference, "--json").output)
    assert as_json["files"] == entry.pinned_files() and as_json["revision"] == pushed.commit

    registry.register(entry)
    fetched = []
    real = vsslzoo.loading.download_files
    monkeypatch.setattr(vsslzoo.loading, "download_files",
                        lambda ref, names, **kw: (fetched.append((ref, names)),
                                                  real(ref, names, **kw))[1])
    model = vsslzoo.load(entry.name)
    assert [(ref.revision, set(names)) for ref, names in fetched] == \
        [(pushed.commit, set(entry.pinned_files()))]  # loading uses exactly the pinned files
    np.testing.assert_array_equal(model.embed(_clips()),
                                  vsslzoo.load(run_folder).embed(_clips()))
    assert "= the zoo entry's pin" in "\n".join(publish.verify(entry.name).checks)

    bad = registry.ZooEntry(**{**entry.__dict__, "config_sha256": "1" * 64})
    registry.register(bad, overwrite=True)
    with pytest.raises(ChecksumError, match="config.json is [0-9a-f]{64}, but the registry "
                                            "records 1{64}"):
        vsslzoo.load(entry.name)


def test_registry_entry_refuses_untrained_weights_and_another_models_name(hub, token,
                                                                         tmp_path):
    from conftest import make_tiny_folder

    make_tiny_folder(tmp_path / "random")  # provenance random-init
    pushed = publish.push_folder(tmp_path / "random", REPO)
    result = _cli("registry-entry", pushed.reference)
    assert result.exit_code == 1 and "provenance.kind is 'random-init'" in result.output
    pushed = publish.push_folder(_save_trained(tmp_path / "trained"), REPO)
    result = _cli("registry-entry", pushed.reference, "--name", "ctp-r3d18-k400")
    assert result.exit_code == 1
    assert "holds another model than the zoo entry 'ctp-r3d18-k400'" in result.output


def test_encoder_push_to_hub(hub, token, tmp_path):
    model = vsslzoo.load(_save_trained(tmp_path / "model"))
    local = publish.verify(tmp_path / "model")  # a folder: nothing recorded, still loads
    assert "(no embedding recorded to compare)" in local.checks[-1] and not hub.requests
    pushed = model.push_to_hub("someone/from-python", commit_message="from Python")
    assert hub.commits[-1][2] == "from Python"
    np.testing.assert_array_equal(vsslzoo.load(pushed.reference).embed(_clips()),
                                  model.embed(_clips()))


def test_reference_clip_is_fixed_bytes():
    """Recorded embeddings stay comparable only while these bytes never change."""
    from vsslzoo.config import PreprocessConfig

    clip = publish.reference_clip(PreprocessConfig(num_frames=4, frame_stride=1, resize=36,
                                                   crop=(32, 32)))
    assert clip.shape == (1, 3, 4, 32, 32) and clip.dtype == np.uint8
    assert hashlib.sha256(clip.tobytes()).hexdigest() == REFERENCE_CLIP_SHA256
    assert clip.max() >= 192 and clip.min() < 64  # a bright square over dark noise
    moved = np.abs(clip[0, :, 1].astype(int) - clip[0, :, 0].astype(int)).mean()
    assert moved > 10  # frames differ: there is motion to embed


REFERENCE_CLIP_SHA256 = "d28ed6a4c93a2407f05771931f8a3463de53bfeecf332466f253fc3979fe91e4"
