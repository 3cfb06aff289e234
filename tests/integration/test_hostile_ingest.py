"""The hostile-input corpus through the product: uploads in S3, rows in PostgreSQL, a real worker.

Each hostile upload must end as a ``failed`` row with its code and a message that names the upload and
no server path (or ``indexed`` where it is a valid video within the limits); the worker keeps running
and good uploads beside them are indexed as usual.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from db import videos
from db.session import session_scope
from service import resources
from tests.conftest import wait_until
from tests.unit.test_admission import CORPUS, Hostile
from workers.admission import InputLimits

pytestmark = pytest.mark.services

# Cases that need other limits than the defaults are covered by the unit corpus, and so are keys with '..'
# segments: the S3 SDK refuses to upload them ("object name with '.' or '..' path segment is not supported").
DEFAULT_LIMITS = [case for case in CORPUS if case.limits == InputLimits() and ".." not in case.key.split("/")]
GOOD = ["clip05_bikes.mp4", "clip19_pillow.mp4"]


def upload_corpus(cases: list[Hostile], clips_dir: Path, tmp_path: Path) -> dict[str, Hostile | None]:
    """Build each case and put it into the uploads bucket under ``hostile/<key>``; good clips under ``good/``."""
    cfg, store = resources.current().settings, resources.current().objects
    server = tmp_path / "server"
    server.mkdir()
    keys: dict[str, Hostile | None] = {}
    for index, case in enumerate(cases):
        path = tmp_path / "build" / str(index) / f"input{Path(case.key).suffix[:16]}"
        path.parent.mkdir(parents=True)
        case.build(path, server)
        key = f"hostile/{case.key}"
        store.put_file(cfg.s3.uploads_bucket, key, path)
        keys[key] = case
    for name in GOOD:
        store.put_file(cfg.s3.uploads_bucket, f"good/{name}", clips_dir / name)
        keys[f"good/{name}"] = None
    return keys


def rows_by_key() -> dict[str, videos.Video]:
    with session_scope(resources.current().engine) as session:
        return {v.key: v for v in videos.list_videos(session)}


def check_outcomes(keys: dict[str, Hostile | None], server_paths: list[Path]) -> None:
    rows = rows_by_key()
    assert set(rows) == set(keys)
    for key, case in keys.items():
        row = rows[key]
        if case is None or case.error is None:
            assert row.status == "indexed", (key[:60], row.failure_code, row.failure_detail)
            assert resources.current().frame_index.count(row.id) == row.vector_count
            if case is None:  # real footage; an accepted hostile file may be all test pattern (nothing indexed)
                assert row.vector_count > 0
            continue
        assert row.status == "failed", (key[:60], row.status)
        assert row.failure_code == case.error.code, (key[:60], row.failure_code, row.failure_detail)
        assert case.match in row.failure_detail, (key[:60], row.failure_detail)
        for path in server_paths:
            assert str(path) not in row.failure_detail, (key[:60], row.failure_detail)
        assert "file:" not in row.failure_detail and "/scratch/" not in row.failure_detail, row.failure_detail


@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_hostile_uploads_fail_with_their_codes(services_env: dict[str, str], copycat_env: Path, clips_dir: Path,
                                               tmp_path: Path) -> None:
    from service.operations import sweep

    res = resources.current()
    keys = upload_corpus(DEFAULT_LIMITS, clips_dir, tmp_path)
    assert sweep(res)["queued"] == len(keys)
    check_outcomes(keys, [tmp_path, copycat_env])
    assert sweep(res) == {"queued": 0, "removed": 0, "queries": 0}  # failed rows are not retried forever


PLAYLISTS_AND_LIES = [case for case in DEFAULT_LIMITS if case.key in {
    "hls.mp4", "ffconcat.mp4", "notes.mp4", "header_8192x8192.avi", "size_switch_64_to_1280.ts",
    "duration_10h_tag.mkv", "rate_1000fps.mp4", "vidéo 日本 ✓.mp4"}]


@pytest.mark.parametrize("milvus_uri", ["server"], indirect=True)
def test_a_worker_survives_hostile_uploads(celery_worker, clips_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from tasks.maintenance import reconcile

    keys = upload_corpus(PLAYLISTS_AND_LIES, clips_dir, tmp_path)
    assert reconcile.delay().get(timeout=60)["queued"] == len(keys)

    def all_finished() -> bool:
        rows = rows_by_key()
        return len(rows) == len(keys) and all(r.status in {"indexed", "failed"} for r in rows.values())

    wait_until(all_finished, timeout=300, what="all uploads indexed or failed")
    check_outcomes(keys, [tmp_path])
    assert celery_worker.poll() is None  # the worker process is still running
