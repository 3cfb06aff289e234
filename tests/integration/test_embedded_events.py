"""Embedded mode (SQLite, Milvus Lite file, local objects, tasks in this process): webhooks are delivered
in-process with their retry, and copy detection on upload stores and announces relations."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cli import client
from db import webhooks
from db.copies import list_copies
from tasks import resources
from tasks.base import session
from tests.conftest import use_fresh_resources
from tests.integration.receiver import Receiver


def test_embedded_mode_delivers_in_process_and_detects_copies(copycat_env: Path, clips_dir: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with Receiver("embedded-secret") as receiver:
        monkeypatch.setenv("COPYCAT_WEBHOOKS__ENDPOINTS", f"{receiver.url}/fail-once")
        monkeypatch.setenv("COPYCAT_WEBHOOKS__SECRET", "embedded-secret")
        monkeypatch.setenv("COPYCAT_WEBHOOKS__BACKOFF_BASE_S", "0.3")
        monkeypatch.setenv("COPYCAT_COPIES__ON_INGEST", "true")
        use_fresh_resources()
        assert resources.current().settings.embedded
        clip = clips_dir / "clip12_armwrestle.mp4"
        first = client.ingest_file(clip, "original.mp4")
        started = time.monotonic()
        second = client.ingest_file(clip, "reupload.mp4")  # the same bytes under another name: a full copy
        # Everything happened inside ingest_file: nothing to wait for.
        indexed = receiver.got("video.indexed")
        assert [(r.body["data"]["name"], r.answered) for r in indexed] == [
            ("original.mp4", 500), ("original.mp4", 200), ("reupload.mp4", 500), ("reupload.mp4", 200)]
        assert all(r.verified for r in receiver.requests)
        assert time.monotonic() - started >= 0.3, "the retry waited the backoff in-process"

        with session() as s:
            rows = list_copies(s, second)
            deliveries = webhooks.list_deliveries(s, event="copy.detected")
            attempts = [(d.attempt, d.status_code, d.outcome) for d in deliveries]
        assert rows and {r["other_id"] for r in rows} == {first}
        best = max(rows, key=lambda r: r["score"])
        assert best["video_start"] == pytest.approx(best["other_start"], abs=1.0)
        assert best["video_end"] - best["video_start"] >= 7.0, best  # most of the 10 s clip
        detected = receiver.got("copy.detected", "/fail-once")
        assert detected[-1].answered == 200 and detected[-1].body["data"]["copies"] == rows
        assert sorted(attempts) == [(1, 500, "retrying"), (2, 200, "delivered")]
