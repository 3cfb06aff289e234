"""Uploads replaced, deleted or re-announced while work is under way: the end state is still right."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from db import videos
from db.models import utcnow
from db.session import session_scope
from service import resources
from service.operations import register_upload

pytestmark = pytest.mark.services
LITE = pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
# Tests that delete or search vectors also run on the real Milvus server, whose reads can lag its writes.
VECTORS = pytest.mark.parametrize("milvus_uri", ["lite", "standalone"], indirect=True)


def row(video_id: str) -> videos.Video | None:
    with session_scope(resources.current().engine) as session:
        return videos.get_video(session, video_id)


def put(clips_dir: Path, name: str, key: str, *, queue: bool = True) -> str:
    """Upload and register an object; ``queue=False`` leaves it registered but not yet processed."""
    cfg = resources.current().settings
    info = resources.current().objects.put_file(cfg.s3.uploads_bucket, key, clips_dir / name)
    if queue:
        register_upload(resources.current(), cfg.s3.uploads_bucket, key, info.size, info.etag)
        return videos.video_id_for(cfg.s3.uploads_bucket, key)
    with session_scope(resources.current().engine) as session:
        video, _ = videos.register_upload(session, cfg.s3.uploads_bucket, key, size=info.size, etag=info.etag)
        return video.id


@LITE
def test_a_queued_row_is_requeued_once_per_stale_period(services_env: dict[str, str], clips_dir: Path) -> None:
    """A row waiting in a long queue must not get another message at every sweep."""
    cfg = resources.current().settings
    video_id = put(clips_dir, "clip08_flower.webm", "waiting.webm", queue=False)
    with session_scope(resources.current().engine) as session:
        videos.get_video(session, video_id).updated_at = utcnow() - timedelta(days=1)
    stale = timedelta(hours=2)
    with session_scope(resources.current().engine) as session:
        first = videos.register_upload(session, cfg.s3.uploads_bucket, "waiting.webm", size=1, etag=row(video_id).etag,
                                       stale_after=stale)[1]
    with session_scope(resources.current().engine) as session:
        second = videos.register_upload(session, cfg.s3.uploads_bucket, "waiting.webm", size=1,
                                        etag=row(video_id).etag, stale_after=stale)[1]
    assert (first, second) == (True, False)


@LITE
def test_a_run_for_replaced_bytes_drops_its_result(services_env: dict[str, str], clips_dir: Path) -> None:
    from tasks.ingest import embed_video

    cfg = resources.current().settings
    video_id = put(clips_dir, "clip05_bikes.mp4", "replaced.mp4", queue=False)
    with session_scope(resources.current().engine) as session:  # a newer upload was registered meanwhile
        videos.get_video(session, video_id).etag = "etag-of-a-newer-upload"
    result = embed_video.delay(video_id).get()
    assert result == {"video_id": video_id, "superseded": True}
    assert list(resources.current().objects.list(cfg.s3.matrices_bucket)) == []
    assert resources.current().frame_index.count(video_id) == 0


@VECTORS
def test_removal_waits_for_the_object_to_be_really_gone(services_env: dict[str, str], clips_dir: Path) -> None:
    from tasks.ingest import remove_video

    cfg = resources.current().settings
    video_id = put(clips_dir, "clip05_bikes.mp4", "kept.mp4")
    assert remove_video.delay(video_id).get() == {"video_id": video_id, "removed": False}
    assert row(video_id).status == "indexed" and resources.current().frame_index.count(video_id) == 10
    resources.current().objects.remove(cfg.s3.uploads_bucket, "kept.mp4")
    assert remove_video.delay(video_id).get() == {"video_id": video_id, "removed": True}
    assert row(video_id) is None and resources.current().frame_index.count(video_id) == 0


@VECTORS
def test_a_broken_reupload_takes_the_old_footage_out_of_results(services_env: dict[str, str], clips_dir: Path,
                                                                broken_dir: Path) -> None:
    from cli.client import submit_query, wait_for_job

    cfg = resources.current().settings
    video_id = put(clips_dir, "clip04_cockatoo.mp4", "news.mp4")
    assert row(video_id).status == "indexed"
    info = resources.current().objects.put_file(cfg.s3.uploads_bucket, "news.mp4",
                                                broken_dir / "broken01_decord_corrupted.mp4")
    assert register_upload(resources.current(), cfg.s3.uploads_bucket, "news.mp4", info.size, info.etag)
    assert row(video_id).status == "failed" and resources.current().frame_index.count(video_id) == 0
    res = resources.current()
    result = wait_for_job(res, submit_query(res, str(clips_dir / "clip04_cockatoo.mp4"),
                                            cfg.query_params({"crop_grid": 1})))
    assert result["status"] == "done" and result["matches"] == []
