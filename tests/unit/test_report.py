"""The report page from hand-built arrays: PNGs that decode, the segment box on the matrix, an inline-only page."""

from __future__ import annotations

import base64
import re
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from workers.report import (
    SEGMENT_COLOUR,
    JobReport,
    MatchReport,
    SegmentFrames,
    png_bytes,
    render_report,
    sample_times,
    similarity_image,
)
from workers.types import Segment


def decode_png(data: bytes, width: int, height: int) -> np.ndarray:
    """ffmpeg (not our encoder's mirror image) reads the PNG back to RGB."""
    out = subprocess.run(["ffmpeg", "-v", "error", "-f", "png_pipe", "-i", "pipe:", "-f", "rawvideo", "-pix_fmt",
                          "rgb24", "pipe:"], input=data, capture_output=True, check=True).stdout
    return np.frombuffer(out, np.uint8).reshape(height, width, 3)


def test_png_round_trips_through_ffmpeg() -> None:
    image = np.random.default_rng(0).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(png_bytes(image), 5, 7), image)


def test_sample_times_are_the_first_middle_and_last_frame_of_a_segment() -> None:
    assert sample_times(3.0, 11.0, 1.0) == (3.5, 7.0, 10.5)
    assert sample_times(4.0, 5.0, 1.0) == (4.5, 4.5, 4.5)


def test_the_segment_box_is_drawn_where_the_diagonal_is() -> None:
    sim = np.full((20, 30), 0.1, np.float32)
    for i in range(8):
        sim[4 + i, 10 + i] = 0.95  # query [4, 12) ~ reference [10, 18)
    image = similarity_image(sim, [Segment(4.0, 12.0, 10.0, 18.0, 0.9)], fps=1.0, max_px=300)
    assert image.shape == (200, 300, 3)  # 10 pixels per frame
    red = np.all(image == SEGMENT_COLOUR, axis=-1)
    rows, cols = np.nonzero(red)
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (40, 119, 100, 179)
    assert not red[:40].any() and not red[:, :100].any()
    inside = image[65, 125].astype(int)  # on the diagonal (query frame 6 ~ reference frame 12), bright
    outside = image[5, 5].astype(int)
    assert inside.sum() > outside.sum() + 200


def test_a_long_matrix_shrinks_by_block_maxima_keeping_the_diagonal() -> None:
    sim = np.zeros((3000, 1000), np.float32)
    sim[np.arange(1000), np.arange(1000)] = 1.0
    image = similarity_image(sim, [], fps=1.0, max_px=300)
    assert image.shape == (300, 100, 3)
    assert (image[np.arange(100), np.arange(100)] == [253, 231, 37]).all(), "every block on the diagonal is bright"


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.images.append({k: v or "" for k, v in attrs})
        self.scripts += tag == "script"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.fixture
def page() -> tuple[str, Page]:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (12, 20, 3), dtype=np.uint8) for _ in range(3)]
    segment = SegmentFrames(Segment(4.0, 12.0, 3.0, 11.0, 0.87), sample_times(4, 12, 1), sample_times(3, 11, 1),
                            query_frames=frames, ref_frames=[frames[0], None, frames[2]])
    match = MatchReport("vid-1", "<script>alert(1)</script>.mp4", 0.87, [segment],
                        similarity=rng.random((16, 14)).astype(np.float32), notes=["a note"])
    job = JobReport("job-1", "suspect.mp4", "s3://q/suspect.mp4", "done", timings={"search": 0.02})
    html = render_report(job, [match], fps=1.0, matrix_max_px=140)
    parser = Page()
    parser.feed(html)
    return html, parser


def test_the_page_is_self_contained_and_escapes_names(page: tuple[str, Page]) -> None:
    html, parsed = page
    assert parsed.scripts == 0, "a video name is text, never markup"
    assert "<script>alert(1)</script>.mp4 score 0.870" in "".join(parsed.text)
    assert all(img["src"].startswith("data:image/png;base64,") for img in parsed.images)
    assert not re.search(r"(src|href)=\"(?!data:)", html), "nothing is fetched when the file is opened"


def test_thumbnails_sit_side_by_side_and_the_matrix_is_drawn(page: tuple[str, Page]) -> None:
    _, parsed = page
    kinds = [img["class"] for img in parsed.images]
    assert kinds == ["thumb query", "thumb reference", "thumb query", "thumb query", "thumb reference",
                     "similarity"], "query and reference side by side at start, middle and end"
    matrix = parsed.images[-1]
    width, height = int(matrix["width"]), int(matrix["height"])
    assert (width, height) == (112, 128)  # 8 pixels per frame
    pixels = decode_png(base64.b64decode(matrix["src"].split(",", 1)[1]), width, height)
    assert np.all(pixels == SEGMENT_COLOUR, axis=-1).any()
    assert "reference middle 0:00:07.0" in "".join(parsed.text) and "no frame" in "".join(parsed.text)
