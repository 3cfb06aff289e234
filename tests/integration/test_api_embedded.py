"""The HTTP API without a broker (embedded mode): requests answer at once while the tasks run on the API's
background thread; and /readyz names what is down. SQLite, Milvus Lite and a local object folder, all real."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from db import jobs, keys
from db.key_models import Role
from service import resources
from service.resources import session
from stack.services import free_port
from tests.conftest import use_fresh_resources, wait_until


@pytest.fixture
def embedded_api(copycat_env: Path) -> Iterator[tuple[TestClient, dict[str, str]]]:
    from api import create_api

    use_fresh_resources()
    with session() as s:
        key = keys.create_key(s, Role.WRITE)[1]
    with TestClient(create_api(resources.current().settings)) as client:
        yield client, {"Authorization": f"Bearer {key}"}


def test_embedded_upload_index_and_query(embedded_api: tuple[TestClient, dict[str, str]], clips_dir: Path) -> None:
    client, auth = embedded_api
    with (clips_dir / "clip05_bikes.mp4").open("rb") as handle:
        started = time.monotonic()
        accepted = client.post("/v1/videos", headers=auth, files={"file": ("clip05_bikes.mp4", handle)})
    # The answer carries the row's state when it was read: the background thread may have started on it already.
    assert accepted.status_code == 202 and accepted.json()["status"] in {"pending", "decoding", "embedding"}
    assert time.monotonic() - started < 5, "the request waited for the ingest"
    route = f"/v1/videos/{accepted.json()['video_id']}"
    wait_until(lambda: client.get(route, headers=auth).json()["status"] in {"indexed", "failed"}, timeout=120,
               what="video indexed in the background")
    assert client.get(route, headers=auth).json()["status"] == "indexed"

    with (clips_dir / "clip05_bikes.mp4").open("rb") as handle:
        asked = client.post("/v1/queries", headers=auth, files={"file": ("suspect.mp4", handle)},
                            data={"crops": "1", "callback_url": "https://platform.example/hooks/copycat"})
    job_route = f"/v1/queries/{asked.json()['job_id']}"
    wait_until(lambda: client.get(job_route, headers=auth).json()["status"] in {"done", "failed"}, timeout=120,
               what="query answered in the background")
    result = client.get(job_route, headers=auth).json()
    assert result["status"] == "done" and [m["name"] for m in result["matches"]] == ["clip05_bikes.mp4"]
    assert result["query"] == "suspect.mp4"
    with session() as s:
        job = jobs.get_job(s, asked.json()["job_id"])
        assert job.callback_url == "https://platform.example/hooks/copycat"
        assert job.params["crop_grid"] == 1


def test_readyz_names_what_is_down(copycat_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from api import create_api

    monkeypatch.setenv("COPYCAT_S3__ENDPOINT", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("COPYCAT_BROKER__URL", f"redis://127.0.0.1:{free_port()}/0")
    monkeypatch.setenv("COPYCAT_API__READY_TIMEOUT_S", "3")
    resources.reset()
    # Opened first: a cold Milvus Lite start (a server process) can itself take longer than the 3 s limit.
    resources.current().frame_index.client.get_server_version()
    with TestClient(create_api(resources.current().settings)) as client:
        started = time.monotonic()
        ready = client.get("/readyz")
        assert time.monotonic() - started < 10
    assert ready.status_code == 503 and ready.json()["status"] == "error"
    checks = ready.json()["checks"]
    assert {name: c["status"] for name, c in checks.items()} == {"database": "ok", "broker": "error", "s3": "error",
                                                                 "milvus": "ok"}
    assert checks["s3"]["error"] and checks["broker"]["error"], checks


def test_delivery_filter_takes_only_known_events(embedded_api: tuple[TestClient, dict[str, str]]) -> None:
    """A string that is no event (found by the schema fuzzer: a NUL byte made PostgreSQL raise) is a 422."""
    client, auth = embedded_api
    for junk in ("\x00x", "video.deleted", "q" * 40):
        refused = client.get("/v1/deliveries", headers=auth, params={"event": junk})
        assert refused.status_code == 422 and refused.json()["error"]["code"] == "invalid_request", junk
    listed = client.get("/v1/deliveries", headers=auth, params={"event": "query.done"})
    assert listed.status_code == 200 and listed.json()["deliveries"] == []
