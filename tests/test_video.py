"""Decoding: seek == sequential == a full decode, spans, VFR, rotation, padding, bad files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from videos import (
    bikes_path,
    damaged_copies,
    decode_all,
    faststart,
    read_index,
    square_x,
    write_audio_only,
    write_video,
)

from vsslzoo.config import PreprocessConfig
from vsslzoo.errors import ConfigError, VideoDecodeError
from vsslzoo.video import ClipSampling, plan_clips, probe, read_clips
from vsslzoo.video.files import find_videos

WIDTH, HEIGHT = 160, 96
# identity geometry: resize to the short side, crop the whole frame -> native frames
NATIVE = dict(resize=HEIGHT, crop=(HEIGHT, WIDTH))


def _pre(num_frames=8, frame_stride=2):
    return PreprocessConfig(num_frames=num_frames, frame_stride=frame_stride, **NATIVE)


def _nearest(reference_times, target):
    times = np.asarray(reference_times)
    distance = np.abs(times - target)
    return int(np.flatnonzero(distance == distance.min())[0])  # ties: the earlier frame


def _check_against_full_decode(path, sampling, pre, strategies=("seek", "sequential", "auto")):
    reference = decode_all(path)
    ref_times = [t - reference[0][0] for t, _ in reference]
    info = probe(path)
    plans = plan_clips(info.duration_s, info.fps, sampling, pre)
    results = {}
    for strategy in strategies:
        results[strategy] = list(read_clips(path, plans, info=info, strategy=strategy,
                                            resize=pre.resize, crop=pre.crop))
        assert [plan for plan, _ in results[strategy]] == plans
    for (plan, clip), *others in zip(*results.values()):
        for _, other in others:
            np.testing.assert_array_equal(clip, other)
        assert clip.shape == (3, pre.num_frames, *pre.crop) and clip.dtype == np.uint8
        for slot, target in enumerate(plan.times):
            expected = reference[_nearest(ref_times, target)][1]
            np.testing.assert_array_equal(clip[:, slot].transpose(1, 2, 0), expected)
    return info, plans, results["auto"]


@pytest.mark.parametrize(
    "codec,gop,suffix",
    [("libx264", None, "mp4"),  # x264 default: one keyframe every 250 frames
     ("libx264", 12, "mp4"), ("mpeg4", 12, "mp4"), ("libvpx-vp9", 12, "webm")],
)
@pytest.mark.parametrize("sampling", ["uniform:10", "sliding:0.5", "segment:1.1-2.9"])
def test_seek_and_sequential_equal_full_decode(tmp_path, codec, gop, suffix, sampling):
    path = write_video(tmp_path / f"v.{suffix}", num_frames=96, fps=24, codec=codec, gop=gop,
                       size=(WIDTH, HEIGHT))
    _check_against_full_decode(path, sampling, _pre())


def test_spans_and_frame_indices(tmp_path):
    path = write_video(tmp_path / "v.mp4", num_frames=96, fps=24, gop=12)
    info, plans, results = _check_against_full_decode(path, "uniform:5", _pre())
    assert info.num_frames == 96 and info.fps == pytest.approx(24)
    assert info.duration_s == pytest.approx(4.0)
    clip_s = 8 * 2 / 24
    starts = np.linspace(0, 4.0 - clip_s, 5)
    for (plan, clip), start in zip(results, starts):
        assert plan.span.start_s == pytest.approx(start, abs=1e-6)
        assert plan.span.end_s == pytest.approx(start + clip_s, abs=1e-6)
        assert not plan.span.padded
        indices = [read_index(clip[:, k].transpose(1, 2, 0)) for k in range(8)]
        first = round(start * 24)
        assert indices == list(range(first, first + 16, 2))
        # the moving square is where frame index says it must be
        row = clip[0, 0, 20]  # a row through the square (y = 16..27), red channel
        assert row[square_x(first, WIDTH) + 2] > 200


def test_sliding_spans(tmp_path):
    path = write_video(tmp_path / "v.mp4", num_frames=120, fps=24)
    info = probe(path)
    plans = plan_clips(info.duration_s, info.fps, "sliding:1.0", _pre())
    assert [p.span.start_s for p in plans] == [0.0, 1.0, 2.0, 3.0, 4.0]  # 5 s video
    assert all(p.span.end_s - p.span.start_s == pytest.approx(16 / 24) for p in plans)


def test_variable_frame_rate_uses_timestamps(tmp_path):
    rng = np.random.default_rng(0)
    gaps = rng.choice([0.02, 0.04, 0.1], size=79)
    times = np.concatenate([[0.0], np.cumsum(gaps)]).round(3).tolist()
    path = write_video(tmp_path / "vfr.mp4", num_frames=80, fps=25, frame_times=times, gop=10)
    reference = decode_all(path)
    assert [round(t, 3) for t, _ in reference] == times
    pre = PreprocessConfig(num_frames=6, frame_stride=1, fps=10.0, **NATIVE)
    info, plans, results = _check_against_full_decode(path, "sliding:0.7", pre)
    for plan, clip in results:  # frames are the nearest to 0.1 s steps, by timestamp
        indices = [read_index(clip[:, k].transpose(1, 2, 0)) for k in range(6)]
        assert indices == [_nearest(times, t) for t in plan.times]


def test_rotation_metadata_is_applied(tmp_path):
    path = write_video(tmp_path / "rot.mp4", num_frames=24, rotation=90)
    info = probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (HEIGHT, WIDTH)
    pre = PreprocessConfig(num_frames=4, frame_stride=1, resize=HEIGHT, crop=(WIDTH, HEIGHT))
    plans = plan_clips(info.duration_s, info.fps, "uniform:1", pre)
    ((plan, clip),) = read_clips(path, plans, resize=pre.resize, crop=pre.crop, info=info)
    frame = clip[:, 0].transpose(1, 2, 0)
    coded = decode_all(path)[round(plan.times[0] * 24)][1]
    np.testing.assert_array_equal(frame, np.rot90(coded, k=1))  # counter-clockwise


def test_one_frame_video_is_padded(tmp_path):
    path = write_video(tmp_path / "one.mp4", num_frames=1)
    info = probe(path)
    plans = plan_clips(info.duration_s, info.fps, "uniform:10", _pre())
    assert len(plans) == 1 and plans[0].span.padded
    assert plans[0].span.start_s == 0
    assert plans[0].span.end_s == pytest.approx(info.duration_s, abs=1e-6)
    ((_, clip),) = read_clips(path, plans, info=info, **NATIVE)
    assert all(read_index(clip[:, k].transpose(1, 2, 0)) == 0 for k in range(8))


def test_video_shorter_than_a_clip_repeats_last_frame(tmp_path):
    path = write_video(tmp_path / "short.mp4", num_frames=5, fps=24)
    info = probe(path)
    plans = plan_clips(info.duration_s, info.fps, "sliding:1.0", _pre())
    assert len(plans) == 1 and plans[0].span.padded
    ((_, clip),) = read_clips(path, plans, info=info, **NATIVE)
    indices = [read_index(clip[:, k].transpose(1, 2, 0)) for k in range(8)]
    assert indices == [0, 2, 4, 4, 4, 4, 4, 4]


def test_resize_keeps_aspect_then_centre_crops(tmp_path):
    path = write_video(tmp_path / "v.mp4", num_frames=12)
    info = probe(path)
    pre = PreprocessConfig(num_frames=2, frame_stride=1, resize=48, crop=(40, 40))
    plans = plan_clips(info.duration_s, info.fps, "uniform:1", pre)
    ((plan, clip),) = read_clips(path, plans, resize=48, crop=(40, 40), info=info)
    assert clip.shape == (3, 2, 40, 40)
    import av

    frame_index = round(plan.times[0] * 24)
    with av.open(str(path)) as container:
        frame = list(container.decode(video=0))[frame_index]
        expected = frame.to_ndarray(width=80, height=48, format="rgb24",
                                    interpolation="BILINEAR")[4:44, 20:60]
    np.testing.assert_array_equal(clip[:, 0].transpose(1, 2, 0), expected)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _truncate(path: Path, fraction: float, out: Path) -> Path:
    data = path.read_bytes()
    out.write_bytes(data[: int(len(data) * fraction)])
    return out



@pytest.mark.parametrize(
    "make,reason",
    [
        (lambda d: d / "missing.mp4", "no such file"),
        (lambda d: _write(d / "zero.mp4", b""), "zero-byte file"),
        (lambda d: write_audio_only(d / "audio.mp4"), "no video stream (audio only)"),
        (lambda d: _write(d / "text.mp4", b"not a video"), "cannot be opened as media"),
        (lambda d: _truncate(write_video(d / "v.mp4"), 0.5, d / "cut.mp4"),
         "cannot be opened as media"),
        (lambda d: _truncate(faststart(write_video(d / "v.mp4", num_frames=96),
                                        d / "fast.mp4"), 0.4, d / "fastcut.mp4"),
         "truncated: frames end at"),
    ],
    ids=["missing", "zero-byte", "audio-only", "text", "truncated-moov", "truncated-faststart"],
)
def test_broken_files_raise_with_reason(tmp_path, make, reason):
    path = make(tmp_path)
    with pytest.raises(VideoDecodeError) as info:
        video = probe(path)
        plans = plan_clips(video.duration_s, video.fps, "uniform:10", _pre())
        list(read_clips(path, plans, info=video, **NATIVE))
    assert reason in info.value.reason and str(path) in str(info.value)


def test_corrupt_data_raises(tmp_path):
    path = write_video(tmp_path / "v.mp4", num_frames=96, gop=12)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for i in rng.integers(3000, len(data) - 3000, 40):
        data[i:i + 50] = rng.integers(0, 255, 50, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    with pytest.raises(VideoDecodeError, match="corrupt video data"):
        video = probe(path)
        plans = plan_clips(video.duration_s, video.fps, "sliding:0.2", _pre())
        list(read_clips(path, plans, info=video, strategy="sequential", **NATIVE))


def test_damaged_videos_decode_around_the_damage(tmp_path):
    """Mutated copies (bytes flipped, zeroed, cut, repeated after their first seconds):
    the clips away from the damage come out with exactly the right frames, the others
    are left out, and the damage is located after the first seconds."""
    pre = PreprocessConfig(num_frames=4, frame_stride=1, **NATIVE)
    for name, path in damaged_copies(tmp_path).items():
        info = probe(path)
        plans = plan_clips(info.duration_s, info.fps, "sliding:0.25", pre)
        damage = []
        got = list(read_clips(path, plans, info=info, damage=damage, **NATIVE))
        if name == "cut.ts":  # a cut transport stream is a shorter one: no header says more
            assert not damage and len(got) == len(plans) and info.duration_s < 5
            continue
        assert damage and all(span.start_s > 2.5 for span in damage), (name, damage)
        assert 0.4 * len(plans) < len(got) <= len(plans), (name, damage)
        for plan, clip in got:
            assert not any(span.start_s < plan.times[-1] and plan.times[0] < span.end_s
                           for span in damage), (name, plan.span)
            indices = [read_index(clip[:, k].transpose(1, 2, 0)) for k in range(4)]
            assert indices == [round(t * 24) for t in plan.times], (name, plan.span)
        yielded = {plan.span.index for plan, _ in got}
        for plan in plans:
            if plan.span.index not in yielded:  # left out: it overlaps the damage
                assert any(span.start_s - 0.05 < plan.times[-1] and
                           plan.times[0] < span.end_s + 0.05 for span in damage)


@pytest.mark.parametrize("bad", ["uniform:0", "sliding:-1", "sliding:x", "segment:5-2", "every:2"])
def test_bad_sampling_spec(bad):
    with pytest.raises(ConfigError, match="clip sampling"):
        ClipSampling.parse(bad)


def test_find_videos_recursive_symlink_loop_hidden_and_unicode(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    write_video(tmp_path / "a" / "b" / "clip ü 1.mp4", num_frames=2)
    write_video(tmp_path / "top.mp4", num_frames=2)
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / ".hidden.mp4").write_bytes(b"")
    (tmp_path / "a" / "loop").symlink_to(tmp_path, target_is_directory=True)
    found = find_videos([tmp_path])
    assert [p.name for p in found] == ["clip ü 1.mp4", "top.mp4"]
    assert [p.name for p in find_videos([tmp_path], recursive=False)] == ["top.mp4"]


def test_folder_that_cannot_be_listed_is_reported_not_taken_for_empty(tmp_path, monkeypatch):
    from vsslzoo.video.files import VideoScanError, scan_videos

    (tmp_path / "locked").mkdir()
    write_video(tmp_path / "locked" / "in.mp4", num_frames=2)
    write_video(tmp_path / "top.mp4", num_frames=2)
    real = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr("vsslzoo.video.files.os.scandir", scandir)
    scan = scan_videos([tmp_path])
    assert [p.name for p in scan.files] == ["top.mp4"]
    assert scan.unreadable == [(str(tmp_path / "locked"), "Permission denied")]
    with pytest.warns(UserWarning, match="cannot list .*locked .Permission denied"):
        assert [p.name for p in find_videos([tmp_path])] == ["top.mp4"]
    with pytest.raises(VideoScanError, match="cannot list the folder .*locked"):
        scan_videos([tmp_path / "locked"])
    scan = scan_videos([tmp_path / "gone", tmp_path / "top.mp4"])
    assert scan.missing == [str(tmp_path / "gone")]


def test_typescript_sources_named_ts_are_not_videos(tmp_path):
    from vsslzoo.video.files import scan_videos

    write_video(tmp_path / "clip.ts", num_frames=12)  # a real MPEG transport stream
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.ts").write_text("import { x } from './y';\n" * 40)
    (tmp_path / "src" / "types.mts").write_text("export type A = number;\n")
    (tmp_path / "src" / "G.ts").write_bytes(b"G" + b"\0" * 600)  # 0x47 at 0 only
    scan = scan_videos([tmp_path])
    assert [p.name for p in scan.files] == ["clip.ts"]
    assert sorted(os.path.basename(p) for p in scan.not_video) == ["G.ts", "app.ts",
                                                                   "types.mts"]
    with pytest.warns(UserWarning, match="3 file.* are not video .*TypeScript sources"):
        find_videos([tmp_path])
    assert probe(tmp_path / "clip.ts").duration_s == pytest.approx(0.5, abs=0.05)
    with pytest.raises(VideoDecodeError, match="not a video .not an MPEG transport stream"):
        probe(tmp_path / "src" / "app.ts")



def test_real_footage_seek_equals_sequential():
    path = bikes_path()
    info = probe(path)
    assert (info.width, info.height) == (640, 272) and 9 < info.duration_s < 11
    pre = PreprocessConfig(num_frames=16, frame_stride=2, resize=128, crop=(112, 112))
    plans = plan_clips(info.duration_s, info.fps, "uniform:10", pre)
    seek = list(read_clips(path, plans, info=info, strategy="seek", resize=128, crop=(112, 112)))
    seq = list(read_clips(path, plans, info=info, strategy="sequential", resize=128,
                          crop=(112, 112)))
    assert len(seek) == 10
    for (_, a), (_, b) in zip(seek, seq):
        np.testing.assert_array_equal(a, b)
    assert seek[0][1].std() > 10  # real content, not a blank frame


def test_decode_threads_are_capped_per_worker(tmp_path, monkeypatch):
    """Issue 15.13: each decode worker caps FFmpeg's threads so workers x threads <= cores."""
    from vsslzoo.video import decode
    from vsslzoo.video.pool import DecodePool

    assert decode.threads_per_worker(8, cores=16) == 2
    assert decode.threads_per_worker(3, cores=16) == 5
    assert decode.threads_per_worker(4, cores=2) == 1 and decode.threads_per_worker(0, 4) == 4
    path = write_video(tmp_path / "v.mp4", num_frames=24)
    info = probe(path)
    plans = plan_clips(info.duration_s, info.fps, "uniform:2", _pre())
    counts = []
    decode_run = decode._decode_run

    def spy(container, stream, *args):
        counts.append(stream.codec_context.thread_count)
        return decode_run(container, stream, *args)

    monkeypatch.setattr(decode, "_decode_run", spy)
    capped = list(read_clips(path, plans, threads=1, **NATIVE))
    monkeypatch.setattr(decode, "_decode_threads", None)
    decode.set_decode_threads(3)  # what a pool worker does at start
    list(read_clips(path, plans, **NATIVE))
    decode.set_decode_threads(None)
    free = list(read_clips(path, plans, **NATIVE))
    assert counts[0] == 1 and counts[1] == 3 and counts[2] == 0  # 0: FFmpeg's choice
    for (_, a), (_, b) in zip(capped, free):
        np.testing.assert_array_equal(a, b)

    started = []

    class Context:  # records what the pool hands each worker process
        def Process(self, target, args, **kwargs):
            started.append(args)
            return type("P", (), {"start": lambda self: None})()

    pool = DecodePool("uniform:2", _pre(), workers=2)
    monkeypatch.setattr("vsslzoo.video.pool.threads_per_worker",
                        lambda workers: decode.threads_per_worker(workers, cores=16))
    pool._start(Context(), 0, None, None)
    assert started[0][-1] == 8
