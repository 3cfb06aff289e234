"""The HTML report of a real query job, rendered by headless Chromium: DOM and screenshot."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import client
from cli.demo import forge_query
from cli.main import cli
from service import resources
from tests.conftest import require
from workers.report import SEGMENT_COLOUR

pytestmark = pytest.mark.services
WINDOW = (1280, 2400)


def chromium(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-headless-shell")
    require(binary is not None, "Debian's chromium (apt-get install -y chromium)")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--allow-file-access-from-files", *args], capture_output=True, timeout=120, check=True)


class Dom(HTMLParser):
    """The rendered DOM's images, sections and text."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.sections: list[dict[str, str]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(values)
        if tag == "section":
            self.sections.append(values)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def screenshot_pixels(path: Path) -> np.ndarray:
    probe = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=width,height", "-of",
                                       "json", str(path)], capture_output=True, check=True).stdout)
    width, height = probe["streams"][0]["width"], probe["streams"][0]["height"]
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(height, width, 3)


@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_report_renders_in_chromium(services_env: dict[str, str], clips_dir: Path, tmp_path: Path) -> None:
    source, host = clips_dir / "clip03_bigbuckbunny.webm", clips_dir / "clip05_bikes.mp4"
    video_id = client.ingest_file(resources.current(), source, "bunny.webm")
    forged = tmp_path / "suspect.mp4"
    forge_query(source, host, forged)
    job_id = client.submit_query(resources.current(), str(forged), resources.current().settings.query_params())
    result = client.wait_for_job(resources.current(), job_id, timeout=300)
    assert result["matches"] and result["matches"][0]["video_id"] == video_id
    segments = result["matches"][0]["segments"]

    page = tmp_path / "report.html"
    out = CliRunner().invoke(cli, ["report", job_id, "-o", str(page)])
    assert out.exit_code == 0, out.output
    assert page.stat().st_size > 10_000

    dom = Dom()
    dom.feed(chromium("--dump-dom", page.as_uri()).stdout.decode())
    assert [s["data-video-id"] for s in dom.sections] == [m["video_id"] for m in result["matches"]]
    classes = [img.get("class", "") for img in dom.images]
    assert classes.count("thumb query") == classes.count("thumb reference") >= 3 * len(segments)
    assert classes.count("similarity") == len(result["matches"])
    assert all(img["src"].startswith("data:image/png;base64,") for img in dom.images)
    text = "".join(dom.text)
    assert f"score {result['matches'][0]['score']:.3f}" in text and "bunny.webm" in text
    assert f"{segments[0]['score']:.3f}" in text

    shot = tmp_path / "report.png"
    chromium(f"--window-size={WINDOW[0]},{WINDOW[1]}", f"--screenshot={shot}", page.as_uri())
    pixels = screenshot_pixels(shot)
    assert pixels.shape == (WINDOW[1], WINDOW[0], 3)
    not_white = np.any(pixels < 235, axis=-1).mean()
    assert not_white > 0.05, f"only {not_white:.1%} of the page is drawn"
    red = np.all(np.abs(pixels.astype(int) - SEGMENT_COLOUR) <= 12, axis=-1)
    assert red.sum() > 100, "the segment box on the similarity matrix is on screen"
    # The thumbnails are real footage: many distinct colours, not flat placeholders.
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 2000
