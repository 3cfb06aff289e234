"""Copy detection on upload through a Celery worker: an edited copy with known ground truth is found,
re-indexing replaces its relations, deleting a video removes them, and copy.detected is delivered."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import client
from cli.demo import expected_segment, forge_query
from cli.main import cli
from db import videos
from db.copies import list_copies
from service import resources
from service.operations import sweep
from service.resources import session
from tests.conftest import use_fresh_resources, wait_until
from tests.integration.receiver import Receiver

pytestmark = pytest.mark.services
SECRET = "copies-secret"


@pytest.fixture
def receiver(services_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver(SECRET) as rec:
        monkeypatch.setenv("COPYCAT_COPIES__ON_INGEST", "true")
        monkeypatch.setenv("COPYCAT_WEBHOOKS__ENDPOINTS", f"{rec.url}/hook")
        monkeypatch.setenv("COPYCAT_WEBHOOKS__SECRET", SECRET)
        use_fresh_resources()
        yield rec


def relations(video_id: str | None = None) -> list[dict]:
    with session() as s:
        return list_copies(s, video_id)


def detected(video_id: str) -> bool:
    """The video's copy detection ran (its timing is recorded whether it found anything or not)."""
    with session() as s:
        row = videos.get_video(s, video_id)
        if row is not None and "copies" in (row.timings or {}):
            print(f"copy detection of {row.name} ({row.frame_count} frames): {row.timings['copies']:.3f} s")
            return True
        return False


@pytest.mark.parametrize("milvus_uri", ["server"], indirect=True)
def test_copies_found_replaced_and_removed(receiver: Receiver, celery_worker: object, clips_dir: Path,
                                           tmp_path: Path) -> None:
    source, host, other = clips_dir / "clip03_bigbuckbunny.webm", clips_dir / "clip05_bikes.mp4", \
        clips_dir / "clip07_parkinglot.mp4"
    res = resources.current()
    library = [client.ingest_file(res, source, "bunny.webm"), client.ingest_file(res, other, "parking.mp4")]
    client.wait_for_videos(res, library, timeout=300)
    wait_until(lambda: all(detected(v) for v in library), 120, what="detection of the library")
    assert relations() == [], "two unrelated clips share nothing"

    # host[0, 4) + cropped, brightened bunny[3, 11) + host[4, 10): copy [4, 12) ~ bunny [3, 11).
    forged = tmp_path / "forged.mp4"
    forge_query(source, host, forged)
    copy_id = client.ingest_file(res, forged, "copy.mp4")
    client.wait_for_videos(res, [copy_id], timeout=300)
    wait_until(lambda: detected(copy_id), 120, what="detection of the copy")
    found = relations(copy_id)
    assert found and {r["other_id"] for r in found} == {library[0]}, found
    qs, qe, rs, re_ = expected_segment()
    best = max(found, key=lambda r: r["score"])
    assert abs(best["video_start"] - qs) <= 1.5 and abs(best["video_end"] - qe) <= 1.5, best
    assert abs(best["other_start"] - rs) <= 1.5 and abs(best["other_end"] - re_) <= 1.5, best
    assert best["score"] >= resources.current().settings.copies.min_score
    # Seen from the original's side, the same relation is flipped.
    flipped = [r for r in relations(library[0]) if r["other_id"] == copy_id]
    assert [(r["video_start"], r["other_start"]) for r in flipped] == [(best["other_start"], best["video_start"])]

    wait_until(lambda: receiver.got("copy.detected"), 60, what="copy.detected")
    event = receiver.got("copy.detected")[0]
    assert event.verified and event.body["data"]["video_id"] == copy_id
    assert event.body["data"]["copies"] == found

    cli_rows = json.loads(CliRunner().invoke(cli, ["copies", "--video", copy_id, "--json"]).output)
    assert cli_rows == found

    # Re-index: the object now holds the parking-lot clip; the bunny relations go, the new content's come.
    shutil.copy(other, tmp_path / "replacement.mp4")
    store = resources.current().objects
    cfg = resources.current().settings
    store.put_file(cfg.s3.uploads_bucket, "copy.mp4", tmp_path / "replacement.mp4")
    sweep(resources.current())
    wait_until(lambda: {r["other_id"] for r in relations(copy_id)} == {library[1]}, 180,
               what="relations replaced after re-index")
    assert all(r["other_id"] != library[0] for r in relations(library[0])), "no stale bunny relation"

    # Delete the parking-lot original: every relation it was part of goes with it.
    store.remove(cfg.s3.uploads_bucket, "parking.mp4")
    sweep(resources.current())
    wait_until(lambda: relations(copy_id) == [] and relations(library[1]) == [], 120, what="relations removed")
    assert relations() == []
