"""Bucket events drive the same registration as the sweep: created, overwritten, removed, query drops."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import jobs, videos
from db.session import session_scope
from service import resources
from service.operations import handle_event, sweep
from workers.stores.events import ObjectEvent, parse_records

pytestmark = pytest.mark.services


def video(bucket: str, key: str) -> videos.Video | None:
    with session_scope(resources.current().engine) as session:
        return videos.find_by_object(session, bucket, key)


@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_events_create_overwrite_and_remove(services_env: dict[str, str], clips_dir: Path) -> None:
    cfg = resources.current().settings
    uploads, store = cfg.s3.uploads_bucket, resources.current().objects
    key = "新闻/clip 01.mp4"
    info = store.put_file(uploads, key, clips_dir / "clip01_chaplin.mp4")
    # The record exactly as MinIO would send it: the key query-escaped.
    message = {"Records": [{"eventName": "s3:ObjectCreated:Put", "s3": {
        "bucket": {"name": uploads},
        "object": {"key": "%E6%96%B0%E9%97%BB/clip+01.mp4", "size": info.size, "eTag": info.etag}}}]}
    [event] = parse_records(message)
    assert handle_event(resources.current(), event) is True
    first = video(uploads, key)
    assert first.status == "indexed" and first.name == "clip 01.mp4" and first.attempts == 1
    assert handle_event(resources.current(), event) is False  # a repeated notification changes nothing
    assert sweep(resources.current())["queued"] == 0  # nor does the sweep that sees the same object

    # Overwrite: same key, new content, new ETag.
    info = store.put_file(uploads, key, clips_dir / "clip05_bikes.mp4")
    assert handle_event(resources.current(), ObjectEvent("created", uploads, key, info.size, info.etag)) is True
    second = video(uploads, key)
    assert second.id == first.id and second.etag == info.etag and second.sha256 != first.sha256
    assert resources.current().frame_index.count(second.id) == second.vector_count == second.frame_count == 10

    # Removal.
    store.remove(uploads, key)
    assert handle_event(resources.current(), ObjectEvent("removed", uploads, key)) is True
    assert video(uploads, key) is None
    assert resources.current().frame_index.count(first.id) == 0
    assert handle_event(resources.current(), ObjectEvent("removed", uploads, key)) is False


@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_query_drop_becomes_one_job_and_rerun_replaces_results(services_env: dict[str, str],
                                                               clips_dir: Path) -> None:
    from tasks.query import embed_query

    cfg = resources.current().settings
    store = resources.current().objects
    store.put_file(cfg.s3.uploads_bucket, "clip04_cockatoo.mp4", clips_dir / "clip04_cockatoo.mp4")
    sweep(resources.current())
    info = store.put_file(cfg.s3.queries_bucket, "in/q.mp4", clips_dir / "clip04_cockatoo.mp4")
    event = ObjectEvent("created", cfg.s3.queries_bucket, "in/q.mp4", info.size, info.etag)
    assert handle_event(resources.current(), event) is True
    assert handle_event(resources.current(), event) is False
    assert sweep(resources.current())["queries"] == 0
    with session_scope(resources.current().engine) as session:
        job = jobs.find_job_by_object(session, cfg.s3.queries_bucket, "in/q.mp4")
        first = jobs.result_json(jobs.get_job(session, job.id))
    assert first["status"] == "done"
    assert [m["name"] for m in first["matches"]] == ["clip04_cockatoo.mp4"]

    embed_query.delay(job.id)  # running the job again replaces its rows
    with session_scope(resources.current().engine) as session:
        again = jobs.result_json(jobs.get_job(session, job.id))
        from sqlalchemy import func, select

        from db.models import QueryMatch

        stored = session.scalar(select(func.count()).select_from(QueryMatch).where(QueryMatch.job_id == job.id))
    assert stored == 1
    assert again["matches"] == first["matches"]
