"""Embedded mode (SQLite, Milvus Lite file, local objects, tasks in this process): webhooks are delivered
in-process, on a thread of their own, with their retry, and copy detection on upload stores and announces
relations. A receiver that is down holds up neither the ingest nor the process's stop."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import client
from db import webhooks
from db.copies import list_copies
from service import resources
from service.resources import session
from tests.conftest import use_fresh_resources, wait_until
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
        res = resources.current()
        first = client.ingest_file(res, clip, "original.mp4")
        second = client.ingest_file(res, clip, "reupload.mp4")  # the same bytes under another name: a full copy
        wait_until(lambda: len(receiver.got("video.indexed")) == 4 and len(receiver.got("copy.detected")) >= 2,
                   timeout=30, interval=0.1, what="every event delivered, each on its second attempt")
        indexed = sorted(receiver.got("video.indexed"), key=lambda r: (r.body["data"]["name"], r.at))
        assert [(r.body["data"]["name"], r.answered) for r in indexed] == [
            ("original.mp4", 500), ("original.mp4", 200), ("reupload.mp4", 500), ("reupload.mp4", 200)]
        assert all(r.verified for r in receiver.requests)
        assert indexed[1].at - indexed[0].at >= 0.3, "the retry waited the backoff"

        def recorded() -> list[tuple[int, int | None, str]]:  # an attempt is recorded after its answer arrives
            with session() as s:
                return [(d.attempt, d.status_code, d.outcome)
                        for d in webhooks.list_deliveries(s, event="copy.detected")]

        wait_until(lambda: len(recorded()) == 2, timeout=30, interval=0.1, what="both attempts recorded")
        with session() as s:
            rows = list_copies(s, second)
        assert rows and {r["other_id"] for r in rows} == {first}
        best = max(rows, key=lambda r: r["score"])
        assert best["video_start"] == pytest.approx(best["other_start"], abs=1.0)
        assert best["video_end"] - best["video_start"] >= 7.0, best  # most of the 10 s clip
        detected = receiver.got("copy.detected", "/fail-once")
        assert detected[-1].answered == 200 and detected[-1].body["data"]["copies"] == rows
        assert sorted(recorded()) == [(1, 500, "retrying"), (2, 200, "delivered")]


def test_a_receiver_that_is_down_holds_up_no_ingest_and_no_stop(copycat_env: Path, clips_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """Its 60 s backoff is waited out by no one: the ingests go on, closing the resources stops the
    deliveries at once and logs each attempt that will not be made."""
    with Receiver("") as receiver:
        monkeypatch.setenv("COPYCAT_WEBHOOKS__ENDPOINTS", f"{receiver.url}/always-fail")
        monkeypatch.setenv("COPYCAT_WEBHOOKS__BACKOFF_BASE_S", "60")
        use_fresh_resources()
        started = time.monotonic()
        for name in ("a.mp4", "b.mp4"):
            client.ingest_file(resources.current(), clips_dir / "clip05_bikes.mp4", name)
        wait_until(lambda: len(receiver.got("video.indexed")) == 2, timeout=30, interval=0.1,
                   what="each event's first attempt")
        assert time.monotonic() - started < 60, "an ingest waited for a webhook's backoff"
        stopping = time.monotonic()
        resources.reset()
        assert time.monotonic() - stopping < 5, "the stop waited for a webhook's backoff"
    assert [r.answered for r in receiver.got("video.indexed")] == [500, 500]
    assert caplog.text.count("the process stopped before attempt 2") == 2
    use_fresh_resources()
    with session() as s:
        outcomes = [(d.attempt, d.outcome) for d in webhooks.list_deliveries(s, event="video.indexed")]
    assert outcomes == [(1, "retrying"), (1, "retrying")]


def test_a_command_makes_its_planned_attempts_before_it_exits(copycat_env: Path, clips_dir: Path) -> None:
    """``copycat ingest`` (embedded) drains its deliveries at exit (``atexit``), retries included."""
    with Receiver("") as receiver:
        env = {**os.environ, "COPYCAT_WEBHOOKS__ENDPOINTS": f"{receiver.url}/fail-once",
               "COPYCAT_WEBHOOKS__BACKOFF_BASE_S": "2"}
        done = subprocess.run([sys.executable, "-m", "cli.main", "ingest", str(clips_dir / "clip05_bikes.mp4")],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert [r.answered for r in receiver.got("video.indexed")] == [500, 200]
        assert "planned webhook attempts before exit" in done.stderr
