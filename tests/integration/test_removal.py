"""Removing a deleted upload during a Milvus outage: the retry finishes the job, no vector is orphaned."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import videos
from db.session import session_scope
from service import resources
from stack.services import free_port, milvus_lite_server
from tests.conftest import use_fresh_resources, wait_until
from workers.errors import VectorStoreUnavailable

pytestmark = pytest.mark.services


def answers(res: resources.Resources) -> bool:
    try:
        res.frame_index.count()
        return True
    except VectorStoreUnavailable:
        res.frame_index.close()
        return False


def test_a_removal_that_meets_a_milvus_outage_is_finished_by_its_retry(copycat_env: Path, clips_dir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    """The row goes last: while Milvus is down the removal fails and the row stays, so a later run (a retry,
    the next sweep) still knows the video and deletes its vectors."""
    from cli.client import ingest_file
    from tasks.ingest import remove_video

    port = free_port()
    server = milvus_lite_server(tmp_path / "milvus", port=port)
    monkeypatch.setenv("COPYCAT_MILVUS__URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("COPYCAT_BROKER__MAX_RETRIES", "0")
    server.start()
    try:
        server.wait_for_port(port, timeout=120)
        use_fresh_resources()
        res = resources.current()
        video_id = ingest_file(res, clips_dir / "clip05_bikes.mp4", "bikes.mp4")
        assert res.frame_index.count(video_id) == 10
        res.objects.remove(res.settings.s3.uploads_bucket, "bikes.mp4")

        server.stop()
        remove_video.delay(video_id)  # Milvus is down: the task fails, its failure is recorded on the row
        with session_scope(res.engine) as session:
            row = videos.get_video(session, video_id)
        assert row is not None and row.failure_code == "milvus_unavailable"

        server.start()
        server.wait_for_port(port, timeout=120)
        use_fresh_resources()
        res = resources.current()
        wait_until(lambda: answers(res), timeout=120, what="the restarted Milvus Lite server answering")
        assert res.frame_index.count(video_id) == 10  # the vectors are still there, and still known
        assert remove_video.delay(video_id).get() == {"video_id": video_id, "removed": True}
        assert res.frame_index.count(video_id) == 0
        with session_scope(res.engine) as session:
            assert videos.get_video(session, video_id) is None
    finally:
        server.stop()


def test_a_reference_indexed_at_another_rate_is_skipped_not_fatal(copycat_env: Path, clips_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """After a change of COPYCAT_DECODE__FPS, older references do not line up with new queries: they are
    left out (and logged), and the query still answers with the references that do."""
    from cli.client import ingest_file, submit_query, wait_for_job

    ingest_file(resources.current(), clips_dir / "clip05_bikes.mp4", "bikes_1fps.mp4")
    monkeypatch.setenv("COPYCAT_DECODE__FPS", "2")
    use_fresh_resources()
    res = resources.current()
    ingest_file(res, clips_dir / "clip05_bikes.mp4", "bikes_2fps.mp4")
    result = wait_for_job(res, submit_query(res, str(clips_dir / "clip05_bikes.mp4"),
                                            res.settings.query_params({"crop_grid": 1})))
    assert result["status"] == "done", result["error"]
    assert [m["name"] for m in result["matches"]] == ["bikes_2fps.mp4"]


def test_an_upload_over_the_size_limit_is_refused_before_it_is_downloaded(copycat_env: Path, clips_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The registered size decides: the scratch disk never holds a file the limits refuse."""
    from cli.client import ingest_file
    from workers.stores.objects import LocalObjectStore

    monkeypatch.setenv("COPYCAT_DECODE__MAX_FILE_MIB", "1")
    use_fresh_resources()
    downloads: list[str] = []
    monkeypatch.setattr(LocalObjectStore, "get_file", lambda self, bucket, key, dest: downloads.append(key))
    video_id = ingest_file(resources.current(), clips_dir / "clip07_parkinglot.mp4", "big.mp4")  # 2.7 MiB
    with session_scope(resources.current().engine) as session:
        row = videos.get_video(session, video_id)
    assert (row.status, row.failure_code) == ("failed", "file_too_large")
    assert "big.mp4" in row.failure_detail and "COPYCAT_DECODE__MAX_FILE_MIB" in row.failure_detail
    assert downloads == []
