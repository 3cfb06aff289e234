"""The HTTP API as a platform would use it: `copycat api` and Celery workers as processes on the real
services (PostgreSQL, Redis, SeaweedFS, the Milvus Lite server), keys made with `copycat keys`, and a
schema-driven fuzz of every route (schemathesis against /openapi.json) that must never get a 5xx."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from service import resources
from service.operations import register_upload
from stack.services import free_port
from tests.conftest import wait_until

pytestmark = [pytest.mark.services, pytest.mark.slow]
SERVER = pytest.mark.parametrize("milvus_uri", ["server"], indirect=True)


def copycat(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "cli.main", *args], env=os.environ, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def new_key(role: str) -> str:
    """`copycat keys create` prints the key as its last line."""
    return copycat("keys", "create", "--role", role, "--name", f"e2e {role}").strip().splitlines()[-1]


@contextmanager
def api_process(tmp_path: Path) -> Iterator[str]:
    """`copycat api` on a free loopback port with this test's settings; yields its base URL."""
    port = free_port()
    log_path = tmp_path / "api.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "cli.main", "api"],
                                   env={**os.environ, "COPYCAT_API__PORT": str(port)}, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log_path.read_text()[-3000:]
        try:
            return httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(up, timeout=90, what="the API answering /healthz")
        yield base_url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def api(celery_worker, tmp_path: Path) -> Iterator[httpx.Client]:  # noqa: ANN001
    """The API in queue mode, with a Celery worker process behind it."""
    with api_process(tmp_path) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        yield client


@pytest.fixture
def api_without_workers(services_env: dict[str, str], redis_url: str, monkeypatch: pytest.MonkeyPatch,
                        tmp_path: Path) -> Iterator[str]:
    """The API in queue mode with no worker: what it queues stays in Redis, flushed afterwards."""
    import redis

    monkeypatch.setenv("COPYCAT_BROKER__URL", redis_url)
    try:
        with api_process(tmp_path) as base_url:
            yield base_url
    finally:
        redis.Redis.from_url(redis_url).flushdb()


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_file(api: httpx.Client, route: str, key: str, file: Path | tuple[str, bytes], **fields: str) -> httpx.Response:
    """A multipart POST; a file on disk is streamed by httpx, not read whole."""
    if isinstance(file, tuple):
        return api.post(route, headers=auth(key), files={"file": (file[0], file[1], "video/mp4")}, data=fields)
    with file.open("rb") as handle:
        return api.post(route, headers=auth(key), files={"file": (file.name, handle, "video/mp4")}, data=fields)


def settled(api: httpx.Client, key: str, route: str, done: set[str]) -> dict:
    holder: dict = {}

    def check() -> bool:
        holder.update(api.get(route, headers=auth(key)).json())
        return holder.get("status") in done

    wait_until(check, timeout=240, what=f"{route} in {sorted(done)}")
    return holder


