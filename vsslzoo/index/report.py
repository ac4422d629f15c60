"""A self-contained HTML page of a query and its hits, with thumbnails of the moments.

Thumbnails are the frame at the middle of each moment, decoded with PyAV and encoded as
JPEG by FFmpeg's encoder (no imaging library needed), embedded as data URIs so the page
is one file.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

THUMB_HEIGHT = 120


def format_time(seconds: float) -> str:
    """``M:SS.ss``, as ``vsslzoo query`` prints moments."""
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:05.2f}"


def file_link(path: str, start_s: float | None = None) -> str:
    """A ``file://`` URI of ``path``; with ``#t=START`` (a media fragment: browsers start
    playing there) when a moment is meant."""
    uri = Path(os.path.abspath(path)).as_uri()
    return uri if start_s is None else f"{uri}#t={start_s:.2f}"


def thumbnail_jpeg(path: str, time_s: float, height: int = THUMB_HEIGHT) -> bytes | None:
    """JPEG bytes of the frame nearest ``time_s`` (seconds from the first frame)."""
    import av

    from ..errors import VideoDecodeError
    from ..video.probe import open_container, probe

    try:
        info = probe(path)
        container = open_container(path)
    except VideoDecodeError:
        return None
    try:
        stream = container.streams.video[0]
        target = info.start_s + max(0.0, min(time_s, info.duration_s))
        container.seek(int(target / float(stream.time_base)), stream=stream, backward=True)
        chosen = None
        for frame in container.decode(stream):
            chosen = frame
            if frame.time is not None and frame.time >= target:
                break
        if chosen is None:
            return None
        width = max(2, int(round(info.width * height / info.height)) // 2 * 2)
        image = chosen.to_ndarray(width=width if info.rotation in (0, 180) else height,
                                  height=height if info.rotation in (0, 180) else width,
                                  format="rgb24")
        if info.rotation:
            import numpy as np

            image = np.ascontiguousarray(np.rot90(image, k=info.rotation // 90))
        encoder = av.CodecContext.create("mjpeg", "w")
        encoder.width, encoder.height = image.shape[1], image.shape[0]
        encoder.pix_fmt = "yuvj420p"
        encoder.time_base = Fraction(1, 25)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuvj420p")
        packets = encoder.encode(frame) + encoder.encode(None)
        return b"".join(bytes(p) for p in packets)
    except (av.FFmpegError, OSError, ValueError):
        return None
    finally:
        container.close()


def _img(path: str, time_s: float) -> str:
    data = thumbnail_jpeg(path, time_s)
    if data is None:
        return '<div class="missing">no preview</div>'
    encoded = base64.b64encode(data).decode()
    return f'<img alt="frame at {format_time(time_s)}" src="data:image/jpeg;base64,{encoded}">'


def _moment(start: float, end: float) -> str:
    return f"{format_time(start)}–{format_time(end)}"


def _linked(path: str, inner: str, start_s: float | None = None) -> str:
    return f'<a href="{html.escape(file_link(path, start_s))}">{inner}</a>'


def render_html(query: str, hits: Sequence, *, level: str, start: float | None = None,
                end: float | None = None, model: str | None = None,
                index: str | None = None) -> str:
    """The page: the query (file and moment), then each hit's thumbnail, score, moment
    (``M:SS.ss``, as the CLI prints) and file, linked (``#t=start`` for moments); the
    footer names the ``model`` and ``index`` that produced it."""
    q_start = start or 0.0
    q_mid = (q_start + end) / 2 if end is not None else q_start + 1.0
    rows = []
    for hit in hits:
        middle = (hit.start_s + hit.end_s) / 2
        moment = _moment(hit.start_s, hit.end_s) if level == "clip" else "whole video"
        at = hit.start_s if level == "clip" else None
        rows.append(
            f'<li><div class="thumb">{_linked(hit.path, _img(hit.path, middle), at)}</div>'
            f'<div class="meta"><b>#{hit.rank}</b> <span class="score">{hit.score:.3f}</span>'
            f'<br><span class="moment">{moment}</span>'
            f'<br><span class="path">{_linked(hit.path, html.escape(hit.path), at)}</span>'
            '</div></li>')
    query_moment = _moment(q_start, end) if end is not None else "whole video"
    query_at = q_start if start is not None or end is not None else None
    body = "\n".join(rows) or "<li>no results</li>"
    produced = " · ".join(
        f"{label}: {html.escape(value)}" for label, value in
        (("model", model), ("index", os.path.abspath(index) if index else None)) if value)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vsslzoo query: {html.escape(
        os.path.basename(query))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; background: #fafafa; color: #222; }}
h1 {{ font-size: 20px; }} .query {{ display: flex; gap: 16px; align-items: center; }}
ol {{ list-style: none; padding: 0; display: grid;
     grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 16px; }}
li {{ background: white; border: 1px solid #ddd; border-radius: 8px; padding: 8px; }}
img {{ max-width: 100%; height: {THUMB_HEIGHT}px; object-fit: contain; background: #000; }}
.missing {{ height: {THUMB_HEIGHT}px; background: #eee; display: flex; align-items: center;
            justify-content: center; color: #888; }}
.score {{ color: #0a6; font-weight: bold; }} .path {{ font-size: 12px; color: #555;
  word-break: break-all; }} .moment {{ font-size: 13px; }}
</style></head><body>
<h1>Query ({level} level)</h1>
<div class="query"><div class="thumb">{_linked(query, _img(query, q_mid), query_at)}</div>
<div class="meta">{_linked(query, html.escape(query), query_at)}<br>{query_moment}</div></div>
<h1>{len(hits)} most similar</h1>
<ol>
{body}
</ol>
<footer class="path">{produced}</footer>
</body></html>
"""


def write_html(path: str, query: str, hits: Sequence, *, level: str,
               start: float | None = None, end: float | None = None,
               model: str | None = None, index: str | None = None) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_html(query, hits, level=level, start=start, end=end,
                                 model=model, index=index))
