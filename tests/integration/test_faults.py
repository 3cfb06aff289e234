"""Faults of the services: transient ones are retried with backoff, then recorded; the worker carries on."""

from __future__ import annotations

from pathlib import Path

import pytest

from db import videos
from db.session import session_scope
from service import resources
from tasks.base import TASK_OPTIONS, failure_reason
from workers.errors import CorruptVideo, InputError, StorageUnavailable, TransientError, VectorStoreUnavailable


def test_retry_policy_separates_bad_input_from_outages() -> None:
    assert TASK_OPTIONS["autoretry_for"] == (TransientError,)
    assert InputError in TASK_OPTIONS["throws"]
    assert TASK_OPTIONS["retry_backoff"] and TASK_OPTIONS["retry_jitter"] and TASK_OPTIONS["acks_late"]
    assert failure_reason(CorruptVideo("x.mp4: 3 decoder errors")) == ("corrupt", "x.mp4: 3 decoder errors")
    assert failure_reason(VectorStoreUnavailable("down"), retries=5) == ("milvus_unavailable",
                                                                          "gave up after 5 retries: down")
    assert failure_reason(KeyError("boom"))[0] == "internal"


@pytest.mark.services
def test_unreachable_milvus_is_retried_then_recorded(copycat_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                     clips_dir: Path) -> None:
    """Milvus down: the index step retries (here twice, no wait), then the video says why it failed."""
    from cli.client import ingest_file
    from stack.services import free_port

    monkeypatch.setenv("COPYCAT_MILVUS__URI", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("COPYCAT_BROKER__MAX_RETRIES", "2")
    resources.reset()
    video_id = ingest_file(resources.current(), clips_dir / "clip08_flower.webm", "clip08_flower.webm")
    with session_scope(resources.current().engine) as session:
        video = videos.get_video(session, video_id)
    assert video.status == "failed"
    assert video.failure_code == "milvus_unavailable"
    assert "gave up after 2 retries" in video.failure_detail  # the first try and two retries
    # The frame matrix was stored before the outage; the next attempt only has to index it.
    assert video.matrix_key and resources.current().objects.stat(video.matrix_bucket, video.matrix_key) is not None


@pytest.mark.services
def test_unreachable_object_store_is_transient(copycat_env: Path) -> None:
    from stack.services import free_port
    from workers.stores.objects import S3ObjectStore

    store = S3ObjectStore(f"127.0.0.1:{free_port()}", "key", "secret", timeout_s=1)
    with pytest.raises(StorageUnavailable, match="unreachable"):
        store.stat("copycat-uploads", "x.mp4")
