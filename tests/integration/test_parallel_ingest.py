"""Embedded `copycat ingest` of several files decodes videos at once on one model session."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from service import resources
from tests.conftest import use_fresh_resources

CLIPS = ("clip04_cockatoo.mp4", "clip12_armwrestle.mp4", "clip05_bikes.mp4", "clip09_friday.mp4")


def ingest(files: list[Path]) -> dict[str, dict[str, object]]:
    result = CliRunner().invoke(cli, ["ingest", "--json", *map(str, files)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {row["name"]: row for row in json.loads(result.output)}


def test_parallel_ingest_matches_serial_and_uses_threads(copycat_env: Path, clips_dir: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    files = [clips_dir / name for name in CLIPS]
    monkeypatch.setenv("COPYCAT_EMBED__PARALLEL_VIDEOS", "3")
    use_fresh_resources()
    with caplog.at_level(logging.INFO, logger="service.video_rows"):
        parallel = ingest(files)
    threads = {r.threadName for r in caplog.records if "frames informative" in r.getMessage()}
    loads = [r for r in caplog.records if r.getMessage().startswith("loaded model")]
    assert len(threads) >= 2 and all(t.startswith("ingest") for t in threads)
    assert len(loads) <= 1  # one model session for every video
    matrices = {name: resources.current().objects.get_bytes("copycat-matrices", row["matrix_key"])
                for name, row in _rows().items()}

    monkeypatch.setenv("COPYCAT_HOME", str(copycat_env.parent / "serial-home"))
    monkeypatch.setenv("COPYCAT_EMBED__PARALLEL_VIDEOS", "1")
    use_fresh_resources()
    serial = ingest(files)
    assert {n: (r["status"], r["frames"]) for n, r in parallel.items()} == \
        {n: (r["status"], r["frames"]) for n, r in serial.items()}
    assert all(r["status"] == "indexed" for r in serial.values())
    assert matrices == {name: resources.current().objects.get_bytes("copycat-matrices", row["matrix_key"])
                        for name, row in _rows().items()}


def _rows() -> dict[str, dict[str, str]]:
    from db import videos
    from service.resources import session

    with session() as s:
        return {v.name: {"matrix_key": v.matrix_key} for v in videos.list_videos(s, None, None, 0)}
