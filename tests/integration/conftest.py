"""Fixtures that point Copycat at the real services and run real Celery workers."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import S3_KEYS


@pytest.fixture
def services_env(copycat_env: Path, monkeypatch: pytest.MonkeyPatch, pg_url: str, seaweed: str,
                 milvus_uri: str) -> Iterator[dict[str, str]]:
    """Postgres + SeaweedFS S3 + Milvus (file or server) for one test, with its own buckets and collection."""
    from sqlalchemy import text

    from tasks import context
    from tasks.app import get_app

    tag = uuid.uuid4().hex[:8]
    env = {
        "COPYCAT_DATABASE__URL": pg_url,
        "COPYCAT_S3__ENDPOINT": seaweed,
        "COPYCAT_S3__ACCESS_KEY": S3_KEYS[0],
        "COPYCAT_S3__SECRET_KEY": S3_KEYS[1],
        "COPYCAT_S3__UPLOADS_BUCKET": f"uploads-{tag}",
        "COPYCAT_S3__QUERIES_BUCKET": f"queries-{tag}",
        "COPYCAT_S3__MATRICES_BUCKET": f"matrices-{tag}",
        "COPYCAT_MILVUS__URI": milvus_uri,
        "COPYCAT_MILVUS__COLLECTION_PREFIX": f"test_{tag}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    context.reset()
    get_app()
    with context.engine().begin() as conn:
        conn.execute(text("TRUNCATE videos, query_jobs, query_matches, query_segments"))
    yield env
    context.reset()


@pytest.fixture
def celery_worker(services_env: dict[str, str], redis_url: str, monkeypatch: pytest.MonkeyPatch,
                  tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A real Celery worker process on every queue, fed through Redis; needs the Milvus server mode."""
    if "://" not in services_env["COPYCAT_MILVUS__URI"]:
        pytest.skip("several processes share Milvus Lite only through its server")
    from tasks import context

    queue_tag = uuid.uuid4().hex[:6]
    monkeypatch.setenv("COPYCAT_BROKER__URL", redis_url)
    context.reset()
    env = {**os.environ, "COPYCAT_BROKER__URL": redis_url, "COPYCAT_HOME": str(tmp_path / "worker-home")}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tasks.worker", "worker", "-Q", "embed,index,query,ops", "-c", "2",
         "--without-gossip", "--without-mingle", "-n", f"test-{queue_tag}@%h", "-l", "INFO"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        _wait_for_worker(worker, tmp_path / "worker.log")
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()


def _wait_for_worker(worker: subprocess.Popen, log_path: Path, timeout: float = 60.0) -> None:
    from tasks.app import get_app

    app = get_app()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"celery worker exited:\n{log_path.read_text()[-3000:]}")
        if app.control.ping(timeout=1.0):
            return
    raise TimeoutError(f"celery worker did not answer a ping:\n{log_path.read_text()[-3000:]}")


def wait_until(predicate, timeout: float, interval: float = 0.5, what: str = "condition") -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