@SERVER
def test_upload_index_query_result_and_delete_through_the_api(api: httpx.Client, clips_dir: Path) -> None:
    write, read = new_key("write"), new_key("read")
    cfg = resources.current().settings

    ids = {}
    for name in ("clip05_bikes.mp4", "clip09_friday.mp4"):
        accepted = post_file(api, "/v1/videos", write, clips_dir / name)
        assert accepted.status_code == 202, accepted.text
        assert set(accepted.json()) == {"video_id", "status"}
        ids[name] = accepted.json()["video_id"]
    # Not a video: accepted, then failed with the reason the bucket path gives for the same bytes.
    junk = b"this is a text file, not a video\n" * 100
    refused = post_file(api, "/v1/videos", write, ("notes.mp4", junk))
    assert refused.status_code == 202
    resources.current().objects.put_bytes(cfg.s3.uploads_bucket, "dropped/notes.mp4", junk)
    info = resources.current().objects.stat(cfg.s3.uploads_bucket, "dropped/notes.mp4")
    # what the watcher does:
    register_upload(resources.current(), cfg.s3.uploads_bucket, "dropped/notes.mp4", info.size, info.etag)
    from db.videos import video_id_for

    dropped = video_id_for(cfg.s3.uploads_bucket, "dropped/notes.mp4")

    for video_id in ids.values():
        assert settled(api, read, f"/v1/videos/{video_id}", {"indexed", "failed"})["status"] == "indexed"
    via_api = settled(api, read, f"/v1/videos/{refused.json()['video_id']}", {"indexed", "failed"})
    via_bucket = settled(api, read, f"/v1/videos/{dropped}", {"indexed", "failed"})
    assert via_api["status"] == via_bucket["status"] == "failed"
    assert via_api["error"] == via_bucket["error"] and via_api["error"].startswith("not_a_video: notes.mp4")
    assert "/" not in via_api["error"].split(":", 2)[1]  # the upload's name, never a server path

    # The list is paged and filtered; GET of one video is `copycat videos --json`'s row.
    page = api.get("/v1/videos", params={"status": "indexed", "limit": 1}, headers=auth(read)).json()
    assert (page["total"], len(page["videos"]), page["limit"]) == (2, 1, 1)
    rows = json.loads(copycat("videos", "--json"))
    assert api.get(f"/v1/videos/{ids['clip05_bikes.mp4']}", headers=auth(read)).json() in rows

    # A query upload with form parameters, and a JSON query naming an object already in a bucket.
    asked = post_file(api, "/v1/queries", write, clips_dir / "clip05_bikes.mp4", crops="1",
                      callback_url="http://127.0.0.1:9/hook")
    assert asked.status_code == 202 and set(asked.json()) == {"job_id"}
    key_of_clip09 = api.get(f"/v1/videos/{ids['clip09_friday.mp4']}", headers=auth(read)).json()["key"]
    by_object = api.post("/v1/queries", headers=auth(write), json={"bucket": cfg.s3.uploads_bucket,
                                                                   "key": key_of_clip09, "top_k": 3})
    assert by_object.status_code == 202, by_object.text
    expected_names = {asked.json()["job_id"]: "clip05_bikes.mp4", by_object.json()["job_id"]: "clip09_friday.mp4"}
    for job, expected in expected_names.items():
        result = settled(api, read, f"/v1/queries/{job}", {"done", "failed"})
        assert result["status"] == "done", result
        assert [m["name"] for m in result["matches"]] == [expected]
        assert result == json.loads(copycat("result", job, "--json"))  # exactly the CLI's JSON

    # Readiness names every dependency; metrics count what happened.
    ready = api.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ok"
    assert {name: c["status"] for name, c in ready.json()["checks"].items()} == dict.fromkeys(
        ("database", "broker", "s3", "milvus"), "ok")
    metrics = api.get("/metrics", headers=auth(read)).text
    assert 'copycat_videos{state="indexed"} 2.0' in metrics and 'copycat_videos{state="failed"} 2.0' in metrics
    assert 'copycat_query_jobs{state="done"} 2.0' in metrics
    assert 'copycat_stage_seconds_count{kind="ingest",stage="decode_embed"} 2.0' in metrics
    assert 'copycat_stage_seconds_count{kind="query",stage="search"} 2.0' in metrics
    assert 'copycat_queue_messages{queue="embed"}' in metrics
    copycat("fsck")  # its counts are what /metrics exports from then on
    metrics = api.get("/metrics", headers=auth(read)).text
    assert 'copycat_fsck_inconsistencies{kind="orphan_vectors"} 0.0' in metrics
    assert "copycat_fsck_last_run_timestamp_seconds" in metrics

    # The report and the event listings.
    report = api.get(f"/v1/queries/{asked.json()['job_id']}/report", headers=auth(read))
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "clip05_bikes.mp4" in report.text and "<img" in report.text
    assert api.get(f"/v1/queries/{uuid.uuid4()}/report", headers=auth(read)).status_code == 404
    listed = api.get("/v1/copies", params={"video_id": ids["clip05_bikes.mp4"]}, headers=auth(read))
    assert listed.status_code == 200 and set(listed.json()) == {"copies", "limit", "offset"}
    attempts = api.get("/v1/deliveries", params={"event": "query.done"}, headers=auth(read)).json()["deliveries"]
    assert {(a["url"], a["event"]) for a in attempts} == {("http://127.0.0.1:9/hook", "query.done")}

    # DELETE removes the object, then the vectors, the matrix and the row.
    gone = ids["clip09_friday.mp4"]
    deleted = api.delete(f"/v1/videos/{gone}", headers=auth(write))
    assert deleted.status_code == 202 and deleted.json() == {"video_id": gone, "status": "deleting"}
    wait_until(lambda: api.get(f"/v1/videos/{gone}", headers=auth(read)).status_code == 404, timeout=60,
               what="deleted video gone")
    assert resources.current().frame_index.count(gone) == 0
    assert resources.current().objects.stat(cfg.s3.uploads_bucket, key_of_clip09) is None


@SERVER
def test_keys_and_limits_over_http(api: httpx.Client) -> None:
    read, write, admin = new_key("read"), new_key("write"), new_key("admin")
    assert api.get("/v1/videos").status_code == 401
    assert api.get("/v1/videos", headers={"Authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    assert api.get("/v1/videos", headers=auth("cc_" + "x" * 43)).status_code == 401
    assert api.post("/v1/queries", headers=auth(read), json={"key": "q.mp4"}).status_code == 403
    assert api.get("/v1/keys", headers=auth(write)).status_code == 403
    listed = api.get("/v1/keys", headers=auth(admin))
    assert listed.status_code == 200 and {k["role"] for k in listed.json()} == {"read", "write", "admin"}
    assert all("key" not in k for k in listed.json())
    copycat("keys", "revoke", read[:11])
    revoked = api.get("/v1/videos", headers=auth(read))
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "unauthorized"

    # A body declared over COPYCAT_API__MAX_UPLOAD_MIB is refused before it is read.
    host, port = api.base_url.host, api.base_url.port
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.putrequest("POST", "/v1/videos")
    connection.putheader("Authorization", f"Bearer {write}")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str((resources.current().settings.api.max_upload_mib + 1) * 2**20))
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and json.loads(answer.read())["error"]["code"] == "too_large"
    connection.close()


@SERVER
def test_schema_fuzz_gets_no_server_error(api_without_workers: str, tmp_path: Path) -> None:
    """Every route, generated from /openapi.json (valid and invalid input, with an admin key): no 5xx, and
    documented bodies (errors included) match their schemas. Queue mode with no worker: nothing runs."""
    admin = new_key("admin")
    done = subprocess.run(
        [str(Path(sys.executable).parent / "schemathesis"), "run", f"{api_without_workers}/openapi.json",
         "-H", f"Authorization: Bearer {admin}", "--checks", "not_a_server_error,response_schema_conformance",
         "--max-examples", "15", "--max-time", "120", "--seed", "1", "--no-color", "--generation-database", "none",
         "--workers", "1"],
        capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    # Every generated case passed (the summary says "N generated, N passed"; a warning, such as the HTML report's
    # body being left unvalidated, does not count as an issue).
    summary = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    assert summary and summary.group(1) == summary.group(2) and int(summary.group(1)) > 100, done.stdout[-3000:]

