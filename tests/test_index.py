"""vsslzoo index / query: build, search, incremental updates, crash safety, bad input."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import make_tiny_folder
from lock_holder import lock_held_by_another_process
from videos import damaged_copies, write_audio_only, write_video

import vsslzoo
from vsslzoo.cli import main
from vsslzoo.index import Index, IndexFolderError, update_index
from vsslzoo.index import vectors as vx
from vsslzoo.index.writer import CLIP_SAMPLING
from vsslzoo.locking import FolderLockedError


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def library(tmp_path):
    """Five decodable videos (one duplicated under another name), three broken files."""
    folder = tmp_path / "library"
    (folder / "with space ü").mkdir(parents=True)
    for i, speed in enumerate((2, -2, 3, -3)):
        write_video(folder / f"v{i}.mp4", num_frames=48 + 12 * i, speed=speed, offset=10 * i)
    write_video(folder / "with space ü" / "clip 4.webm", codec="libvpx-vp9", num_frames=30)
    shutil.copy(folder / "v0.mp4", folder / "copy of v0.mp4")
    write_audio_only(folder / "audio.mp4")
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("not a video")
    return folder


@pytest.fixture
def built(library, tiny_folder, tmp_path):
    out = tmp_path / "idx"
    result = _invoke("index", library, "-o", out, "-m", tiny_folder, "--workers", "0")
    assert result.exit_code == 0, result.output
    return out


def test_build_and_facts(built, library, tiny_folder):
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["levels"] == ["video", "clip"] and manifest["embed_dim"] == 64
    assert manifest["factory"] == {"video": "Flat", "clip": "Flat"}
    assert manifest["weights_sha256"] == vsslzoo.load(tiny_folder).weights_sha256
    assert manifest["counts"]["videos"] == 6 and manifest["counts"]["failed"] == 3
    with Index.open(built) as index:
        assert len(index) == 6
        assert [os.path.basename(p) for p in index.videos()] == [
            "copy of v0.mp4", "v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4", "clip 4.webm"]
        failed = {os.path.basename(r.path): r.error for r in index.db.videos(status="failed")}
        assert set(failed) == {"audio.mp4", "zero.mp4", "notes.mp4"}
        assert "audio only" in failed["audio.mp4"]


def test_cli_reports_failures_and_duplicates(library, tiny_folder, tmp_path):
    result = _invoke("index", library, "-o", tmp_path / "i", "-m", tiny_folder, "--workers", "0")
    assert result.exit_code == 0
    assert "6 video(s)" in result.output and "3 failed" in result.output
    assert "same content as" in result.output and "zero-byte file" in result.output


def _brute_force(index, vector, level):
    dim = index.manifest["embed_dim"]
    ids, vectors = zip(*index.db.iter_vectors(level, dim))
    ids, vectors = np.concatenate(ids), np.concatenate(vectors)
    scores = vectors @ vector
    order = np.argsort(-scores, kind="stable")
    return ids[order], scores[order]


def test_search_matches_brute_force(built, library):
    with Index.open(built) as index:
        for level in ("video", "clip"):
            vector = index.query_vector(library / "v2.mp4")
            hits = index.search(vector, k=5, level=level)
            ids, scores = _brute_force(index, vector, level)
            np.testing.assert_allclose([h.score for h in hits], scores[:5], rtol=1e-5)
            assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
        clip_hits = index.search(vector, k=3, level="clip")
        assert all(h.clip_index is not None and h.end_s > h.start_s for h in clip_hits)


def test_query_by_file_excludes_itself_and_k_larger_than_index(built, library):
    with Index.open(built) as index:
        hits = index.search(library / "v1.mp4", k=50)
        assert len(hits) == 5 and "v1.mp4" not in [os.path.basename(h.path) for h in hits]
        top = index.search(library / "v0.mp4", k=1)[0]  # its byte-identical twin
        assert os.path.basename(top.path) == "copy of v0.mp4" and top.score > 0.9999
    result = _invoke("query", library / "v1.mp4", "-i", built, "-k", "50")
    assert result.exit_code == 0 and "holds 6 video vector(s)" in result.output
    assert "query video is in the index; it is left out" in result.output
    result = _invoke("query", library / "v1.mp4", "-i", built, "--level", "clip", "-k", "3")
    assert result.exit_code == 0 and "left out" not in result.output  # moments: itself too


def test_query_moment_json_and_by_id(built, library):
    result = _invoke("query", library / "v3.mp4", "-i", built, "--level", "clip", "--start", "0.5",
                     "--end", "1.5", "-k", "4", "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["level"] == "clip" and payload["start"] == 0.5 and len(payload["hits"]) == 4
    assert all({"path", "score", "start_s", "end_s", "clip_index"} <= set(h)
               for h in payload["hits"])
    with Index.open(built) as index:
        vid = index.db.video_by_path(str(library / "v2.mp4")).id
    result = _invoke("query", "--id", vid, "-i", built, "--json")
    hits = json.loads(result.stdout)["hits"]
    assert result.exit_code == 0 and all(h["video_id"] != vid for h in hits) and len(hits) == 5
    result = _invoke("query", "--id", str(library / "v2.mp4"), "-i", built, "--level", "clip",
                     "--start", "0", "--end", "1")
    assert result.exit_code == 0 and "v2.mp4" not in result.output
    # a moment past the end of v3.mp4 (84 frames at 24 fps = 3.5 s; issue 15.8)
    result = _invoke("query", library / "v3.mp4", "-i", built, "--level", "clip",
                     "--start", "1", "--end", "60", "--json")
    assert result.exit_code == 0, result.output
    assert "warning: --end 60 s is past the end of" in result.stderr
    assert "lasts 3.50 s; the moment 1-3.50 s is used" in result.stderr
    assert json.loads(result.stdout)["hits"]
    result = _invoke("query", library / "v3.mp4", "-i", built, "--start", "10")
    assert result.exit_code == 1 and "--start 10 s is past the end of" in result.output
    assert "lasts 3.50 s" in result.output
    result = _invoke("query", "--id", library / "v3.mp4", "-i", built, "--level", "clip",
                     "--start", "4", "--end", "5")
    assert result.exit_code == 1 and "lasts 3.50 s" in result.output
    result = _invoke("query", "--id", library / "v3.mp4", "-i", built, "--level", "clip",
                     "--start", "3", "--end", "9")
    assert result.exit_code == 0 and "the moment 3-3.50 s is used" in result.output
    with Index.open(built) as index, pytest.warns(UserWarning, match="past the end"):
        index.search(library / "v3.mp4", k=2, level="clip", start=0, end=60)


def test_query_bad_inputs(built, library, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("no video")
    result = _invoke("query", bad, "-i", built)
    assert result.exit_code == 1 and "cannot be opened as media" in result.output
    result = _invoke("query", library / "v0.mp4", "-i", tmp_path / "nowhere")
    assert result.exit_code == 1 and "no index at" in result.output
    result = _invoke("query", "-i", built)
    assert result.exit_code == 2 and "give a QUERY video file or --id" in result.output
    other = tmp_path / "other_model"
    make_tiny_folder(other, seed=5)
    result = _invoke("query", library / "v0.mp4", "-i", built, "-m", other)
    assert result.exit_code == 1 and "is not the index's model" in result.output
    result = _invoke("index", library, "-o", built, "-m", other)
    assert result.exit_code == 1 and "was built differently" in result.output
    with Index.open(built) as index:
        with pytest.raises(vsslzoo.ConfigError, match="64-d"):
            index.search(np.ones(7, np.float32))


def test_incremental_update_add_change_touch_delete(built, library, tiny_folder):
    with Index.open(built) as index:
        before = {os.path.basename(r.path): r.id for r in index.db.videos()}
        clips_before = index.db.count("clip")
    model = vsslzoo.load(tiny_folder)
    # unchanged -> nothing embedded
    report = update_index(built, [library], model)
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 0, 0, 6)
    # changed content (and length), touched mtime only, deleted, new
    write_video(library / "v1.mp4", num_frames=24, speed=5)
    os.utime(library / "v2.mp4", ns=(1, 1))
    (library / "v3.mp4").unlink()
    write_video(library / "new.mp4", num_frames=36)
    report = update_index(built, [library], model)
    assert (report.added, report.updated, report.removed) == (1, 1, 1)
    with Index.open(built) as index:
        after = {os.path.basename(r.path): r.id for r in index.db.videos()}
        assert set(after) == set(before) - {"v3.mp4"} | {"new.mp4"}
        assert after["v1.mp4"] != before["v1.mp4"] and after["v2.mp4"] == before["v2.mp4"]
        assert index.indices["video"].ntotal == len(after)
        assert index.indices["clip"].ntotal == index.db.count("clip") != clips_before
        stale = [h for h in index.search(np.ones(64), k=100, level="clip")
                 if h.video_id in (before["v1.mp4"], before["v3.mp4"])]
        assert not stale  # old vectors left the FAISS index


def test_kill_9_leaves_a_usable_index_and_rerun_finishes(library, tiny_folder, tmp_path):
    for i in range(8):
        write_video(library / f"extra{i}.mp4", num_frames=120, gop=12)
    out = tmp_path / "idx"
    first = _invoke("index", library / "v0.mp4", "-o", out, "-m", tiny_folder, "--workers", "0")
    assert first.exit_code == 0
    command = [sys.executable, "-m", "vsslzoo.cli", "index", str(library), "-o", str(out),
               "-m", str(tiny_folder), "--workers", "0", "--commit-every", "1",
               "--batch-size", "2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = out / "meta.sqlite"
    deadline = time.monotonic() + 120
    import sqlite3

    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            if conn.execute("SELECT COUNT(*) FROM videos").fetchone()[0] >= 3:
                break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with pytest.warns(UserWarning, match="behind the database"), Index.open(out) as index:
        usable = len(index)
        assert usable >= 1 and index.search(library / "v0.mp4", k=3)
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    with Index.open(out) as index:
        paths = index.videos()
        assert len(paths) == len(set(paths)) == 6 + 8
        per_video = index.db.conn.execute(
            "SELECT video_id, COUNT(*), COUNT(DISTINCT clip_index) FROM clips GROUP BY video_id"
        ).fetchall()
        assert all(n == distinct for _, n, distinct in per_video)  # no duplicated clips
        assert index.indices["clip"].ntotal == index.db.count("clip")
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()


def _die_at_video(number):
    """An ``on_video`` callback that raises at the ``number``-th video: the run ends
    after some commits and before ``finish()``, as a killed run does."""
    seen = []

    def on_video(path, error):
        seen.append(path)
        if len(seen) == number:
            raise RuntimeError("killed")

    return on_video


@pytest.mark.parametrize("change", ["model", "level"])
def test_run_killed_before_finish_still_refuses_another_model_or_level(
        library, tiny_folder, tmp_path, change):
    out = tmp_path / "idx"
    with pytest.raises(RuntimeError, match="killed"):
        update_index(out, [library / "v0.mp4", library / "v1.mp4", library / "v2.mp4"],
                     vsslzoo.load(tiny_folder), level="video", commit_every=1,
                     on_video=_die_at_video(3))
    with pytest.warns(UserWarning, match="behind the database"), Index.open(out) as index:
        assert len(index) == 2  # two videos committed, the manifest says which model
    if change == "model":
        other = tmp_path / "other_model"
        make_tiny_folder(other, seed=1)  # same architecture and dim, other weights
        args = ["-m", other]
    else:
        args = ["-m", tiny_folder, "--level", "clip"]
    result = _invoke("index", library / "v0.mp4", "-o", out, *args, "--workers", "0")
    assert result.exit_code == 1 and "was built differently" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    resumed = _invoke("index", library / "v0.mp4", library / "v1.mp4", library / "v2.mp4",
                      "-o", out, "-m", tiny_folder, "--workers", "0")
    assert resumed.exit_code == 0 and "1 added" in resumed.output and "2 unchanged" in \
        resumed.output, resumed.output


def test_database_without_manifest_is_refused(library, tiny_folder, tmp_path):
    out = tmp_path / "idx"
    model = vsslzoo.load(tiny_folder)
    update_index(out, [library / "v0.mp4"], model, level="video")
    (out / "manifest.json").unlink()  # what a run of an older version killed early left
    with pytest.raises(IndexFolderError, match="no manifest.json"):
        update_index(out, [library / "v0.mp4"], model, level="video")


def test_damaged_videos_are_indexed_as_partial(tiny_folder, tmp_path):
    corpus = damaged_copies(tmp_path / "videos", containers=("mkv",), kinds=("flip", "cut"))
    (tmp_path / "videos" / "source.mkv").rename(tmp_path / "source.mkv")
    out = tmp_path / "idx"
    result = _invoke("index", tmp_path / "videos", "-o", out, "-m", tiny_folder,
                     "--workers", "0")
    assert result.exit_code == 0, result.output
    assert "2 added" in result.output and "0 failed, 2 partial (damaged)" in result.output
    assert f"partial: {corpus['cut.mkv']}: damaged 3.25-6.00 s: truncated" in result.output
    with Index.open(out) as index:
        assert len(index) == 2 and index.manifest["counts"]["partial"] == 2
        rows = {os.path.basename(r.path): r for r in index.db.videos(status="partial")}
        assert sorted(rows) == ["cut.mkv", "flip.mkv"]
        for name, row in rows.items():
            (first, *_) = index.db.damage_of(row.id)
            assert first["start_s"] > 2.5 and row.error.startswith(
                f"damaged {first['start_s']:.2f}-"), (name, row.error)
            clips = index.db.conn.execute("SELECT COUNT(*) FROM clips WHERE video_id = ?",
                                          (row.id,)).fetchone()[0]
            assert 0 < clips < 36  # 6 s in clips of 1/6 s, the damaged ones left out
        hits = index.search(tmp_path / "source.mkv", k=2)  # the intact original finds both
        assert sorted(os.path.basename(h.path) for h in hits) == ["cut.mkv", "flip.mkv"]
    again = _invoke("index", tmp_path / "videos", "-o", out, "--workers", "0")
    assert again.exit_code == 0 and "2 unchanged" in again.output  # not redone


def test_database_made_before_partial_videos_is_upgraded(tmp_path):
    import sqlite3

    from vsslzoo.index.metadata import MetadataDB

    with sqlite3.connect(tmp_path / "meta.sqlite") as conn:  # the layout of older versions
        conn.executescript("""
            CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE videos (id INTEGER PRIMARY KEY AUTOINCREMENT,
                path TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
                content_hash TEXT NOT NULL, duration_s REAL, fps REAL,
                status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), error TEXT,
                indexed_at REAL NOT NULL, embedding BLOB);
            CREATE TABLE clips (id INTEGER PRIMARY KEY AUTOINCREMENT,
                video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
                clip_index INTEGER NOT NULL, start_s REAL NOT NULL, end_s REAL NOT NULL,
                padded INTEGER NOT NULL, embedding BLOB NOT NULL);
            INSERT INTO videos VALUES (1, '/a.mp4', 1, 1, 'h', 2.0, 25, 'ok', NULL, 0, x'00');
            INSERT INTO videos VALUES (7, '/b.mp4', 1, 1, 'h', 2.0, 25, 'ok', NULL, 0, x'00');
            INSERT INTO clips VALUES (3, 7, 0, 0.0, 1.0, 0, x'00');
            DELETE FROM videos WHERE id = 7;
        """)
    readonly = MetadataDB(tmp_path, readonly=True)  # readers do not need the upgrade
    assert [r.path for r in readonly.videos()] == ["/a.mp4"] and readonly.damage_of(1) is None
    readonly.close()
    db = MetadataDB(tmp_path)
    with db.conn:
        new_id = db.insert_video(path="/c.mp4", size=1, mtime_ns=1, content_hash="h",
                                 duration_s=2.0, fps=25.0, status="partial",
                                 error="damaged 1.00-2.00 s", embedding=None,
                                 damage='[{"start_s": 1.0, "end_s": 2.0, "reason": "x"}]')
    assert new_id == 8  # ids never repeat, across the upgrade too
    assert [r.path for r in db.videos()] == ["/a.mp4", "/c.mp4"]
    assert db.damage_of(new_id)[0]["reason"] == "x"
    assert db.conn.execute("SELECT COUNT(*) FROM clips").fetchone()[0] == 1
    db.close()
    MetadataDB(tmp_path).close()  # upgraded once


@pytest.fixture
def mounted(tmp_path):
    """Two videos under tmp/mnt/videos, one of them in a subfolder."""
    root = tmp_path / "mnt" / "videos"
    (root / "sub").mkdir(parents=True)
    write_video(root / "a.mp4", num_frames=24)
    write_video(root / "sub" / "b.mp4", num_frames=24, speed=-2)
    return root


def _indexed_names(folder):
    with Index.open(folder) as index:
        return sorted(os.path.basename(p) for p in index.videos())


def _scandir_failing_for(patch, folder):
    """os.scandir raises EACCES for ``folder`` (chmod does not stop root, so the listing
    layer is where the failure is simulated)."""
    real = os.scandir

    def scandir(path="."):
        if os.path.abspath(path) == os.path.abspath(folder):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real(path)

    patch.setattr("vsslzoo.video.files.os.scandir", scandir)


def test_folder_that_cannot_be_listed_keeps_its_videos(mounted, tiny_folder, tmp_path,
                                                       monkeypatch):
    from vsslzoo.video.files import VideoScanError

    out, model = tmp_path / "idx", vsslzoo.load(tiny_folder)
    update_index(out, [mounted], model, level="video")
    assert _indexed_names(out) == ["a.mp4", "b.mp4"]
    with monkeypatch.context() as patch:
        _scandir_failing_for(patch, mounted / "sub")
        with pytest.warns(UserWarning, match="sub cannot be listed .Permission denied.: its "
                                             "1 indexed video"):
            report = update_index(out, [mounted], model)
        assert report.removed == 0 and report.unchanged == 1
        assert _indexed_names(out) == ["a.mp4", "b.mp4"]
    with monkeypatch.context() as patch:
        _scandir_failing_for(patch, mounted)
        with pytest.raises(VideoScanError, match="cannot list the folder .*Permission denied"):
            update_index(out, [mounted], model)
        result = _invoke("index", mounted, "-o", out, "--workers", "0")
        assert result.exit_code == 1 and "cannot list the folder" in result.output
    assert _indexed_names(out) == ["a.mp4", "b.mp4"]
    (mounted / "sub" / "b.mp4").unlink()  # really gone: it leaves the index
    assert update_index(out, [mounted], model).removed == 1
    assert _indexed_names(out) == ["a.mp4"]


def test_missing_or_empty_mount_point_keeps_its_videos(mounted, tiny_folder, tmp_path):
    out, model = tmp_path / "idx", vsslzoo.load(tiny_folder)
    update_index(out, [mounted], model, level="video")
    elsewhere = tmp_path / "elsewhere"
    mounted.rename(elsewhere)  # unmounted, and the mount point is gone too
    with pytest.raises(IndexFolderError, match="videos does not exist .an unmounted drive"):
        update_index(out, [mounted], model)
    assert _indexed_names(out) == ["a.mp4", "b.mp4"]
    mounted.mkdir()  # unmounted: an empty mount point
    with pytest.warns(UserWarning, match="videos is empty .an unmounted drive.*: its 2 "):
        assert update_index(out, [mounted], model).removed == 0
    assert _indexed_names(out) == ["a.mp4", "b.mp4"]
    mounted.rmdir()
    elsewhere.rename(mounted)  # mounted again: nothing to do
    report = update_index(out, [mounted], model)
    assert (report.unchanged, report.removed, report.added) == (2, 0, 0)


def test_second_writer_is_refused(built, library, tiny_folder):
    with lock_held_by_another_process(built) as pid:
        with pytest.raises(FolderLockedError, match=f"locked by pid {pid}"):
            update_index(built, [library], vsslzoo.load(tiny_folder))
        result = _invoke("index", library, "-o", built)
        assert result.exit_code == 1 and f"index {built} is locked by pid {pid}" in \
            result.output


def test_read_only_index_folder_is_a_clear_error(library, tiny_folder, tmp_path, monkeypatch):
    from vsslzoo.index import writer

    def read_only(self):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(writer.FolderLock, "acquire", read_only)
    with pytest.raises(IndexFolderError, match="read-only filesystem"):
        update_index(tmp_path / "ro", [library], vsslzoo.load(tiny_folder))


def test_typescript_tree_is_not_a_video_folder(library, tiny_folder, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("index.ts", "app.ts", "util.mts"):
        (src / name).write_text("export const answer: number = 42;\n" * 20)
    result = _invoke("index", src, "-o", tmp_path / "i", "-m", tiny_folder)
    assert result.exit_code == 1 and "no video files found" in result.output
    assert "3 file(s) with a video extension are not video" in result.output
    shutil.copytree(src, library / "web")  # a source tree inside a video folder
    result = _invoke("index", library, "-o", tmp_path / "i", "-m", tiny_folder,
                     "--level", "video", "--workers", "0")
    assert result.exit_code == 0 and "3 failed" in result.output  # the 3 broken videos
    assert "warning: 3 file(s) with a video extension are not video" in result.output
    assert not [line for line in result.output.splitlines()
                if line.startswith("failed:") and "ts:" in line]


def test_empty_folder(tiny_folder, tmp_path):
    (tmp_path / "empty").mkdir()
    result = _invoke("index", tmp_path / "empty", "-o", tmp_path / "i", "-m", tiny_folder)
    assert result.exit_code == 1 and "no video files found" in result.output


def test_index_requires_model_for_a_new_index_without_a_default(library, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setattr("vsslzoo.loading.DEFAULT_MODEL", None)  # a build without a default
    result = _invoke("index", library, "-o", tmp_path / "i")
    assert result.exit_code == 2 and "-m/--model is required" in result.output


def test_video_only_and_factory_override(library, tiny_folder, tmp_path):
    out = tmp_path / "i"
    result = _invoke("index", library, "-o", out, "-m", tiny_folder, "--level", "video",
                     "--factory", "HNSW8,Flat", "--workers", "0")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["levels"] == ["video"] and manifest["video_sampling"] == "uniform:10"
    assert manifest["factory"] == {"video": "HNSW8,Flat"}
    (library / "v3.mp4").unlink()  # HNSW cannot remove ids: the index is rebuilt
    assert _invoke("index", library, "-o", out, "--workers", "0").exit_code == 0
    with Index.open(out) as index:
        assert len(index) == 5 == index.indices["video"].ntotal
        with pytest.raises(IndexFolderError, match="no clip level"):
            index.search(library / "v0.mp4", level="clip")


def test_html_page(built, library, tmp_path):
    page = tmp_path / "results.html"
    result = _invoke("query", library / "v2.mp4", "-i", built, "--level", "clip", "-k", "3",
                     "--start", "0.2", "--end", "1.2", "--html", page)
    assert result.exit_code == 0
    text = page.read_text()
    assert text.count("data:image/jpeg;base64,") == 4  # the query and 3 hits
    assert "v2.mp4" in text and "#3" in text
    assert "0:00.20–0:01.20" in text and "#t=0.20" in text  # the query moment, linked
    assert "model: " in text and str(built) in text  # what produced the page


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="needs Debian's chromium (installed by .ci/run)")
def test_html_page_renders_in_headless_chromium(built, library, tmp_path):
    page = tmp_path / "results.html"
    assert _invoke("query", library / "v2.mp4", "-i", built, "--html", page).exit_code == 0
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    shot = tmp_path / "shot.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    "--window-size=1000,700", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 5000
    import av

    with av.open(str(shot)) as container:  # the page rendered pictures, not a blank page
        image = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert image.std() > 20


def test_approximate_factory_recall_on_clustered_vectors():
    rng = np.random.default_rng(0)
    dim, clusters, n = 64, 200, 20_000
    centres = rng.normal(size=(clusters, dim))
    data = centres[rng.integers(0, clusters, n)] + 0.35 * rng.normal(size=(n, dim))
    data = (data / np.linalg.norm(data, axis=1, keepdims=True)).astype(np.float32)
    queries = data[rng.choice(n, 200, replace=False)] + 0.05 * rng.normal(size=(200, dim))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) + 1000
    factory = vx.auto_factory(n, exact_below=10_000)
    assert factory.startswith("IVF") and vx.auto_factory(n) == "Flat"
    approx = vx.build_index(dim, factory, [(ids, data)])
    exact = vx.build_index(dim, "Flat", [(ids, data)])
    _, got = approx.search(queries, 10)
    _, want = exact.search(queries, 10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got, want)])
    assert recall >= 0.95, recall


def _synthetic_index(folder, clips_per_video):
    """An index folder written directly (no model): video i has clips_per_video[i] clips;
    the first video's clips all lie closest to one direction, the others' further away."""
    from vsslzoo.index.layout import faiss_path, write_manifest
    from vsslzoo.index.metadata import MetadataDB
    from vsslzoo.video.sampling import ClipSpan

    dim = 8
    rng = np.random.default_rng(0)
    folder.mkdir()
    db = MetadataDB(folder)
    all_ids, all_vectors, video_ids, video_vectors = [], [], [], []
    with db.conn:
        for number, count in enumerate(clips_per_video):
            closeness = 1.0 if number == 0 else 0.5
            vectors = closeness * np.eye(dim)[0] + 0.05 * rng.normal(size=(count, dim))
            vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(
                np.float32)
            mean = vectors.mean(0) / np.linalg.norm(vectors.mean(0))
            video_id = db.insert_video(
                path=str(folder / f"video{number}.mp4"), size=1, mtime_ns=1,
                content_hash=str(number), duration_s=float(count), fps=25.0, status="ok",
                error=None, embedding=mean)
            spans = [ClipSpan(index=i, start_s=float(i), end_s=i + 1.0) for i in range(count)]
            all_ids.append(db.insert_clips(video_id, spans, vectors))
            all_vectors.append(vectors)
            video_ids.append(video_id)
            video_vectors.append(mean)
        generation = db.bump_generation()
    db.close()
    vx.save_index(vx.build_index(dim, "Flat", [(np.concatenate(all_ids),
                                                np.concatenate(all_vectors))]),
                  faiss_path(folder, "clip", generation))
    vx.save_index(vx.build_index(dim, "Flat", [(np.asarray(video_ids, np.int64),
                                                np.stack(video_vectors))]),
                  faiss_path(folder, "video", generation))
    write_manifest(folder, {"model": "none", "embed_dim": dim, "levels": ["video", "clip"],
                            "video_sampling": "uniform:10"})
    return video_ids


def test_clip_query_by_id_of_a_long_video_finds_other_videos(tmp_path):
    # 300 clips of the query video outrank every other clip (issue 15.7)
    long_id = _synthetic_index(tmp_path / "idx", [300, 3, 2])[0]
    with Index.open(tmp_path / "idx", use_gpu=False) as index:
        vector, own = index.vector_of(long_id, level="clip")
        hits = index.search_vector(vector, 4, level="clip", exclude_video=own)
        assert len(hits) == 4 and all(h.video_id != long_id for h in hits)
        everything = index.search_vector(vector, 50, level="clip", exclude_video=own)
        assert len(everything) == 5  # all the other videos' clips, nothing more
    result = _invoke("query", "--id", long_id, "-i", tmp_path / "idx", "--level", "clip",
                     "-k", "4")
    assert result.exit_code == 0, result.output
    assert result.output.count("video1.mp4") + result.output.count("video2.mp4") == 4


def test_clip_query_by_id_when_no_other_video_is_indexed(tmp_path):
    long_id = _synthetic_index(tmp_path / "idx", [150])[0]
    result = _invoke("query", "--id", long_id, "-i", tmp_path / "idx", "--level", "clip")
    assert result.exit_code == 0, result.output
    assert "no other videos than the query's" in result.output
    assert "index is empty" not in result.output


def test_index_shows_no_empty_progress_bar(tiny_folder, tmp_path, monkeypatch):
    """Issue 15.14: no "0video" bar while planning, nor when nothing is left to embed."""
    import tqdm

    totals = []

    class Bar:
        def __init__(self, *args, total=None, **kwargs):
            totals.append(total)

        def reset(self, total=None):
            totals.append(total)

        def update(self, n=1):
            pass

        def close(self):
            pass

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    write_video(tmp_path / "v.mp4", num_frames=24)
    command = ("index", tmp_path / "v.mp4", "-o", tmp_path / "i", "-m", tiny_folder,
               "--workers", "0")
    assert _invoke(*command).exit_code == 0 and totals == [1]
    assert _invoke(*command).exit_code == 0 and totals == [1]  # unchanged: no bar at all


def test_no_index_hint_is_a_command_that_works(tiny_folder, tmp_path, monkeypatch):
    """Issue 15.14: the hint, with the user's folder and model filled in, builds the index
    that the failed query was looking for (a path with a space included)."""
    import shlex

    from vsslzoo import loading

    monkeypatch.setattr(loading, "DEFAULT_MODEL", None)  # the hint must then name -m
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "v.mp4", num_frames=24)
    where = tmp_path / "my index"
    result = _invoke("query", videos / "v.mp4", "-i", where)
    assert result.exit_code == 1 and "no index at" in result.output
    hint = result.output.split("`")[1]
    argv = shlex.split(hint)
    assert argv[:2] == ["vsslzoo", "index"] and "MODEL" in argv
    argv = [{"VIDEO_FOLDER": str(videos), "MODEL": str(tiny_folder)}.get(a, a)
            for a in argv[1:]]
    assert _invoke(*argv, "--workers", "0").exit_code == 0
    assert _invoke("query", videos / "v.mp4", "-i", where).exit_code == 0
    (tmp_path / "not an index").mkdir()
    result = _invoke("query", videos / "v.mp4", "-i", tmp_path / "not an index")
    assert result.exit_code == 1 and "vsslzoo index VIDEO_FOLDER -o '" in result.output


def test_html_page_times_links_and_provenance(tmp_path):
    """Issue 15.14: times as the CLI prints them, each hit linked to its file (``#t=`` for
    moments), and the model and index that produced the page."""
    from vsslzoo.index.reader import Hit
    from vsslzoo.index.report import render_html

    video = write_video(tmp_path / "a clip.mp4", num_frames=24)
    hits = [Hit(1, str(video), 0.9, 61.5, 63.25, 7, 3)]
    text = render_html(str(video), hits, level="clip", start=0.5, end=1.5,
                       model="tiny (weights sha256 0123456789ab…)", index="idx")
    assert "1:01.50–1:03.25" in text and "61.5 s" not in text  # M:SS.ss, as the CLI
    link = (tmp_path / "a clip.mp4").as_uri()
    assert f'href="{link}#t=61.50"' in text and f'href="{link}#t=0.50"' in text
    assert "model: tiny (weights sha256 0123456789ab…)" in text
    assert f"index: {os.path.abspath('idx')}" in text
    whole = render_html(str(video), hits, level="video")
    assert f'href="{link}"' in whole and "#t=" not in whole


# ------------------------------------------------------------------------------------
# vsslzoo index --from-features
# ------------------------------------------------------------------------------------
def test_index_from_features_answers_as_the_index_of_the_videos(built, library, tiny_folder,
                                                                tmp_path):
    from test_sharding import assert_same_answers, assert_shard_ran

    feats = tmp_path / "feats"
    # the index's clips (a clip every second); two shards into one folder
    for i in range(2):
        result = _invoke("extract", library, "-o", feats, "-m", tiny_folder, "--clips",
                         CLIP_SAMPLING, "--workers", "0", "--shard", f"{i}/2")
        assert_shard_ran(result)
    out = tmp_path / "from-features"
    result = _invoke("index", "--from-features", feats, "-o", out)
    assert result.exit_code == 0, result.output
    assert "6 video(s)" in result.output and "3 failed" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["weights_sha256"] == vsslzoo.load(tiny_folder).weights_sha256
    assert manifest["video_sampling"] == CLIP_SAMPLING
    with Index.open(built) as videos, Index.open(out) as features:
        assert features.videos() == videos.videos()
        assert sorted(r.path for r in features.db.videos(status="failed")) == \
            sorted(r.path for r in videos.db.videos(status="failed"))
        for name in ("v2.mp4", "with space ü/clip 4.webm"):
            assert_same_answers(videos, features, videos.query_vector(library / name))
    # the query command embeds the query with the model the features recorded
    by_videos = _invoke("query", library / "v1.mp4", "-i", built, "--json")
    by_features = _invoke("query", library / "v1.mp4", "-i", out, "--json")
    assert by_features.exit_code == 0, by_features.output
    scores = [{h["path"]: h["score"] for h in json.loads(r.stdout)["hits"]}
              for r in (by_videos, by_features)]  # v0.mp4 and its copy tie: either first
    assert scores[0].keys() == scores[1].keys() and len(scores[0]) == 5
    np.testing.assert_allclose([scores[1][p] for p in scores[0]], list(scores[0].values()),
                               atol=1e-5)
    # incremental: nothing new -> nothing changes; new features -> added
    again = _invoke("index", "--from-features", feats, "-o", out)
    assert "0 added, 0 updated, 0 removed, 6 unchanged" in again.output
    write_video(library / "new.mp4", num_frames=40, speed=4)
    assert _invoke("extract", library, "-o", feats, "-m", tiny_folder, "--clips",
                   CLIP_SAMPLING, "--workers", "0").exit_code == 0
    more = _invoke("index", "--from-features", feats, "-o", out)
    assert "1 added, 0 updated, 0 removed, 6 unchanged" in more.output, more.output
    # the video path of an index built from features adds with the same sampling
    assert _invoke("index", library, "-o", out, "--workers", "0").exit_code == 0
    with Index.open(out) as index:
        assert len(index) == 7


def test_index_from_features_refuses_what_it_cannot_use(built, library, tiny_folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _invoke("index", "--from-features", empty, "-o", tmp_path / "i")
    assert result.exit_code == 1 and "is not a feature folder (no manifest.json)" in result.output
    result = _invoke("index", "--from-features", built, "-o", tmp_path / "i")
    assert result.exit_code == 1 and "is an index, not the output of" in result.output
    result = _invoke("index", library, "--from-features", empty)
    assert result.exit_code == 2 and "not both" in result.output
    feats = tmp_path / "feats"
    assert _invoke("extract", library / "v0.mp4", "-o", feats, "-m", tiny_folder,
                   "--clips", CLIP_SAMPLING, "--workers", "0").exit_code == 0
    other = tmp_path / "other_model"
    make_tiny_folder(other, seed=1)
    other_feats = tmp_path / "other_feats"
    assert _invoke("extract", library / "v0.mp4", "-o", other_feats, "-m", other,
                   "--clips", CLIP_SAMPLING, "--workers", "0").exit_code == 0
    result = _invoke("index", "--from-features", other_feats, "-o", built)  # another model
    assert result.exit_code == 1 and "was built differently (weights_sha256" in result.output
    result = _invoke("index", "--from-features", feats, "-o", tmp_path / "i", "-m", other)
    assert result.exit_code == 1 and "holds features of" in result.output
    uniform = tmp_path / "uniform_feats"
    assert _invoke("extract", library / "v0.mp4", "-o", uniform, "-m", tiny_folder,
                   "--workers", "0").exit_code == 0
    result = _invoke("index", "--from-features", uniform, "-o", built)
    assert result.exit_code == 1 and "extracted with --clips uniform:10" in result.output
    with lock_held_by_another_process(built) as pid:
        result = _invoke("index", "--from-features", feats, "-o", built)
        assert result.exit_code == 1 and f"locked by pid {pid}" in result.output
    with Index.open(built) as index:  # nothing of the refused runs reached it
        assert len(index) == 6


def test_index_from_features_interrupted_resumes_without_duplicates(library, tiny_folder,
                                                                    tmp_path, monkeypatch):
    from vsslzoo.index import update_index_from_features, writer

    feats = tmp_path / "feats"
    assert _invoke("extract", library, "-o", feats, "-m", tiny_folder, "--clips",
                   CLIP_SAMPLING, "--workers", "0").exit_code == 0
    out = tmp_path / "idx"
    commit = writer.IndexWriter.commit
    calls = []

    def failing_commit(self, results, remove=()):
        calls.append(len(results))
        if len(calls) == 3:
            raise RuntimeError("killed")  # what a kill between transactions leaves
        return commit(self, results, remove)

    monkeypatch.setattr(writer.IndexWriter, "commit", failing_commit)
    with pytest.raises(RuntimeError, match="killed"):
        update_index_from_features(out, feats, commit_every=2)
    monkeypatch.setattr(writer.IndexWriter, "commit", commit)
    with pytest.warns(UserWarning, match="FAISS files are behind the database"), \
            Index.open(out) as index:
        assert 0 < len(index) < 6
    report = update_index_from_features(out, feats)
    assert report.unchanged > 0 and report.added + report.unchanged == 6
    with Index.open(out) as index:
        assert len(index) == 6 and index.indices["video"].ntotal == 6
        count = index.db.conn.execute("SELECT COUNT(*) FROM clips").fetchone()[0]
        assert count == index.indices["clip"].ntotal == len(read_features_clip_rows(feats))


def read_features_clip_rows(folder):
    from vsslzoo.feature_store import read_features

    table = read_features(folder)
    return table["video_path"][table["level"] == "clip"]


def test_a_model_that_fails_to_load_leaves_no_index_behind(library, tiny_folder, tmp_path):
    """The network loads in the background while decoding starts; if its weights do not
    fit (found only then), the new index records no model, and the right one can build it."""
    import shutil

    bad = tmp_path / "bad_model"
    shutil.copytree(tiny_folder, bad)
    make_tiny_folder(tmp_path / "other", architecture="r2plus1d_18")
    shutil.copy(tmp_path / "other" / "model.safetensors", bad / "model.safetensors")
    out = tmp_path / "idx"
    result = _invoke("index", library / "v0.mp4", "-o", out, "-m", bad, "--workers", "1")
    assert result.exit_code == 1 and "does not fit architecture" in result.output, result.output
    assert not (out / "manifest.json").exists()
    result = _invoke("index", library / "v0.mp4", "-o", out, "-m", tiny_folder, "--workers", "0")
    assert result.exit_code == 0 and "1 added" in result.output, result.output
