"""Synthetic labelled videos whose labels only motion can tell (smoke runs, sanity evals).

Every video shows one textured shape (ellipse, rectangle, triangle or star; stripes,
checks or noise) over a textured background; shape, textures, colours and start place
are drawn independently of the label, so appearance carries no information about it.
The label is the motion:

* ``direction``: the shape translates ``left``, ``right``, ``up`` or ``down``;
* ``rotation``: it spins ``cw`` or ``ccw`` in place;
* ``zoom``: it grows (``zoom-in``) or shrinks (``zoom-out``);
* ``all``: one of those eight, one motion per video.

The texture moves with the shape, so the motion is visible inside it too. Videos are
written as real h264 files with PyAV, with ``labels.csv`` (``path,label``, paths relative
to the CSV) and ``motion.json`` (per-video start centre, velocity, angular speed, zoom).

    python -m vsslzoo.training.data.synthetic OUT_DIR --videos 200 --task all
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

TASKS = {
    "direction": ("left", "right", "up", "down"),
    "rotation": ("cw", "ccw"),
    "zoom": ("zoom-in", "zoom-out"),
}
TASKS["all"] = TASKS["direction"] + TASKS["rotation"] + TASKS["zoom"]
SHAPES = ("ellipse", "rectangle", "triangle", "star")
TEXTURES = ("stripes", "checks", "noise")


@dataclass
class Motion:
    """Shape parameters at frame t: centre + velocity * t, angle + spin * t,
    scale * zoom ** t (pixels, radians, per frame)."""

    label: str
    shape: str
    texture: str
    centre: tuple[float, float]
    velocity: tuple[float, float]
    angle: float
    spin: float
    scale: float
    zoom: float
    colour: tuple[int, int, int]
    texture_seed: int

    def at(self, t: int) -> tuple[float, float, float, float]:
        cx = self.centre[0] + self.velocity[0] * t
        cy = self.centre[1] + self.velocity[1] * t
        return cx, cy, self.angle + self.spin * t, self.scale * self.zoom ** t


def draw_motion(label: str, size: tuple[int, int], num_frames: int,
                rng: np.random.Generator) -> Motion:
    """Random appearance and start; motion from ``label``."""
    width, height = size
    scale = rng.uniform(0.13, 0.2) * min(width, height)
    margin = scale * 1.2
    # up to 2 px per frame, as long as the path fits in the frame along its axis
    span = (width if label in ("left", "right") else height) - 2 * margin
    speed = min(rng.uniform(1.0, 2.0), 0.9 * span / max(num_frames - 1, 1))
    travel = speed * (num_frames - 1)
    if label in ("left", "right", "up", "down") and speed < 0.5:
        raise ValueError(f"a {width}x{height} frame is too small for {num_frames} frames of "
                         "visible motion; use a larger size or fewer frames")
    vx = {"left": -speed, "right": speed}.get(label, 0.0)
    vy = {"up": -speed, "down": speed}.get(label, 0.0)
    # start so that the whole path stays in the frame
    x_lo = margin + max(0.0, -vx * (num_frames - 1))
    x_hi = width - margin - max(0.0, vx * (num_frames - 1))
    y_lo = margin + max(0.0, -vy * (num_frames - 1))
    y_hi = height - margin - max(0.0, vy * (num_frames - 1))
    if x_lo > x_hi or y_lo > y_hi:  # guarded by the speed limit above
        raise ValueError(f"a {width}x{height} frame is too small for {travel:.0f} px of motion")
    spin = {"cw": 1.0, "ccw": -1.0}.get(label, 0.0) * rng.uniform(0.04, 0.08)
    zoom_total = rng.uniform(1.6, 2.2)
    zoom = {"zoom-in": zoom_total, "zoom-out": 1 / zoom_total}.get(label, 1.0) ** (
        1 / max(num_frames - 1, 1))
    if label == "zoom-out":
        scale *= zoom_total  # shrink from large to the usual size
        scale = min(scale, 0.45 * min(width, height))
    return Motion(
        label=label, shape=str(rng.choice(SHAPES)), texture=str(rng.choice(TEXTURES)),
        centre=(float(rng.uniform(x_lo, x_hi)), float(rng.uniform(y_lo, y_hi))),
        velocity=(vx, vy), angle=float(rng.uniform(0, 2 * math.pi)), spin=spin,
        scale=float(scale), zoom=float(zoom),
        colour=tuple(int(c) for c in rng.integers(60, 256, 3)),
        texture_seed=int(rng.integers(0, 2**31 - 1)),
    )


def _texture(kind: str, u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Intensity in [0, 1] at shape-local coordinates (moves and turns with the shape)."""
    if kind == "stripes":
        return 0.5 + 0.5 * np.sin(u * 9.0)
    if kind == "checks":
        return ((np.floor(u * 3) + np.floor(v * 3)) % 2).astype(np.float32)
    rng = np.random.default_rng(seed)
    grid = rng.random((8, 8))
    iu = np.clip(((u + 1.5) / 3 * 7).astype(int), 0, 7)
    iv = np.clip(((v + 1.5) / 3 * 7).astype(int), 0, 7)
    return grid[iv, iu]


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if shape == "ellipse":
        return u * u + (v * 1.4) ** 2 <= 1
    if shape == "rectangle":
        return (np.abs(u) <= 1) & (np.abs(v) <= 0.6)
    if shape == "triangle":
        return (v <= 0.7) & (v >= 1.6 * np.abs(u) - 0.9)
    radius = np.hypot(u, v)
    theta = np.arctan2(v, u)
    return radius <= 0.55 + 0.45 * np.cos(5 * theta) ** 2


