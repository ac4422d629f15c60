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

THUMB_HEIGHT = 120


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
    return f'<img alt="frame at {time_s:.1f} s" src="data:image/jpeg;base64,{encoded}">'


def _moment(start: float, end: float) -> str:
    return f"{start:.1f}–{end:.1f} s"


def render_html(query: str, hits: Sequence, *, level: str, start: float | None = None,
                end: float | None = None) -> str:
    q_start = start or 0.0
    q_mid = (q_start + end) / 2 if end is not None else q_start + 1.0
    rows = []
    for hit in hits:
        middle = (hit.start_s + hit.end_s) / 2
        moment = _moment(hit.start_s, hit.end_s) if level == "clip" else "whole video"
        rows.append(
            f'<li><div class="thumb">{_img(hit.path, middle)}</div>'
            f'<div class="meta"><b>#{hit.rank}</b> <span class="score">{hit.score:.3f}</span>'
            f'<br><span class="moment">{moment}</span>'
            f'<br><span class="path">{html.escape(hit.path)}</span></div></li>')
    query_moment = _moment(q_start, end) if end is not None else "whole video"
    body = "\n".join(rows) or "<li>no results</li>"
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
<div class="query"><div class="thumb">{_img(query, q_mid)}</div>
<div class="meta">{html.escape(query)}<br>{query_moment}</div></div>
<h1>{len(hits)} most similar</h1>
<ol>
{body}
</ol>
</body></html>
"""


def write_html(path: str, query: str, hits: Sequence, *, level: str,
               start: float | None = None, end: float | None = None) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render_html(query, hits, level=level, start=start, end=end))
