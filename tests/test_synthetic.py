"""The synthetic motion dataset: balanced labels, real files, labels told only by motion."""

from __future__ import annotations

import csv
import math
from collections import Counter

import av
import numpy as np
import pytest

from vsslzoo.training.data.synthetic import (
    SHAPES,
    TASKS,
    Motion,
    background,
    draw_motion,
    generate,
    render,
)


def test_generate_writes_balanced_decodable_videos(tmp_path):
    csv_path = generate(tmp_path, videos=8, task="all", num_frames=16, size=(96, 72), seed=3)
    with open(csv_path) as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label"] for r in rows] == list(TASKS["all"])
    for row in rows:
        with av.open(str(tmp_path / row["path"])) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 16 and frames[0].shape == (72, 96, 3)
    assert (tmp_path / "motion.json").exists()


def _centroid(mask):
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


def _orientation(mask):
    ys, xs = np.nonzero(mask)
    xs, ys = xs - xs.mean(), ys - ys.mean()
    return 0.5 * math.atan2(2 * (xs * ys).mean(), (xs * xs).mean() - (ys * ys).mean())


@pytest.mark.parametrize("label", TASKS["all"])
def test_the_label_is_the_motion(label):
    rng = np.random.default_rng(1)
    size, frames = (128, 96), 24
    motion = draw_motion(label, size, frames, rng)
    motion.shape = "ellipse"  # an orientation is defined for the rotation checks
    base = background(size, rng)
    _, first = render(motion, 0, base)
    _, last = render(motion, frames - 1, base)
    assert first.any() and last.any()
    dx = _centroid(last)[0] - _centroid(first)[0]
    dy = _centroid(last)[1] - _centroid(first)[1]
    growth = last.sum() / first.sum()
    expected = {"left": dx < -10, "right": dx > 10, "up": dy < -10, "down": dy > 10}
    if label in expected:
        assert expected[label] and abs(growth - 1) < 0.1
    elif label in ("cw", "ccw"):
        _, second = render(motion, 3, base)
        turn = (_orientation(second) - _orientation(first) + math.pi / 2) % math.pi - math.pi / 2
        assert abs(dx) < 2 and abs(dy) < 2 and abs(growth - 1) < 0.1
        assert (turn > 0.05) if label == "cw" else (turn < -0.05)  # y points down: +angle is cw
    else:
        assert growth > 1.5 if label == "zoom-in" else growth < 1 / 1.5


def test_appearance_is_independent_of_the_label():
    rng = np.random.default_rng(0)
    shapes = {label: Counter() for label in TASKS["all"]}
    for _ in range(60):
        for label in TASKS["all"]:
            shapes[label][draw_motion(label, (128, 96), 24, rng).shape] += 1
    for counts in shapes.values():
        assert set(counts) == set(SHAPES)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        generate(tmp_path, videos=1, task="colour")
    with pytest.raises(ValueError, match="too small"):
        draw_motion("left", (40, 40), 200, np.random.default_rng(0))
    assert isinstance(draw_motion("cw", (64, 64), 8, np.random.default_rng(0)), Motion)
