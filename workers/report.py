"""The HTML report of a query job: arrays in (thumbnails, similarity matrices), one self-contained page out.

Per match: the scores, a table of its segments, the query's and the reference's frames side by side at each
segment's start, middle and end, and the frame similarity matrix (query frames down, reference frames across)
as an image with the found segments drawn on it. Every image is a PNG inside a ``data:`` URI, so the file
can be mailed or attached to a ticket; nothing is fetched when it is opened. No I/O here: ``service/report.py``
reads the frames and matrices.
"""

from __future__ import annotations

import base64
import html
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from workers.types import Segment

# Viridis at five stops (0, 0.25, 0.5, 0.75, 1): readable in print and for colour-blind readers.
_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32)
SEGMENT_COLOUR = (255, 48, 48)


@dataclass
class SegmentFrames:
    """One segment with the frames shown for it: query and reference thumbnails at ``sample_times``
    (uint8 [H, W, 3] each, None where a frame could not be read)."""

    segment: Segment
    query_times: tuple[float, float, float]
    ref_times: tuple[float, float, float]
    query_frames: Sequence[np.ndarray | None] = ()
    ref_frames: Sequence[np.ndarray | None] = ()


@dataclass
class MatchReport:
    """One reference video found for the query; ``similarity`` float [T_q, T_r] or None when unavailable."""

    video_id: str
    name: str
    score: float
    segments: list[SegmentFrames]
    similarity: np.ndarray | None = None
    video_similarity: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class JobReport:
    """The job's header fields."""

    job_id: str
    name: str
    query: str
    status: str
    error: str | None = None
    created: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def sample_times(start: float, end: float, fps: float) -> tuple[float, float, float]:
    """Seconds of a segment's first, middle and last sampled frame (frame i spans [i/fps, (i+1)/fps))."""
    half = 0.5 / fps
    first, last = start + half, max(start + half, end - half)
    return first, (first + last) / 2, last


