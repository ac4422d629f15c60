"""--shard I/N: the partition, and sharded extract / index runs against unsharded ones."""

from __future__ import annotations

import os

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from videos import write_video

from vsslzoo.cli import main
from vsslzoo.errors import ConfigError
from vsslzoo.feature_store import read_errors, read_features
from vsslzoo.index import Index
from vsslzoo.sharding import Shard, shard_of


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize("text", ["5/4", "4/4", "0/0", "x", "1/", "-1/3", "1/2/3"])
def test_bad_shard_is_a_one_line_error(text):
    with pytest.raises(ConfigError, match="give I/N|give --shard I/N"):
        Shard.parse(text)
    result = _invoke("extract", ".", "-o", "out", "--shard", text)
    assert result.exit_code == 2 and "Invalid value for '--shard'" in result.output
    assert "Traceback" not in result.output


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=30), max_size=40, unique=True),
       st.integers(min_value=1, max_value=9))
def test_shards_partition_any_list_and_keep_its_order(names, count):
    paths = sorted(f"/videos/{name}" for name in names)
    shards = [Shard(i, count).select(paths) for i in range(count)]
    assert sorted(p for shard in shards for p in shard) == paths  # all, each once
    for shard in shards:
        assert shard == sorted(shard)


def test_a_video_keeps_its_shard_when_files_are_added():
    before = [f"/data/v{i:03d}.mp4" for i in range(200)]
    after = sorted(before + [f"/data/new{i}.mp4" for i in range(50)])
    for path in before:
        assert shard_of(path, 7) == shard_of(path, 7)
    for i in range(7):
        assert set(Shard(i, 7).select(before)) == set(Shard(i, 7).select(after)) & set(before)
    # the hash spreads videos over the shards (200 paths, 7 shards: none is empty)
    assert all(Shard(i, 7).select(before) for i in range(7))
    # sha256, not the salted hash(): the same on every machine and in every process
    assert shard_of("/data/v000.mp4", 1000) == 880


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    for i in range(7):
        write_video(folder / f"v{i}.mp4", num_frames=24 + 6 * i, speed=2 + i % 3, offset=5 * i)
    (folder / "broken.mp4").write_text("not a video")
    return folder


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    from conftest import make_tiny_folder

    folder = tmp_path_factory.mktemp("model") / "tiny"
    make_tiny_folder(folder)
    return folder


def assert_shard_ran(result) -> None:
    """A sharded run succeeded, or its shard held only videos that cannot be decoded
    (which shard a file lands in depends on its path, here a temporary folder): then,
    as for an unsharded run where nothing decodes, the exit status is 1."""
    nothing = "extracted 0 video(s)" in result.output or ": 0 video(s)" in result.output
    assert result.exit_code == 0 or (result.exit_code == 1 and nothing), result.output
    assert "Traceback" not in result.output


def _rows(folder):
    table = read_features(folder)
    return {(p, level, int(i)): e for p, level, i, e in zip(
        table["video_path"], table["level"], table["clip_index"], table["embedding"])}


def test_sharded_extract_runs_union_to_the_unsharded_run(corpus, model_folder, tmp_path):
    args = [corpus, "-m", model_folder, "--clips", "uniform:2", "--workers", "0"]
    result = _invoke("extract", *args, "-o", tmp_path / "whole")
    assert result.exit_code == 0 and "1 video(s) failed" in result.output  # broken.mp4
    sharded = tmp_path / "sharded"
    for i in range(3):
        result = _invoke("extract", *args, "-o", sharded, "--shard", f"{i}/3")
        assert_shard_ran(result)
        assert f"(shard {i}/3)" in result.output
    names = sorted(os.listdir(sharded))
    parts = [n for n in names if n.startswith("part-")]
    # one part per shard that decoded something, named after its shard: no collision
    assert set(parts) <= {f"part-s{i:04d}of0003-00000.parquet" for i in range(3)} and parts
    whole, union = _rows(tmp_path / "whole"), _rows(sharded)
    assert union.keys() == whole.keys()  # every video once: no overlap, nothing missing
    table = read_features(sharded)
    assert len(table["video_path"]) == len(whole)
    for key, vector in whole.items():
        np.testing.assert_allclose(union[key], vector, atol=1e-5)
    assert [os.path.basename(e["video_path"]) for e in read_errors(sharded)] == ["broken.mp4"]
    # a shard run again has nothing to do; another shard's lock does not block it
    own = shard_of(os.path.abspath(corpus / "v0.mp4"), 3)  # a shard with a decodable video
    again = _invoke("extract", *args, "-o", sharded, "--shard", f"{own}/3")
    assert "skipping" in again.output and len(read_features(sharded)["video_path"]) == len(whole)


def test_shard_writers_of_one_folder_do_not_lock_each_other(model_folder, corpus, tmp_path):
    from lock_holder import lock_held_by_another_process

    out = tmp_path / "feats"
    args = [corpus / "v0.mp4", "-m", model_folder, "--workers", "0", "-o", out]
    assert _invoke("extract", *args, "--shard", "0/1").exit_code == 0
    with lock_held_by_another_process(out) as pid:  # an unsharded writer is running
        result = _invoke("extract", *args, "--shard", "0/1")
        assert result.exit_code == 0, result.output
        result = _invoke("extract", *args)
        assert result.exit_code == 1 and f"locked by pid {pid}" in result.output


def test_sharded_index_runs_union_to_the_unsharded_index(corpus, model_folder, tmp_path):
    args = ["-m", model_folder, "--workers", "0"]
    assert _invoke("index", corpus, "-o", tmp_path / "whole", *args).exit_code == 0
    for i in range(2):
        result = _invoke("index", corpus, "-o", tmp_path / "sharded", *args, "--shard", f"{i}/2")
        assert_shard_ran(result)
    # shard 0 again: nothing changes, and shard 1's videos are not taken for deleted ones
    result = _invoke("index", corpus, "-o", tmp_path / "sharded", *args, "--shard", "0/2")
    assert "0 added, 0 updated, 0 removed" in result.output
    with Index.open(tmp_path / "whole") as whole, Index.open(tmp_path / "sharded") as sharded:
        assert whole.videos() == sharded.videos() and len(whole) == 7
        assert [r.path for r in whole.db.videos(status="failed")] == \
            [r.path for r in sharded.db.videos(status="failed")]
        assert_same_answers(whole, sharded, whole.query_vector(corpus / "v3.mp4"))


def assert_same_answers(index, other, query):
    """Both indices rank every video and moment alike for ``query`` (to float tolerance:
    near-equal scores may swap places)."""
    for level in ("video", "clip"):
        total = index.indices[level].ntotal
        assert other.indices[level].ntotal == total > 0
        hits = {(h.path, h.clip_index, round(h.start_s, 4), round(h.end_s, 4)): h.score
                for h in index.search_vector(query, total, level=level)}
        others = {(h.path, h.clip_index, round(h.start_s, 4), round(h.end_s, 4)): h.score
                  for h in other.search_vector(query, total, level=level)}
        assert hits.keys() == others.keys()
        np.testing.assert_allclose([others[key] for key in hits], list(hits.values()),
                                   atol=1e-5)
