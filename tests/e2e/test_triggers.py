"""Drop a file, it gets indexed: watcher and Celery worker as separate processes on the real services."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from db import jobs, videos
from db.session import session_scope
from service import resources
from stack.services import free_port, port_open
from tests.conftest import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]
SERVER = pytest.mark.parametrize("milvus_uri", ["server"], indirect=True)


def start(args: list[str], log: Path, **env: str) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "cli.main", *args], env={**os.environ, **env},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def rows() -> dict[str, videos.Video]:
    with session_scope(resources.current().engine) as session:
        return {v.name: v for v in videos.list_videos(session)}


@SERVER
def test_uploads_are_indexed_and_nothing_is_lost_across_a_watcher_restart(
        celery_worker, clips_dir: Path, broken_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    cfg = resources.current().settings
    store = resources.current().objects
    first = ["clip01_chaplin.mp4", "clip05_bikes.mp4", "clip09_friday.mp4"]
    second = ["clip13_makeup.avi", "clip17_earth.webm", "clip15_grampa.flv"]
    watcher = start(["-v", "watch"], tmp_path / "watcher.log", COPYCAT_WATCH__POLL_INTERVAL_S="1")
    try:
        for name in first:
            store.put_file(cfg.s3.uploads_bucket, f"在线/{name}", clips_dir / name)
        wait_until(lambda: len(rows()) == len(first), timeout=60, what="first uploads registered")
    finally:
        stop(watcher)
    # Uploaded while no watcher runs: the next watcher's start-up sweep must find them.
    for name in second:
        store.put_file(cfg.s3.uploads_bucket, name, clips_dir / name)
    store.put_file(cfg.s3.uploads_bucket, "broken.mp4", broken_dir / "broken01_decord_corrupted.mp4")
    watcher = start(["-v", "watch"], tmp_path / "watcher.log", COPYCAT_WATCH__POLL_INTERVAL_S="1")
    try:
        def settled() -> bool:
            current = rows()
            return len(current) == 7 and all(v.status in {"indexed", "failed"} for v in current.values())

        wait_until(settled, timeout=240, what="every upload indexed or failed")
        final = rows()
        assert {n for n, v in final.items() if v.status == "indexed"} == set(first + second)
        assert final["broken.mp4"].status == "failed" and final["broken.mp4"].failure_code == "corrupt"
        assert all(v.attempts == 1 for v in final.values()), {n: v.attempts for n, v in final.items()}
        for video in final.values():
            if video.status == "indexed":
                assert resources.current().frame_index.count(video.id) == video.vector_count
        assert final["clip01_chaplin.mp4"].key == "在线/clip01_chaplin.mp4"

        # A query dropped in the queries bucket becomes a query job, with its result in PostgreSQL.
        store.put_file(cfg.s3.queries_bucket, "inbox/suspect.mp4", clips_dir / "clip05_bikes.mp4")

        def query_done() -> bool:
            with session_scope(resources.current().engine) as session:
                job = jobs.find_job_by_object(session, cfg.s3.queries_bucket, "inbox/suspect.mp4")
                return job is not None and job.status in {"done", "failed"}

        wait_until(query_done, timeout=120, what="dropped query answered")
        with session_scope(resources.current().engine) as session:
            result = jobs.result_json(jobs.find_job_by_object(session, cfg.s3.queries_bucket, "inbox/suspect.mp4"))
        assert result["status"] == "done", result
        assert [m["name"] for m in result["matches"]] == ["clip05_bikes.mp4"]

        # Deleting an upload removes its vectors, matrix and row.
        gone = final["clip09_friday.mp4"]
        store.remove(cfg.s3.uploads_bucket, "在线/clip09_friday.mp4")
        wait_until(lambda: "clip09_friday.mp4" not in rows(), timeout=60, what="deleted upload forgotten")
        assert resources.current().frame_index.count(gone.id) == 0
    finally:
        stop(watcher)


@SERVER
def test_flower_shows_workers_and_tasks(celery_worker, clips_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from cli.client import ingest_file

    port = free_port()
    flower = start(["flower"], tmp_path / "flower.log", COPYCAT_FLOWER__PORT=str(port),
                   COPYCAT_FLOWER__BASIC_AUTH="ops:s3cret")
    try:
        wait_until(lambda: port_open("127.0.0.1", port), timeout=60, what="flower listening")
        video_id = ingest_file(resources.current(), clips_dir / "clip08_flower.webm", "clip08_flower.webm")
        auth = {"Authorization": "Basic " + base64.b64encode(b"ops:s3cret").decode()}

        def get(path: str) -> dict:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=auth)
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        wait_until(lambda: any("test-" in name for name in get("/api/workers")), timeout=60, what="worker in flower")

        def ingest_task_listed() -> bool:
            tasks = get("/api/tasks").values()
            return any(t["name"] == "copycat.ingest.embed" and video_id in (t.get("args") or "")
                       and "clip08_flower.webm" in t["args"] for t in tasks)

        wait_until(ingest_task_listed, timeout=90, what="ingest task with the video's name in flower")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/workers", timeout=10)
        assert refused.value.code == 401
    finally:
        stop(flower)
        time.sleep(0.5)
