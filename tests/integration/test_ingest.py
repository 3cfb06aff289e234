"""Ingest against the real services: SeaweedFS S3, PostgreSQL, Milvus (Lite file, Lite server, standalone), Celery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from db import videos
from db.session import session_scope
from service import resources
from tests.conftest import wait_until

pytestmark = pytest.mark.services

GOOD = ["clip01_chaplin.mp4", "clip03_bigbuckbunny.webm", "clip10_pancake.mkv", "clip13_makeup.avi",
        "clip15_grampa.flv", "clip18_jwst.mp4"]


def upload(paths: list[Path], prefix: str = "") -> list[str]:
    """Put files into the uploads bucket with the S3 SDK, as a user would."""
    cfg = resources.current().settings
    keys = []
    for path in paths:
        key = f"{prefix}{path.name}"
        resources.current().objects.put_file(cfg.s3.uploads_bucket, key, path)
        keys.append(key)
    return keys


def rows_by_name() -> dict[str, videos.Video]:
    with session_scope(resources.current().engine) as session:
        return {v.name: v for v in videos.list_videos(session)}


def assert_indexed(video: videos.Video) -> None:
    """Vectors in Milvus == informative frames (the matrix's non-zero rows, unit length), matrix of the right shape."""
    from workers.stores.objects import load_matrix

    assert video.status == "indexed", (video.name, video.failure_code, video.failure_detail)
    assert video.frame_count == round(video.duration * video.fps)
    assert resources.current().frame_index.count(video.id) == video.vector_count
    matrix = load_matrix(resources.current().objects, video.matrix_bucket, video.matrix_key)
    assert matrix.shape == (video.frame_count, 512)
    assert matrix.dtype == np.float16
    norms = np.linalg.norm(matrix.astype(np.float32), axis=1)
    assert video.vector_count == int(np.count_nonzero(norms)) >= 0.8 * video.frame_count
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=2e-3)
    assert video.model == "sscd_distilled" and video.dim == 512
    assert video.sha256 and video.etag and video.size
    assert {"download", "probe", "decode_embed", "store_matrix", "index"} <= set(video.timings)


def test_sweep_indexes_good_clips_and_fails_broken_ones(services_env: dict[str, str], clips_dir: Path,
                                                        broken_dir: Path) -> None:
    from service.operations import sweep

    upload([clips_dir / name for name in GOOD] + sorted(broken_dir.iterdir()), prefix="batch/")
    counts = sweep(resources.current())
    assert counts["queued"] == len(GOOD) + 2
    rows = rows_by_name()
    for name in GOOD:
        assert_indexed(rows[name])
    assert rows["broken01_decord_corrupted.mp4"].failure_code == "corrupt"
    assert "Invalid NAL unit size" in rows["broken01_decord_corrupted.mp4"].failure_detail
    assert rows["broken02_clip05_bikes_TRUNCATED_half.mp4"].failure_code == "truncated"
    total = resources.current().frame_index.count()
    assert total == sum(rows[name].vector_count for name in GOOD)

    # A second sweep finds nothing new: indexed rows stay, failed ones are not retried forever.
    assert sweep(resources.current()) == {"queued": 0, "removed": 0, "queries": 0}

    # Re-ingesting a clip never duplicates vectors; a duplicate message for an indexed video is a no-op.
    from tasks.ingest import embed_video

    chaplin = rows["clip01_chaplin.mp4"]
    for _ in range(2):
        with session_scope(resources.current().engine) as session:
            videos.set_status(session, chaplin.id, videos.VideoStatus.PENDING)
        embed_video.delay(chaplin.id)
    embed_video.delay(chaplin.id)
    assert resources.current().frame_index.count() == total
    again = rows_by_name()["clip01_chaplin.mp4"]
    assert_indexed(again)
    assert again.attempts == 3 and again.matrix_key == chaplin.matrix_key  # same content, same matrix object


def test_overwrite_with_shorter_video_drops_stale_frames(services_env: dict[str, str], clips_dir: Path,
                                                         tmp_path: Path) -> None:
    import subprocess

    from service.operations import sweep

    upload([clips_dir / "clip06_bottles.mp4"])
    sweep(resources.current())
    long_row = rows_by_name()["clip06_bottles.mp4"]
    assert_indexed(long_row)
    short = tmp_path / "clip06_bottles.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(clips_dir / "clip06_bottles.mp4"), "-t", "12",
                    "-c:v", "libx264", "-preset", "ultrafast", str(short)], check=True)
    upload([short])  # same key, new ETag
    assert sweep(resources.current())["queued"] == 1
    short_row = rows_by_name()["clip06_bottles.mp4"]
    assert short_row.id == long_row.id
    assert_indexed(short_row)
    assert short_row.frame_count == 12
    assert resources.current().frame_index.count() == 12