def similarity_image(similarity: np.ndarray, segments: Sequence[Segment], fps: float, max_px: int) -> np.ndarray:
    """uint8 [H, W, 3] picture of a similarity matrix [T_q, T_r] (values clipped to [0, 1], viridis) with each
    segment's box outlined. Small matrices are enlarged by whole pixels; large ones shrink by block maxima, so
    a one-frame-wide diagonal stays visible."""
    sim = np.clip(np.nan_to_num(np.asarray(similarity, np.float32), nan=0.0), 0.0, 1.0)
    rows, cols = sim.shape
    if rows == 0 or cols == 0:
        return np.zeros((1, 1, 3), np.uint8)
    longest = max(rows, cols)
    if longest <= max_px:
        scale = max(1, max_px // longest)
        image = np.repeat(np.repeat(sim, scale, axis=0), scale, axis=1)
        cell = float(scale)
    else:
        block = int(np.ceil(longest / max_px))
        padded = np.zeros((int(np.ceil(rows / block)) * block, int(np.ceil(cols / block)) * block), np.float32)
        padded[:rows, :cols] = sim
        image = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block).max(axis=(1, 3))
        cell = 1.0 / block
    rgb = colourise(image)
    height, width = rgb.shape[:2]
    thickness = max(2, min(height, width) // 120)
    for segment in segments:
        top, bottom = int(segment.query_start * fps * cell), int(np.ceil(segment.query_end * fps * cell))
        left, right = int(segment.ref_start * fps * cell), int(np.ceil(segment.ref_end * fps * cell))
        top, left = min(max(top, 0), height - 1), min(max(left, 0), width - 1)
        bottom, right = min(max(bottom, top + 1), height), min(max(right, left + 1), width)
        for y0, y1, x0, x1 in ((top, top + thickness, left, right), (bottom - thickness, bottom, left, right),
                               (top, bottom, left, left + thickness), (top, bottom, right - thickness, right)):
            rgb[max(y0, 0):y1, max(x0, 0):x1] = SEGMENT_COLOUR
    return rgb


def colourise(values: np.ndarray) -> np.ndarray:
    """float [H, W] in [0, 1] -> uint8 [H, W, 3] on the viridis scale."""
    position = np.clip(values, 0.0, 1.0) * (len(_STOPS) - 1)
    low = np.minimum(position.astype(np.int32), len(_STOPS) - 2)
    weight = (position - low)[..., None]
    return np.round(_STOPS[low] * (1 - weight) + _STOPS[low + 1] * weight).astype(np.uint8)


def png_bytes(image: np.ndarray) -> bytes:
    """A PNG file of uint8 RGB [H, W, 3] (no filtering; zlib level 6)."""
    pixels = np.ascontiguousarray(image, np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"need an RGB image [H, W, 3], got {pixels.shape}")
    height, width = pixels.shape[:2]
    raw = np.concatenate([np.zeros((height, 1), np.uint8), pixels.reshape(height, width * 3)], axis=1).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def clock(seconds: float) -> str:
    """'0:02:21.5' (tenths: thumbnails sit between whole seconds)."""
    whole = int(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}.{int(round((seconds - whole) * 10)) % 10}"


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 6px}
table{border-collapse:collapse;margin:6px 0} td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
.meta{color:#555} .note{color:#a40} table.frames{margin:10px 0 16px} table.frames td{border:0;padding:2px 4px}
figure{margin:0;text-align:center;font-size:12px;color:#555}
figure img{display:block;border:1px solid #999} figure.matrix{display:inline-block;max-width:100%}
.matrix img{image-rendering:pixelated;border:1px solid #999}
.score{font-weight:600}
"""


def render_report(job: JobReport, matches: Sequence[MatchReport], *, fps: float, matrix_max_px: int = 480) -> str:
    """The whole report as one HTML document (a str; encode as UTF-8)."""
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Copycat report {e(job.job_id)}"
             f"</title><style>{_CSS}</style></head><body>",
             f"<h1>Copies of {e(job.name)}</h1>",
             f"<p class=\"meta\">query <code>{e(job.query)}</code> · job <code id=\"job-id\">{e(job.job_id)}</code>"
             " · status "
             f"<span id=\"job-status\">{e(job.status)}</span>" + (f" · {e(job.created)}" if job.created else "")
             + f" · {len(matches)} matching video{'s' if len(matches) != 1 else ''}</p>"]
    if job.error:
        parts.append(f"<p class=\"note\" id=\"job-error\">{e(job.error)}</p>")
    parts.extend(f"<p class=\"note\">{e(note)}</p>" for note in job.notes)
    if job.status == "done" and not matches:
        parts.append("<p id=\"no-matches\">No copied footage found.</p>")
    for rank, match in enumerate(matches, 1):
        parts.append(_match_html(rank, match, fps, matrix_max_px))
    if job.timings:
        cells = "".join(f"<tr><td>{e(k)}</td><td>{v:.3f} s</td></tr>" for k, v in job.timings.items())
        parts.append(f"<h2>Timings</h2><table id=\"timings\">{cells}</table>")
    parts.append("</body></html>")
    return "".join(parts)


def _match_html(rank: int, match: MatchReport, fps: float, matrix_max_px: int) -> str:
    e = html.escape
    similarity = (f" · video similarity {match.video_similarity:.3f}" if match.video_similarity is not None else "")
    out = [f"<section class=\"match\" data-video-id=\"{e(match.video_id)}\" data-score=\"{match.score:.4f}\">",
           f"<h2>{rank}. {e(match.name)} <span class=\"score\">score {match.score:.3f}</span>{similarity}</h2>",
           f"<p class=\"meta\">video <code>{e(match.video_id)}</code></p>"]
    out.extend(f"<p class=\"note\">{e(note)}</p>" for note in match.notes)
    rows = "".join(
        f"<tr class=\"segment\"><td>{i}</td><td>{clock(s.segment.query_start)} – {clock(s.segment.query_end)}</td>"
        f"<td>{clock(s.segment.ref_start)} – {clock(s.segment.ref_end)}</td>"
        f"<td class=\"score\">{s.segment.score:.3f}</td><td class=\"signals\">{e(' + '.join(s.segment.signals))}</td>"
        "</tr>" for i, s in enumerate(match.segments, 1))
    out.append("<table><tr><th>#</th><th>query</th><th>reference</th><th>score</th><th>found by</th></tr>"
               f"{rows}</table>")
    for i, seg in enumerate(match.segments, 1):
        out.append(f"<table class=\"frames\" data-segment=\"{i}\"><tr><th>segment {i}</th><th>query</th>"
                   "<th>reference</th></tr>")
        query_frames, ref_frames = _padded(seg.query_frames), _padded(seg.ref_frames)
        for row, label in enumerate(("start", "middle", "end")):
            out.append(f"<tr><th>{label}</th><td>{_thumb('query', label, seg.query_times[row], query_frames[row])}"
                       f"</td><td>{_thumb('reference', label, seg.ref_times[row], ref_frames[row])}</td></tr>")
        out.append("</table>")
    if match.similarity is not None:
        image = similarity_image(match.similarity, [s.segment for s in match.segments], fps, matrix_max_px)
        rows_n, cols_n = match.similarity.shape
        out.append(f"<figure class=\"matrix\"><img class=\"similarity\" alt=\"similarity matrix\" "
                   f"src=\"{data_uri(image)}\" width=\"{image.shape[1]}\" height=\"{image.shape[0]}\">"
                   f"<figcaption>frame similarity: {rows_n} query frames (down) × {cols_n} reference frames "
                   "(across), 0 dark to 1 bright; found segments outlined in red</figcaption></figure>")
    out.append("</section>")
    return "".join(out)


def _thumb(side: str, label: str, moment: float, frame: np.ndarray | None) -> str:
    caption = f"{side} {label} {clock(moment)}"
    if frame is None:
        return f"<figure class=\"missing\"><div>no frame</div><figcaption>{caption}</figcaption></figure>"
    return (f"<figure><img class=\"thumb {side}\" alt=\"{caption}\" src=\"{data_uri(frame)}\" "
            f"width=\"{frame.shape[1]}\" height=\"{frame.shape[0]}\"><figcaption>{caption}</figcaption></figure>")


def _padded(frames: Sequence[np.ndarray | None]) -> list[np.ndarray | None]:
    items = list(frames)[:3]
    return items + [None] * (3 - len(items))
