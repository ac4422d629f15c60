"""--engine ray (vsslzoo.extract.ray) against the local engine, on a local Ray cluster.

One Ray cluster for the module (``ray.init(num_cpus=2)``, loopback only, no dashboard,
no usage report), one tiny model and one set of small videos.
"""

from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_folder
from test_sharding import assert_shard_ran
from videos import write_video

from vsslzoo.cli import main
from vsslzoo.feature_store import read_errors, read_features
from vsslzoo.sharding import shard_of


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_missing_ray_extra_is_a_clear_error(tmp_path, monkeypatch):
    write_video(tmp_path / "v.mp4", num_frames=12)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    result = _invoke("extract", tmp_path / "v.mp4", "-o", tmp_path / "f", "--engine", "ray")
    assert result.exit_code == 1 and 'pip install "vsslzoo[ray]"' in result.output
    assert "Traceback" not in result.output and not (tmp_path / "f").exists()


ray = pytest.importorskip("ray", reason='the ray extra is not installed (pip install '
                                        '"vsslzoo[ray]")')


@pytest.fixture(scope="module")
def cluster():
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ray_data")
    videos = root / "videos"
    videos.mkdir()
    for i in range(5):
        write_video(videos / f"v{i}.mp4", num_frames=30 + 6 * i, speed=2 + i, offset=7 * i)
    (videos / "broken.mp4").write_text("not a video")
    make_tiny_folder(root / "model")
    return root


def _rows(folder):
    table = read_features(folder)
    keys = list(zip(table["video_path"], table["level"], table["clip_index"].tolist(),
                    table["start_s"].tolist(), table["end_s"].tolist(), table["status"]))
    assert len(set(keys)) == len(keys)  # no row twice
    return dict(zip(keys, table["embedding"]))


def _assert_same_features(folder, reference):
    rows, expected = _rows(folder), _rows(reference)
    assert rows.keys() == expected.keys()
    for key, vector in expected.items():
        np.testing.assert_allclose(rows[key], vector, atol=2e-5, err_msg=str(key))
    assert sorted(e["video_path"] for e in read_errors(folder)) == \
        sorted(e["video_path"] for e in read_errors(reference))


def test_ray_shards_equal_the_local_run_and_resume(cluster, data, tmp_path):
    args = [data / "videos", "-m", data / "model", "--clips", "uniform:3"]
    local = _invoke("extract", *args, "-o", tmp_path / "local", "--workers", "0")
    assert local.exit_code == 0, local.output
    out = tmp_path / "ray"
    for i in range(2):  # two array jobs, each on Ray, into one folder
        result = _invoke("extract", *args, "-o", out, "--engine", "ray", "--shard", f"{i}/2")
        assert_shard_ran(result)
    _assert_same_features(out, tmp_path / "local")
    assert "cannot be opened as media" in str(read_errors(out))
    own = shard_of(os.path.abspath(data / "videos" / "v0.mp4"), 2)
    again = _invoke("extract", *args, "-o", out, "--engine", "ray", "--shard", f"{own}/2")
    assert again.exit_code == 0 and "skipping" in again.output  # nothing redone
    _assert_same_features(out, tmp_path / "local")


def test_ray_onnxruntime_backend_equals_the_local_one(cluster, data, tmp_path):
    pytest.importorskip("onnxruntime")
    from vsslzoo.export.onnx import export_onnx

    exported = tmp_path / "onnx"
    export_onnx(data / "model", exported, check=False)
    args = [data / "videos", "-m", exported, "--backend", "onnxruntime", "--clips", "uniform:2"]
    assert _invoke("extract", *args, "-o", tmp_path / "local", "--workers", "0").exit_code == 0
    result = _invoke("extract", *args, "-o", tmp_path / "ray", "--engine", "ray")
    assert result.exit_code == 0, result.output
    _assert_same_features(tmp_path / "ray", tmp_path / "local")


def _actor_pids() -> list[int]:
    """Processes of the model actors (Ray titles them after the operator)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    title = handle.read().decode(errors="replace")
            except OSError:
                continue
            if "MapWorker" in title and "_Embedder" in title:
                pids.append(int(entry))
    return pids


def test_a_killed_model_actor_loses_nothing(cluster, data, tmp_path):
    from vsslzoo.extract.ray import extract

    reference = tmp_path / "local"
    args = [data / "videos", "-m", data / "model", "--clips", "sliding:0.2"]
    assert _invoke("extract", *args, "-o", reference, "--workers", "0").exit_code == 0
    killed: list[int] = []
    after_kill = []

    def on_video(result, stats):
        if killed:
            after_kill.append(result.path)
        elif result.error is None:
            pids = _actor_pids()
            assert pids, "no model actor process found"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    report = extract([data / "videos"], tmp_path / "ray", model=str(data / "model"),
                     clips="sliding:0.2", batch_size=2, commit_every=1, on_video=on_video)
    assert killed and after_kill  # the run went on after the actor died
    assert report.stats.videos_ok == 5 and len(report.failures) == 1
    _assert_same_features(tmp_path / "ray", reference)


def test_nothing_to_embed_starts_no_cluster(monkeypatch):
    """A re-run of a finished job (no video left to embed) does not start or join Ray."""
    from vsslzoo.config import PreprocessConfig
    from vsslzoo.extract import ray as ray_engine

    def refuse(address=None):
        raise AssertionError("connected to Ray with nothing to embed")

    monkeypatch.setattr(ray_engine, "connect", refuse)
    preprocess = PreprocessConfig(num_frames=4, frame_stride=1, resize=32, crop=(32, 32))
    assert list(ray_engine.extract_videos(None, [], preprocess=preprocess, embed_dim=8)) == []
    with pytest.raises(AssertionError, match="nothing to embed"):
        list(ray_engine.extract_videos(None, ["v.mp4"], preprocess=preprocess, embed_dim=8))
