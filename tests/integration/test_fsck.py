"""``copycat fsck`` on real stores (PostgreSQL, SeaweedFS, each Milvus): every kind of damage found and
repaired, exit codes as documented, a report recorded for status and metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from db import fsck as fsck_db
from db import videos
from db.session import session_scope
from service import resources
from tests.integration.test_races import put

pytestmark = [pytest.mark.services, pytest.mark.slow]

GHOST = "00000000-0000-0000-0000-00000000dead"


def fsck(*args: str) -> tuple[int, dict]:
    done = CliRunner().invoke(cli, ["fsck", "--json", *args])
    return done.exit_code, json.loads(done.output)


def row(video_id: str) -> videos.Video | None:
    with session_scope(resources.current().engine) as s:
        video = videos.get_video(s, video_id)
        if video is not None:
            s.expunge(video)
        return video


def test_fsck_finds_and_repairs_every_kind_of_damage(services_env: dict[str, str], clips_dir: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import use_fresh_resources

    monkeypatch.setenv("COPYCAT_FSCK__UPLOAD_GRACE_S", "0")
    use_fresh_resources()
    res = resources.current()
    cfg = res.settings
    a, b, c = (put(clips_dir, name, key) for name, key in (("clip08_flower.webm", "a.webm"),
                                                          ("clip17_earth.webm", "b.webm"),
                                                          ("clip09_friday.mp4", "c.mp4")))
    assert [row(v).status for v in (a, b, c)] == ["indexed"] * 3
    code, report = fsck()
    assert code == 0 and report["consistent"]

    index, store = res.frame_index, res.objects
    index.replace_video(GHOST, np.eye(4, index.dim, dtype=np.float32))  # vectors with no row
    index.delete_video(a)  # an indexed video lost its vectors
    store.remove(cfg.s3.matrices_bucket, row(b).matrix_key)  # ... and one its matrix
    store.put_bytes(cfg.s3.matrices_bucket, res.signals[0].object_key(GHOST, "f" * 64), b"x")
    store.put_bytes(cfg.s3.matrices_bucket, f"queries/{res.embedder.name}/no-such-job.npy", b"x")
    store.put_file(cfg.s3.uploads_bucket, "never-registered.mp4", clips_dir / "clip13_makeup.avi")
    store.remove(cfg.s3.uploads_bucket, "c.mp4")  # the sweep would remove c; fsck sees it first

    code, report = fsck()
    assert code == 1 and not report["consistent"]
    counts = {kind: n for kind, n in report["counts"].items() if n}
    assert counts == {"orphan_vectors": 1, "vector_count_mismatch": 1, "missing_matrix": 1, "orphan_matrices": 1,
                      "orphan_query_objects": 1, "unregistered_uploads": 1, "rows_without_upload": 1}
    assert report["items"]["orphan_vectors"] == [GHOST] and report["items"]["missing_matrix"] == [b]

    code, report = fsck("--repair")  # embedded tasks: re-ingests and removals run before the second check
    assert code == 0 and report["consistent"], report
    assert report["repaired"] == counts
    assert index.count(GHOST) == 0
    assert index.count(a) == row(a).vector_count > 0
    assert store.stat(cfg.s3.matrices_bucket, row(b).matrix_key) is not None
    assert row(c) is None and index.count(c) == 0
    new = videos.video_id_for(cfg.s3.uploads_bucket, "never-registered.mp4")
    assert row(new).status == "indexed"
    with session_scope(res.engine) as s:
        last = fsck_db.latest_run(s)
        assert last.repaired and last.total == sum(counts.values())
    assert fsck()[0] == 0
