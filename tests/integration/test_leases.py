"""Leases on ingest runs: a dead worker's video is queued again within a lease, whatever its length."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from db import videos
from db.models import utcnow
from db.session import session_scope
from service import resources

LEASE = timedelta(seconds=120)
WAITING = timedelta(hours=2)  # how long a pending row may wait in the queue before a sweep queues it again


def register(session, etag: str = "v1") -> tuple[videos.Video, bool]:  # noqa: ANN001
    return videos.register_upload(session, "uploads", "long.mp4", size=1, etag=etag, stale_after=WAITING)


def claim(session, run_id: str, lease: timedelta = LEASE) -> videos.Video | None:  # noqa: ANN001
    return videos.claim_for_ingest(session, videos.video_id_for("uploads", "long.mp4"), model="m", dim=4,
                                   retrying=False, run_id=run_id, lease=lease)


def test_a_live_run_keeps_its_video_and_a_dead_one_loses_it_within_a_lease(copycat_env: Path) -> None:
    engine = resources.current().engine
    with session_scope(engine) as s:
        video, queued = register(s)
        video_id = video.id
        assert queued
    with session_scope(engine) as s:
        assert claim(s, "run-a").status == "decoding"
    with session_scope(engine) as s:  # a sweep while run A is alive: nothing to do
        assert register(s) == (videos.get_video(s, video_id), False)
    with session_scope(engine) as s:  # a duplicate message while run A is alive: ignored
        assert claim(s, "run-b") is None
    with session_scope(engine) as s:  # run A's own redelivery (its worker died) takes the lease over
        assert claim(s, "run-a") is not None and videos.renew_lease(s, video_id, "run-a", LEASE)
        assert not videos.renew_lease(s, video_id, "run-b", LEASE)

    with session_scope(engine) as s:  # run A dies: its heartbeat stops, the lease runs out
        videos.get_video(s, video_id).lease_until = utcnow() - timedelta(seconds=1)
    with session_scope(engine) as s:  # the next sweep queues the video again, long before WAITING
        video, queued = register(s)
        assert queued and video.status == "pending" and video.lease_owner is None
    with session_scope(engine) as s:
        assert claim(s, "run-b").lease_owner == "run-b"
    with session_scope(engine) as s:  # run A, if it comes back, cannot renew a lease it lost
        assert not videos.renew_lease(s, video_id, "run-a", LEASE)


def test_an_indexed_or_failed_video_holds_no_lease(copycat_env: Path) -> None:
    engine = resources.current().engine
    with session_scope(engine) as s:
        video_id = register(s)[0].id
    with session_scope(engine) as s:
        claim(s, "run-a")
        videos.set_status(s, video_id, videos.VideoStatus.INDEXED)
    with session_scope(engine) as s:
        assert videos.get_video(s, video_id).lease_owner is None
        assert claim(s, "run-a") is None  # a late redelivery of a finished run does nothing
        videos.get_video(s, video_id).fail("corrupt", "x")
        assert videos.get_video(s, video_id).lease_until is None


def test_the_heartbeat_renews_the_lease_while_the_run_works(copycat_env: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``VideoTask.leased`` renews every quarter lease in a thread (downloads and long inserts included)."""
    from tasks.ingest import embed_video
    from tests.conftest import use_fresh_resources, wait_until

    monkeypatch.setenv("COPYCAT_BROKER__LEASE_S", "10")
    use_fresh_resources()
    engine = resources.current().engine
    with session_scope(engine) as s:
        video_id = register(s)[0].id
    with session_scope(engine) as s:
        claim(s, "direct", timedelta(seconds=10))  # the run id of a task called outside a worker
    with session_scope(engine) as s:
        first = videos.get_video(s, video_id).lease_until  # as the database gives it back

    def renewed() -> bool:
        with session_scope(engine) as s:
            return videos.get_video(s, video_id).lease_until > first

    with embed_video.leased(video_id):
        wait_until(renewed, timeout=60, interval=0.5, what="a renewed lease")


