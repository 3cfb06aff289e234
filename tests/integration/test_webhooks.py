"""Webhooks through a real Celery worker: signed events for indexed, failed and queried videos, a retry after
a 500 with its backoff, giving up, and every attempt in the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import client
from db import webhooks
from service import resources
from service.resources import session
from tests.conftest import use_fresh_resources, wait_until
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.services
SECRET = "test-webhook-secret"


@pytest.fixture
def receiver(services_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A loopback receiver as the configured endpoint (set before the worker starts, so it reads it too)."""
    with Receiver(SECRET) as rec:
        monkeypatch.setenv("COPYCAT_WEBHOOKS__ENDPOINTS", f"{rec.url}/fail-once")
        monkeypatch.setenv("COPYCAT_WEBHOOKS__SECRET", SECRET)
        monkeypatch.setenv("COPYCAT_WEBHOOKS__BACKOFF_BASE_S", "1")
        monkeypatch.setenv("COPYCAT_WEBHOOKS__MAX_ATTEMPTS", "3")
        use_fresh_resources()
        yield rec


def attempts(event_id: str) -> list[tuple[str, int, int | None, str]]:
    with session() as s:
        rows = webhooks.list_deliveries(s, event_id=event_id)
        return sorted((r.url.rsplit("/", 1)[-1], r.attempt, r.status_code, r.outcome) for r in rows)


@pytest.mark.parametrize("milvus_uri", ["server"], indirect=True)
def test_events_are_signed_retried_and_recorded(receiver: Receiver, celery_worker: object, clips_dir: Path,
                                                tmp_path: Path) -> None:
    res = resources.current()
    clip = clips_dir / "clip05_bikes.mp4"
    video_id = client.ingest_file(res, clip, "bikes.mp4")
    client.wait_for_videos(res, [video_id], timeout=300)
    wait_until(lambda: any(r.answered == 200 for r in receiver.got("video.indexed")), 60, what="video.indexed")

    indexed = receiver.got("video.indexed")
    assert [r.answered for r in indexed] == [500, 200], "answered 500 once, delivered by the retry"
    assert all(r.verified for r in indexed), "every attempt carries a valid signature over its own timestamp"
    assert indexed[0].body == indexed[1].body and indexed[0].event_id == indexed[1].event_id
    assert indexed[1].at - indexed[0].at >= 0.9, "the retry waited the backoff (1 s)"
    data = indexed[0].body["data"]
    assert (data["video_id"], data["name"], data["status"]) == (video_id, "bikes.mp4", "indexed")
    assert set(indexed[0].body) == {"event", "id", "created", "data"}
    # The worker records an attempt after its answer arrives, so the receiver may see the 200 first.
    wait_until(lambda: len(attempts(indexed[0].event_id)) == 2, 30, what="the delivered attempt recorded")
    assert attempts(indexed[0].event_id) == [("fail-once", 1, 500, "retrying"), ("fail-once", 2, 200, "delivered")]

    # A query with its own callback: query.done goes to the endpoint and the callback, with the result JSON.
    job_id = client.submit_query(res, str(clip), res.settings.query_params(), callback_url=f"{receiver.url}/callback")
    result = client.wait_for_job(res, job_id, timeout=300)
    wait_until(lambda: receiver.got("query.done", "/callback") and any(
        r.answered == 200 for r in receiver.got("query.done", "/fail-once")), 60, what="query.done")
    done = receiver.got("query.done", "/callback")
    assert len(done) == 1 and done[0].verified and done[0].answered == 200
    assert done[0].body["data"] == result and result["matches"][0]["video_id"] == video_id

    # A callback that always fails is given up after max_attempts (3), each attempt recorded.
    failing = client.submit_query(res, str(clip), res.settings.query_params(),
                                  callback_url=f"{receiver.url}/always-fail")
    client.wait_for_job(res, failing, timeout=300)
    wait_until(lambda: len(receiver.got("query.done", "/always-fail")) == 3, 60, what="three attempts")
    event_id = receiver.got("query.done", "/always-fail")[0].event_id
    wait_until(lambda: ("always-fail", 3, 500, "given_up") in attempts(event_id), 30, what="given up")
    assert [a for a in attempts(event_id) if a[0] == "always-fail"] == [
        ("always-fail", 1, 500, "retrying"), ("always-fail", 2, 500, "retrying"), ("always-fail", 3, 500, "given_up")]

    # A broken upload ends failed and says so.
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video\n" * 200)
    bad_id = client.ingest_file(res, junk, "junk.mp4")
    client.wait_for_videos(res, [bad_id], timeout=120)
    wait_until(lambda: any(r.answered == 200 for r in receiver.got("video.failed")), 60, what="video.failed")
    failed = receiver.got("video.failed")[-1].body["data"]
    assert failed["video_id"] == bad_id and failed["status"] == "failed"
    assert failed["error"].startswith("not_a_video: junk.mp4")