def background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth, muted random texture (bilinearly upsampled noise), (H, W, 3) in [0, 255]."""
    width, height = size
    coarse = rng.random((height // 12 + 2, width // 12 + 2, 3))
    rows = np.linspace(0, coarse.shape[0] - 1, height)
    cols = np.linspace(0, coarse.shape[1] - 1, width)
    r0 = np.floor(rows).astype(int).clip(max=coarse.shape[0] - 2)
    c0 = np.floor(cols).astype(int).clip(max=coarse.shape[1] - 2)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    top = coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c0 + 1] * fc
    bottom = coarse[r0 + 1][:, c0] * (1 - fc) + coarse[r0 + 1][:, c0 + 1] * fc
    smooth = top * (1 - fr) + bottom * fr
    grey = smooth.mean(axis=2, keepdims=True)
    return 50 + 110 * (0.6 * grey + 0.4 * smooth)


def render(motion: Motion, t: int, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame ``t``: (H, W, 3) uint8 image and (H, W) bool shape mask."""
    height, width = base.shape[:2]
    cx, cy, angle, scale = motion.at(t)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = (xs - cx) / scale, (ys - cy) / scale
    cos, sin = math.cos(angle), math.sin(angle)
    u = cos * dx + sin * dy  # image -> shape coordinates (rotate by -angle)
    v = -sin * dx + cos * dy
    mask = _inside(motion.shape, u, v)
    shade = _texture(motion.texture, u, v, motion.texture_seed)[..., None]
    colour = np.asarray(motion.colour, np.float32)
    image = np.where(mask[..., None], colour * (0.35 + 0.65 * shade), base)
    return np.clip(image, 0, 255).astype(np.uint8), mask


def generate(
    output: str | Path,
    *,
    videos: int = 200,
    task: str = "all",
    num_frames: int = 48,
    fps: int = 24,
    size: tuple[int, int] = (128, 96),
    seed: int = 0,
) -> Path:
    """Write ``videos`` labelled videos (balanced classes) under ``output``; returns the
    path of ``labels.csv``."""
    import av

    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    output = Path(output)
    (output / "videos").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = TASKS[task]
    rows, motions = [], {}
    for index in range(videos):
        label = labels[index % len(labels)]
        motion = draw_motion(label, size, num_frames, rng)
        base = background(size, rng)
        relative = f"videos/{index:05d}_{label}.mp4"
        with av.open(str(output / relative), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
            stream.codec_context.options = {"preset": "veryfast", "crf": "18"}
            for t in range(num_frames):
                image, _ = render(motion, t, base)
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        rows.append((relative, label))
        motions[relative] = asdict(motion)
    with open(output / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    (output / "motion.json").write_text(json.dumps(motions, indent=1))
    return output / "labels.csv"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--videos", type=int, default=200)
    parser.add_argument("--task", choices=sorted(TASKS), default="all")
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--fps", type=int, default=24)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 96), metavar=("W", "H"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = generate(args.output, videos=args.videos, task=args.task, num_frames=args.frames,
                    fps=args.fps, size=tuple(args.size), seed=args.seed)
    print(f"wrote {args.videos} videos and {path}")


if __name__ == "__main__":
    main()