@pytest.mark.services
def test_an_ingested_video_ends_without_a_lease(copycat_env: Path, clips_dir: Path) -> None:
    from cli.client import ingest_file

    video_id = ingest_file(resources.current(), clips_dir / "clip08_flower.webm", "flower.webm")
    with session_scope(resources.current().engine) as s:
        video = videos.get_video(s, video_id)
        assert video.status == "indexed" and video.lease_owner is None and video.lease_until is None


def test_the_recovery_check_queues_only_videos_whose_lease_expired(copycat_env: Path) -> None:
    """``copycat.ops.recover`` (beat, every 30 s): a dead run's video is queued again, once (embedded mode runs
    the new run at once: its object was never uploaded, so it ends ``object_missing`` on its second attempt);
    a live run, a pending row and an indexed one are left alone."""
    from service import operations as ops

    engine = resources.current().engine
    ids = {}
    with session_scope(engine) as s:
        for key in ("dead.mp4", "alive.mp4", "waiting.mp4", "done.mp4"):
            ids[key] = videos.register_upload(s, "uploads", key, size=1, etag="v1")[0].id
    with session_scope(engine) as s:
        for key in ("dead.mp4", "alive.mp4", "done.mp4"):
            videos.claim_for_ingest(s, ids[key], model="m", dim=4, retrying=False, run_id=f"run-{key}", lease=LEASE)
        videos.get_video(s, ids["dead.mp4"]).lease_until = utcnow() - timedelta(seconds=1)
        videos.set_status(s, ids["done.mp4"], videos.VideoStatus.INDEXED)
    assert ops.recover_dead_runs(resources.current()) == 1
    with session_scope(engine) as s:
        rows = {key: videos.get_video(s, vid) for key, vid in ids.items()}
        states = {key: row.status for key, row in rows.items()}
        dead = rows["dead.mp4"]
        assert (dead.failure_code, dead.attempts) == ("object_missing", 2)
    assert states == {"dead.mp4": "failed", "alive.mp4": "decoding", "waiting.mp4": "pending", "done.mp4": "indexed"}
    assert ops.recover_dead_runs(resources.current()) == 0


def test_a_query_job_holds_a_lease_while_a_step_runs_and_a_dead_one_is_queued_again(copycat_env: Path) -> None:
    """Query jobs too: a duplicate message while a run is alive is dropped, a run whose lease ran out is
    queued again (embedded mode runs it at once: its query object was never stored, so it fails cleanly)."""
    from db import jobs
    from service import operations as ops

    engine = resources.current().engine
    with session_scope(engine) as s:
        job_id = jobs.create_job(s, source="q.mp4", name="q.mp4", bucket="queries", key="q.mp4", params={}).id
    with session_scope(engine) as s:
        assert jobs.start_job(s, job_id, run_id="run-a", lease=LEASE).status == "running"
    with session_scope(engine) as s:
        assert jobs.start_job(s, job_id, run_id="run-b", lease=LEASE) is None  # a duplicate, run a alive
        assert jobs.claim_match(s, job_id, run_id="run-b", lease=LEASE) is None
        jobs.release_lease(s, job_id)  # embedded, queued for matching: no run holds it
    with session_scope(engine) as s:
        assert jobs.claim_match(s, job_id, run_id="run-c", lease=LEASE) is not None
    assert ops.recover_dead_runs(resources.current()) == 0
    with session_scope(engine) as s:  # run c's worker dies
        jobs.get_job(s, job_id).lease_until = utcnow() - timedelta(seconds=1)
    assert ops.recover_dead_runs(resources.current()) == 1
    with session_scope(engine) as s:
        job = jobs.get_job(s, job_id)
        assert (job.status, job.failure_code, job.lease_owner) == ("failed", "object_missing", None)
        assert jobs.start_job(s, job_id, run_id="run-late", lease=LEASE) is None  # a late redelivery
