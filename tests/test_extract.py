"""Feature extraction: clip/video embeddings, batching, worker pool, the extract CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from lock_holder import lock_held_by_another_process
from videos import damaged_copies, write_audio_only, write_video

import vsslzoo
from vsslzoo.cli import main
from vsslzoo.errors import VideoDecodeError
from vsslzoo.extract import extract_videos, l2_normalize
from vsslzoo.feature_store import read_features
from vsslzoo.video import plan_clips, probe, read_clips
from vsslzoo.video.pool import ClipChunk, DecodePool, VideoFailed, VideoStart


@pytest.fixture
def model(tiny_folder):
    return vsslzoo.load(tiny_folder, device="cpu")


@pytest.fixture
def videos(tmp_path):
    folder = tmp_path / "videos"
    (folder / "sub dir").mkdir(parents=True)
    write_video(folder / "a.mp4", num_frames=72, gop=12)
    write_video(folder / "sub dir" / "b ü.webm", num_frames=40, codec="libvpx-vp9")
    write_video(folder / "c.mp4", num_frames=3)
    return folder


def test_clip_features_shapes_spans_and_norms(model, videos):
    result = model.clip_features(videos / "a.mp4", clips="sliding:0.5")
    n = len(result.spans)
    assert n == 6  # 3 s video, clips of 4 frames (1/6 s) every 0.5 s
    assert result.embeddings.shape == (n, model.embed_dim)
    assert result.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(result.embeddings, axis=1), 1, rtol=1e-5)
    assert [s.start_s for s in result.spans] == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert result.info.duration_s == pytest.approx(3.0)


def test_video_feature_is_normalised_mean_of_clip_features(model, videos):
    path = videos / "a.mp4"
    info = probe(path)
    pre = model.preprocess
    plans = plan_clips(info.duration_s, info.fps, "uniform:10", pre)
    clips = np.stack([c for _, c in read_clips(path, plans, resize=pre.resize, crop=pre.crop)])
    expected = l2_normalize(model.embed_raw(clips).mean(axis=0))
    vector = model.video_feature(path)
    assert vector.shape == (model.embed_dim,)
    np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(vector, model.video_feature(path))  # deterministic


def test_embeddings_do_not_depend_on_batch_size_or_workers(model, videos):
    paths = sorted(str(p) for p in videos.rglob("*.*"))

    def run(**kwargs):
        return {r.path: r for r in extract_videos(model, paths, clips="uniform:4", **kwargs)}

    reference = run(batch_size=1, workers=0)
    for kwargs in ({"batch_size": 5, "workers": 0}, {"batch_size": 3, "workers": 1}):
        other = run(**kwargs)
        assert other.keys() == reference.keys()
        for path, result in reference.items():
            np.testing.assert_allclose(other[path].embeddings, result.embeddings, atol=2e-5)
            assert other[path].spans == result.spans


def test_vcop_pooling(model, videos):
    result = model.clip_features(videos / "a.mp4", clips="uniform:2", pooling="vcop")
    assert result.embeddings.shape == (2, 18 * model.embed_dim)
    assert model.output_dim("vcop") == 18 * model.embed_dim


def test_clip_features_of_a_broken_file_raises(model, tmp_path):
    with pytest.raises(VideoDecodeError, match="audio only"):
        model.clip_features(write_audio_only(tmp_path / "a.mp4"))


def test_pool_started_after_decoding_in_parent_does_not_hang(model, videos):
    model.clip_features(videos / "a.mp4")  # FFmpeg threads used in this process first
    signal.alarm(120)  # a hang fails the test instead of the whole run
    try:
        pool = DecodePool("uniform:2", model.preprocess, workers=2)
        messages = list(pool.run([str(videos / "a.mp4"), str(videos / "c.mp4")]))
    finally:
        signal.alarm(0)
    assert sum(isinstance(m, VideoStart) for m in messages) == 2
    assert not [m for m in messages if isinstance(m, VideoFailed)]


def test_crashed_worker_costs_only_its_video(model, tmp_path):
    long_video = write_video(tmp_path / "long.mp4", num_frames=480, gop=24)
    short_video = write_video(tmp_path / "short.mp4", num_frames=24)
    pool = DecodePool("sliding:0.1", model.preprocess, workers=1, chunk_clips=1,
                      chunks_in_flight=1)
    messages = []
    for message in pool.run([str(long_video), str(short_video)]):
        messages.append(message)
        if isinstance(message, VideoStart) and message.video_id == 0:
            time.sleep(0.5)  # the worker is now blocked on the full result queue
            os.kill(pool.processes[0].pid, signal.SIGKILL)
    failed = [m for m in messages if isinstance(m, VideoFailed)]
    assert [(m.video_id, "crashed" in m.reason) for m in failed] == [(0, True)]
    starts = {m.video_id: m for m in messages if isinstance(m, VideoStart)}
    chunks = sum(len(m.clips) for m in messages if isinstance(m, ClipChunk) and m.video_id == 1)
    assert chunks == len(starts[1].spans)  # the next video was decoded by a new worker


def test_damaged_videos_give_features_of_their_intact_clips(model, tmp_path):
    corpus = damaged_copies(tmp_path, containers=("mp4", "mkv"), kinds=("zero", "cut"))
    sources = {".mp4": tmp_path / "source-faststart.mp4", ".mkv": tmp_path / "source.mkv"}
    data = bytearray(sources[".mp4"].read_bytes())
    data[8:40] = bytes(32)  # its index is damaged: it cannot be opened
    (tmp_path / "header.mp4").write_bytes(bytes(data))
    paths = sorted(map(str, [*corpus.values(), tmp_path / "header.mp4"]))
    results = {os.path.basename(r.path): r for r in
               extract_videos(model, paths, clips="sliding:0.5", workers=0)}
    assert results.pop("header.mp4").error
    assert sorted(results) == sorted(corpus)
    intact = {suffix: model.clip_features(source, clips="sliding:0.5")
              for suffix, source in sources.items()}
    for name, result in results.items():
        assert result.error is None and result.partial, name
        assert result.damage and result.damage[0].start_s > 2.5, (name, result.damage)
        assert len(result.spans) + len(result.missing_spans) == 12, name
        assert 0 < len(result.spans) == len(result.embeddings) and result.missing_spans
        assert f"damaged {result.damage[0].start_s:.2f}-" in result.damage_report()
        # the clips kept are those of the intact video
        reference = intact[os.path.splitext(name)[1]]
        kept = [span.index for span in result.spans]
        np.testing.assert_allclose(result.embeddings, reference.embeddings[kept], atol=1e-4)
        assert np.linalg.norm(result.video_embedding) == pytest.approx(1, abs=1e-5)


# ------------------------------------------------------------------------------------
# vsslzoo extract
# ------------------------------------------------------------------------------------
def _extract(*args):
    return CliRunner().invoke(main, ["extract", *map(str, args)])


def _add_broken(folder):
    write_audio_only(folder / "audio.mp4")
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "text.mkv").write_text("not a video")


def test_extract_cli_parquet_rows_and_failures(tiny_folder, videos, tmp_path):
    _add_broken(videos)
    out = tmp_path / "feats"
    result = _extract(videos, "-o", out, "-m", tiny_folder, "--clips", "uniform:3",
                      "--workers", "0")
    assert result.exit_code == 0, result.output
    # c.mp4 (3 frames) is shorter than one clip: one padded clip instead of three
    assert "extracted 3 video(s), 7 clip(s)" in result.output
    assert "3 video(s) failed" in result.output and "audio only" in result.output
    table = read_features(out)
    assert len(table["video_path"]) == 7 + 3  # clip rows + one video row per video
    assert table["padded"][np.char.endswith(table["video_path"].astype(str), "c.mp4")].all()
    video_rows = table["level"] == "video"
    assert video_rows.sum() == 3 and set(table["clip_index"][video_rows]) == {-1}
    assert table["embedding"].shape[1] == 64
    assert any("b ü.webm" in p for p in table["video_path"])
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert sorted(os.path.basename(e["video_path"]) for e in errors) == [
        "audio.mp4", "text.mkv", "zero.mp4"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["clips"] == "uniform:3" and manifest["embed_dim"] == 64
    assert manifest["weights_sha256"]
    # API and CLI agree
    model = vsslzoo.load(tiny_folder)
    a_rows = (table["level"] == "clip") & np.char.endswith(table["video_path"].astype(str),
                                                           "a.mp4")
    np.testing.assert_allclose(
        table["embedding"][a_rows], model.clip_features(videos / "a.mp4", "uniform:3").embeddings,
        atol=1e-5)

    again = _extract(videos, "-o", out, "-m", tiny_folder, "--clips", "uniform:3",
                     "--workers", "0")
    assert again.exit_code == 0 and "skipping 3 video(s) already in" in again.output
    assert len(read_features(out)["video_path"]) == 10  # nothing duplicated
    strict = _extract(videos, "-o", out, "-m", tiny_folder, "--clips", "uniform:3", "--strict")
    assert strict.exit_code == 1


@pytest.mark.parametrize("fmt", ["parquet", "npy"])
def test_extract_cli_records_partial_videos(tiny_folder, videos, tmp_path, fmt):
    corpus = damaged_copies(tmp_path / "corpus", containers=("mp4",), kinds=("zero",))
    os.replace(corpus["zero.mp4"], videos / "zero.mp4")
    out = tmp_path / "feats"
    args = [videos, "-o", out, "-m", tiny_folder, "--clips", "sliding:0.5", "--workers", "0",
            "--format", fmt]
    result = _extract(*args)
    assert result.exit_code == 0, result.output
    assert "1 video(s) are damaged; their intact clips were extracted" in result.output
    assert "zero.mp4: damaged 3." in result.output
    table = read_features(out)
    zero = np.char.endswith(table["video_path"].astype(str), "zero.mp4")
    assert set(table["status"][zero]) == {"partial"} and set(table["status"][~zero]) == {"ok"}
    video_row = zero & (table["level"] == "video")
    (damage,) = [json.loads(d) for d in table["damage"][video_row]]
    assert damage[0]["start_s"] > 2.5 and damage[0]["reason"]
    assert (zero & (table["level"] == "clip")).sum() < 12  # damaged clips are left out
    assert all(d is None for d in table["damage"][~video_row])

    def partial_errors():
        lines = (out / "errors.jsonl").read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["status"] == "partial"]

    (entry,) = partial_errors()
    assert entry["video_path"].endswith("zero.mp4") and entry["damage"] == damage
    assert "left out" in entry["error"]
    again = _extract(*args)  # nothing to redo; the record of the damage stays
    assert again.exit_code == 0 and "skipping 4 video(s)" in again.output
    assert partial_errors() == [entry]


def test_feature_parts_written_before_partial_videos_still_read(tiny_folder, videos, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "feats"
    assert _extract(videos, "-o", out, "-m", tiny_folder, "--workers", "0").exit_code == 0
    (part,) = out.glob("part-*.parquet")
    pq.write_table(pq.read_table(part).drop_columns(["status", "damage"]), part)  # old layout
    table = read_features(out)
    assert set(table["status"]) == {"ok"} and set(table["damage"]) == {None}
    assert len(table["video_path"]) == len(table["embedding"]) > 0


def test_extract_cli_npy_format_matches_parquet(tiny_folder, videos, tmp_path):
    args = [videos, "-m", tiny_folder, "--clips", "sliding:1.0", "--workers", "0"]
    assert _extract(*args, "-o", tmp_path / "p").exit_code == 0
    assert _extract(*args, "-o", tmp_path / "n", "--format", "npy").exit_code == 0
    assert sorted(p.suffix for p in (tmp_path / "n").glob("part-*")) == [".json", ".npy"]
    parquet, npy = read_features(tmp_path / "p"), read_features(tmp_path / "n")
    for key in ("video_path", "level", "clip_index", "start_s", "end_s", "padded"):
        assert list(parquet[key]) == list(npy[key])
    np.testing.assert_array_equal(parquet["embedding"], npy["embedding"])


def test_extract_cli_bad_inputs(tiny_folder, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _extract(empty, "-o", tmp_path / "f", "-m", tiny_folder)
    assert result.exit_code == 1 and "no video files found" in result.output
    broken = tmp_path / "broken"
    broken.mkdir()
    _add_broken(broken)
    result = _extract(broken, "-o", tmp_path / "f", "-m", tiny_folder, "--workers", "0")
    assert result.exit_code == 1 and "3 video(s) failed" in result.output
    result = _extract(broken, "-o", tmp_path / "f2", "--workers", "0")  # the default model
    assert result.exit_code == 1 and "3 video(s) failed" in result.output
    result = _extract(broken, "-o", tmp_path / "g", "-m", tiny_folder, "--clips", "every:2")
    assert result.exit_code == 1 and "clip sampling 'every:2' not understood" in result.output


def test_extract_cli_refuses_other_settings_and_second_writer(tiny_folder, videos, tmp_path):
    out = tmp_path / "feats"
    assert _extract(videos / "c.mp4", "-o", out, "-m", tiny_folder, "--workers", "0"
                    ).exit_code == 0
    result = _extract(videos / "c.mp4", "-o", out, "-m", tiny_folder, "--clips", "sliding:1")
    assert result.exit_code == 1 and "holds features made differently" in result.output
    with lock_held_by_another_process(out) as pid:
        result = _extract(videos / "a.mp4", "-o", out, "-m", tiny_folder)
        assert result.exit_code == 1 and f"locked by pid {pid}" in result.output
    (out / ".lock").write_text(str(pid))  # a stale lock (what kill -9 leaves) is taken over
    result = _extract(videos / "a.mp4", "-o", out, "-m", tiny_folder, "--workers", "0")
    assert result.exit_code == 0, result.output


def test_kill_9_mid_run_loses_nothing_and_duplicates_nothing(tiny_folder, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(10):
        write_video(folder / f"v{i:02d}.mp4", num_frames=96, gop=12)
    out = tmp_path / "feats"
    command = [sys.executable, "-m", "vsslzoo.cli", "extract", str(folder), "-o", str(out),
               "-m", str(tiny_folder), "--clips", "sliding:0.1", "--workers", "0",
               "--commit-every", "2", "--batch-size", "4"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    committed = read_features(out)  # every visible part is complete and readable
    done_before = set(committed["video_path"])
    assert 0 < len(done_before) < 10
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    table = read_features(out)
    video_rows = table["video_path"][table["level"] == "video"]
    assert sorted(os.path.basename(p) for p in video_rows) == [f"v{i:02d}.mp4" for i in range(10)]
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()


def test_default_batch_size_is_smaller_on_the_cpu(tiny_folder, tmp_path):
    """Issue 15.13: on the CPU a batch costs activation memory and buys no speed
    (bench/cpu_batch.py), so without --batch-size the CPU runs small batches."""
    from types import SimpleNamespace

    from videos import write_video

    from vsslzoo.extract import CPU_BATCH_SIZE, GPU_BATCH_SIZE, default_batch_size

    assert default_batch_size(SimpleNamespace(device="cuda:1")) == GPU_BATCH_SIZE == 16
    model = vsslzoo.load(tiny_folder, device="cpu")
    assert default_batch_size(model) == CPU_BATCH_SIZE < GPU_BATCH_SIZE
    sizes = []
    embed_raw = model.embed_raw
    model.embed_raw = lambda clips, **kw: (sizes.append(len(clips)), embed_raw(clips, **kw))[1]
    write_video(tmp_path / "v.mp4", num_frames=48)
    (result,) = extract_videos(model, [tmp_path / "v.mp4"], clips="uniform:10")
    assert result.error is None and max(sizes) == CPU_BATCH_SIZE and sum(sizes) == 10
    for command in ("extract", "index"):
        text = " ".join(CliRunner().invoke(main, [command, "--help"]).output.split())
        assert f"16 on a GPU, {CPU_BATCH_SIZE} on the CPU" in text


# ------------------------------------------------------------------------------------
# loading the model in the background while decoding starts
# ------------------------------------------------------------------------------------
def test_background_load_gives_the_loaded_model(tiny_folder, tmp_path):
    from vsslzoo.loading import LoadingEncoder, auto_backend, load_in_background

    assert auto_backend(tiny_folder) == "torch"  # a folder ships no checked graph

    pending = load_in_background(tiny_folder)
    assert isinstance(pending, LoadingEncoder)
    loaded = vsslzoo.load(tiny_folder, device="cpu")
    # known at once, without waiting
    assert pending.config == loaded.config and pending.weights_sha256 == loaded.weights_sha256
    assert pending.embed_dim == loaded.embed_dim and pending.source == loaded.source
    write_video(tmp_path / "v.mp4", num_frames=40)
    (got,) = extract_videos(pending, [tmp_path / "v.mp4"], clips="sliding:0.5")
    (want,) = extract_videos(loaded, [tmp_path / "v.mp4"], clips="sliding:0.5")
    assert pending.ready() and str(pending.device) == "cpu"
    np.testing.assert_allclose(got.embeddings, want.embeddings, atol=1e-6)
    # a GPU asked for: loaded at once, so that its errors come first
    from vsslzoo.errors import ConfigError

    with pytest.raises(ConfigError, match="CUDA is not available"):
        load_in_background(tiny_folder, device="cuda")


def test_background_load_errors(tiny_folder, tmp_path):
    """What can be checked without torch fails at once; a strict-load mismatch fails
    where the network is first needed, with the usual message."""
    import shutil

    from conftest import make_tiny_folder

    from vsslzoo.errors import ModelFolderError, WeightsMismatchError
    from vsslzoo.loading import load_in_background

    truncated = tmp_path / "truncated"
    shutil.copytree(tiny_folder, truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ModelFolderError, match="corrupt or truncated"):
        load_in_background(truncated)
    other = tmp_path / "other"
    make_tiny_folder(other, architecture="r2plus1d_18")
    mismatched = tmp_path / "mismatched"
    shutil.copytree(tiny_folder, mismatched)
    shutil.copy(other / "model.safetensors", mismatched / "model.safetensors")
    pending = load_in_background(mismatched)  # the header is fine
    clips = np.zeros((1, *pending.preprocess.input_shape), np.uint8)
    for _ in range(2):  # raised to every caller, not swallowed after the first
        with pytest.raises(WeightsMismatchError):
            pending.embed(clips)
    assert "failed" in repr(pending)


def test_read_ahead_decodes_while_the_model_loads():
    from vsslzoo.extract import _read_ahead

    class Loading:
        done = False

        def ready(self):
            return self.done

    model = Loading()
    pulled = []

    def messages():
        for i in range(6):
            pulled.append(i)
            yield ClipChunk(0, i, np.zeros((1, 100), np.uint8))
        model.done = True
        for i in range(6, 9):
            pulled.append(i)
            yield ClipChunk(0, i, np.zeros((1, 100), np.uint8))

    stream = _read_ahead(messages(), model, max_bytes=10**6)
    first = next(stream)
    assert first.first_index == 0 and len(pulled) == 7  # all held until the model is ready
    assert [m.first_index for m in stream] == list(range(1, 9))  # nothing lost, in order
    # the memory cap: at most max_bytes held, then the consumer waits for the model
    model, pulled = Loading(), []
    stream = _read_ahead(messages(), model, max_bytes=250)
    assert next(stream).first_index == 0 and len(pulled) == 3
    # a model without ready() (already loaded): messages pass straight through
    pulled = []
    stream = _read_ahead(messages(), object())
    assert next(stream).first_index == 0 and len(pulled) == 1
