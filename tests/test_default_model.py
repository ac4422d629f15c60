"""The embedded default model: shipped weights, offline loading, every command without -m."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from videos import bikes_path, write_video

import vsslzoo
from vsslzoo import registry
from vsslzoo.artefacts import sha256_of
from vsslzoo.cli import main as cli

ENTRY = registry.get_entry(vsslzoo.DEFAULT_MODEL)


def test_the_default_is_an_embedded_checked_zoo_entry():
    assert vsslzoo.DEFAULT_MODEL == registry.DEFAULT_MODEL
    assert ENTRY.available and ENTRY.offline and ENTRY.provenance.kind == "trained"
    folder = ENTRY.embedded_folder()
    weights = folder / "model.safetensors"
    assert weights.stat().st_size <= 10 * 2**20  # the budget for the wheel
    assert sha256_of(weights) == ENTRY.sha256
    config = vsslzoo.ModelConfig.from_file(folder / "config.json")
    assert (config.architecture, config.model_args, config.embed_dim, config.preprocess) == (
        ENTRY.architecture, ENTRY.model_args, ENTRY.embed_dim, ENTRY.preprocess)
    assert ENTRY.measured, "the card must carry the measured scores"


def test_loads_offline_in_a_fresh_process_without_a_model_name(tmp_path):
    code = ("import vsslzoo, numpy as np\n"
            "m = vsslzoo.load()\n"
            "clips = np.zeros((2, *m.preprocess.input_shape), np.uint8)\n"
            "print(m.name, m.embed(clips).shape)\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-cache"),
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == f"{vsslzoo.DEFAULT_MODEL} (2, {ENTRY.embed_dim})"
    assert not (tmp_path / "empty-cache").exists()  # nothing was downloaded or cached


def test_a_tampered_embedded_file_is_refused(tmp_path, monkeypatch):
    import shutil

    copy = tmp_path / "default_model"
    shutil.copytree(ENTRY.embedded_folder(), copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "model.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(registry.ZooEntry, "embedded_folder", lambda self: copy)
    with pytest.raises(vsslzoo.ChecksumError, match="sha256") as refused:
        vsslzoo.load()
    assert "reinstall" in str(refused.value) and "force_download" not in str(refused.value)
    if importlib.util.find_spec("onnxruntime") is not None:  # the CPU path's graph too
        graph = bytearray((copy / "model.onnx").read_bytes())
        graph[-1] ^= 1
        (copy / "model.onnx").write_bytes(bytes(graph))
        with pytest.raises(vsslzoo.ChecksumError, match="reinstall"):
            vsslzoo.load(backend="onnxruntime")



def test_the_shipped_onnx_graph_is_the_shipped_weights():
    """The CPU path of the command line (loading.auto_backend) runs model.onnx: checked
    by the registry's sha256, the same embeddings as the torch weights up to rounding,
    and the same identity (an index built on one backend answers queries on the other)."""
    pytest.importorskip("onnxruntime")
    from vsslzoo.loading import auto_backend

    assert sha256_of(ENTRY.embedded_folder() / "model.onnx") == ENTRY.onnx_sha256
    assert auto_backend() == "onnxruntime"
    assert auto_backend(device="cuda") == auto_backend(precision="bf16") == "torch"
    on_torch = vsslzoo.load(device="cpu")
    on_onnx = vsslzoo.load(backend="onnxruntime")
    assert on_onnx.weights_sha256 == on_torch.weights_sha256 == ENTRY.sha256
    clips = np.random.default_rng(0).integers(
        0, 256, (3, *ENTRY.preprocess.input_shape), dtype=np.uint8)
    want, got = on_torch.embed(clips), on_onnx.embed(clips)
    assert np.min(np.sum(want * got, axis=1)) > 0.99999
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_embeds_real_footage_to_finite_unit_vectors():
    from vsslzoo.extract import extract_videos

    model = vsslzoo.load(device="cpu")
    (result,) = extract_videos(model, [str(bikes_path())], clips="sliding:1.0", batch_size=8)
    assert result.ok and len(result.spans) >= 8
    features = np.asarray(result.embeddings)
    assert features.shape == (len(result.spans), ENTRY.embed_dim)
    assert np.isfinite(features).all()
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-4)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    for number in range(3):
        write_video(folder / f"v{number}.mp4", num_frames=60, fps=24, size=(160, 128),
                    speed=1 + number)
    return folder


def _invoke(args: list[str], cwd: Path):
    runner = CliRunner()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        return runner.invoke(cli, args, catch_exceptions=False)
    finally:
        os.chdir(old)


def test_every_command_runs_without_a_model(videos, tmp_path, tiny_folder):
    result = _invoke(["list"], tmp_path)
    line = next(row for row in result.output.splitlines()
                if row.startswith(vsslzoo.DEFAULT_MODEL))
    assert "embedded (offline), default" in line
    result = _invoke(["info"], tmp_path)
    assert result.exit_code == 0 and vsslzoo.DEFAULT_MODEL in result.output
    assert "embedded in the package" in result.output

    result = _invoke(["extract", str(videos), "-o", "feats", "--workers", "0"], tmp_path)
    assert result.exit_code == 0, result.output
    from vsslzoo.feature_store import read_features

    rows = read_features(tmp_path / "feats")
    assert len(set(rows["video_path"])) == 3

    result = _invoke(["index", str(videos), "--workers", "0"], tmp_path)
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "vsslzoo-index" / "manifest.json").read_text())
    assert manifest["model"] == vsslzoo.DEFAULT_MODEL
    result = _invoke(["query", str(videos / "v1.mp4"), "--json"], tmp_path)
    assert result.exit_code == 0, result.output
    # built on ONNX Runtime (the CPU default), queried on torch: the same model
    torch_query = _invoke(["query", str(videos / "v1.mp4"), "--json", "--backend", "torch"],
                          tmp_path)
    assert torch_query.exit_code == 0, torch_query.output
    hits = [json.loads(r.stdout)["hits"] for r in (result, torch_query)]
    assert [h["path"] for h in hits[0]] == [h["path"] for h in hits[1]]
    np.testing.assert_allclose([h["score"] for h in hits[0]], [h["score"] for h in hits[1]],
                               atol=1e-4)
    # an index remembers its model: a query with another one is refused
    result = _invoke(["query", str(videos / "v1.mp4"), "-m", str(tiny_folder)], tmp_path)
    assert result.exit_code != 0 and vsslzoo.DEFAULT_MODEL in result.output
    # an existing index keeps the model it was built with when -m is not given
    result = _invoke(["index", str(videos), "--workers", "0"], tmp_path)
    assert result.exit_code == 0, result.output

    gallery = tmp_path / "gallery.csv"
    gallery.write_text("".join(f"{videos / f'v{n}.mp4'},c{n}\n" for n in range(3)))
    result = _invoke(["eval", "retrieval", "--gallery", str(gallery), "--queries",
                      str(gallery), "--workers", "0"], tmp_path)
    assert result.exit_code == 0, result.output


def test_export_without_a_model_exports_the_default(tmp_path, monkeypatch):
    """`vsslzoo export` without -m hands the default model to the exporter. The export
    itself is not re-run here (45 s): the shipped model.onnx is that export, checked
    against the weights above, and tests/test_export.py exports the same kind of model
    (flip-invariant, per-frame statistics) with parity."""
    pytest.importorskip("onnx")
    from vsslzoo.errors import ConfigError
    from vsslzoo.export import onnx as onnx_export

    asked = []

    def exporter(model, output, **kwargs):
        asked.append(model)
        raise ConfigError("stopped by the test")

    monkeypatch.setattr(onnx_export, "export_onnx", exporter)
    result = _invoke(["export", "--format", "onnx", "-o", "onnx"], tmp_path)
    assert asked == [vsslzoo.DEFAULT_MODEL]
    assert result.exit_code == 1 and "stopped by the test" in result.output