def test_deleted_object_is_forgotten(services_env: dict[str, str], clips_dir: Path) -> None:
    from service.operations import sweep

    upload([clips_dir / "clip01_chaplin.mp4", clips_dir / "clip05_bikes.mp4"])
    sweep(resources.current())
    cfg = resources.current().settings
    gone = rows_by_name()["clip05_bikes.mp4"]
    resources.current().objects.remove(cfg.s3.uploads_bucket, "clip05_bikes.mp4")
    assert sweep(resources.current())["removed"] == 1
    assert set(rows_by_name()) == {"clip01_chaplin.mp4"}
    assert resources.current().frame_index.count(gone.id) == 0
    assert resources.current().objects.stat(gone.matrix_bucket, gone.matrix_key) is None


@pytest.mark.every_milvus
def test_the_collection_gets_the_indexes_its_server_offers(services_env: dict[str, str],
                                                           request: pytest.FixtureRequest) -> None:
    """Milvus 2.3 (standalone) has no INVERTED scalar index, so video ids get a Trie; Milvus Lite has INVERTED."""
    backend = request.node.callspec.params["milvus_uri"]
    index = resources.current().frame_index
    index.ensure_collection()
    assert index.features.lite == (backend != "standalone")
    expected = "Trie" if backend == "standalone" else "INVERTED"
    assert index.client.describe_index(index.collection, "video_id")["index_type"] == expected
    assert index.client.describe_index(index.collection, "embedding")["index_type"] == "HNSW"


@pytest.mark.parametrize("milvus_uri", ["server", "standalone"], indirect=True)  # a Lite file: one client
def test_workers_creating_the_collection_at_once_can_all_use_it(services_env: dict[str, str]) -> None:
    """Four workers meet a collection whose creator has not added its indexes yet: each one ends with it
    loaded and fully indexed.

    On Milvus 2.3 a worker that loaded the collection before its creator had added the scalar index made
    that index fail ("can't change the index for loaded collection") and every later load fail too.
    """
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from workers.stores.vectors import VectorIndex

    cfg = resources.current().settings
    workers = [VectorIndex(cfg.milvus_uri, "race_model", 8, prefix=cfg.milvus.collection_prefix) for _ in range(4)]
    workers[0]._create(workers[0].features)  # the creating worker, stopped before its indexes
    start = Barrier(len(workers))

    def first_use(index: VectorIndex) -> int:
        start.wait()
        return index.replace_video(f"video-{id(index)}", np.eye(8, dtype=np.float32))

    with ThreadPoolExecutor(len(workers)) as pool:
        assert list(pool.map(first_use, workers)) == [8] * len(workers)
    assert workers[0].count() == 8 * len(workers)
    assert set(workers[0].client.list_indexes(workers[0].collection)) == {"embedding", "video_id"}
    for index in workers:
        index.close()


@pytest.mark.every_milvus
def test_model_mismatch_is_refused(services_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection built by one model refuses another model's vectors, with a message saying why."""
    from workers.errors import ModelMismatch
    from workers.stores.vectors import VectorIndex

    resources.current().frame_index.ensure_collection()
    cfg = resources.current().settings
    impostor = VectorIndex(cfg.milvus_uri, "sscd", 512, prefix=cfg.milvus.collection_prefix)
    impostor.collection = resources.current().frame_index.collection
    with pytest.raises(ModelMismatch, match="built by model 'sscd_distilled'"):
        impostor.ensure_collection()
    impostor.close()


def test_celery_worker_ingests_every_shared_clip(celery_worker, clips_dir: Path, broken_dir: Path) -> None:  # noqa: ANN001
    """A real worker process takes the jobs from Redis: every real clip ends indexed, every broken file
    failed with a reason, none lost."""
    from tasks.maintenance import reconcile

    clips = sorted(p for p in clips_dir.iterdir() if p.name.startswith("clip"))
    broken = sorted(broken_dir.iterdir())
    upload(clips + broken)
    assert reconcile.delay().get(timeout=60)["queued"] == len(clips) + len(broken)

    def all_finished() -> bool:
        rows = rows_by_name()
        return len(rows) == len(clips) + len(broken) and all(r.status in {"indexed", "failed"} for r in rows.values())

    wait_until(all_finished, timeout=400, what="all uploads indexed or failed")
    rows = rows_by_name()
    for path in clips:
        assert_indexed(rows[path.name])
    for path in broken:
        assert rows[path.name].status == "failed" and rows[path.name].failure_detail, path.name
    assert resources.current().frame_index.count() == sum(rows[p.name].vector_count for p in clips)
