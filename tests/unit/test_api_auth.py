"""API keys: stored only as a hash, roles ordered read < write < admin, and every refusal in the error shape.

Runs the real app in process (embedded mode: SQLite under a fresh COPYCAT_HOME, tasks in-process).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import text

from db import keys
from db.key_models import Role
from service import resources
from service.resources import session


@pytest.fixture
def client(copycat_env: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from api import create_api

    monkeypatch.setenv("COPYCAT_API__MAX_UPLOAD_MIB", "1")
    resources.reset()
    with TestClient(create_api(resources.current().settings)) as test_client:
        yield test_client


def new_key(role: Role) -> str:
    with session() as s:
        return keys.create_key(s, role, f"test {role}")[1]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_roles_are_ordered() -> None:
    allowed = {(have, need) for have in Role for need in Role if have.allows(need)}
    assert allowed == {(Role.READ, Role.READ), (Role.WRITE, Role.READ), (Role.WRITE, Role.WRITE),
                       (Role.ADMIN, Role.READ), (Role.ADMIN, Role.WRITE), (Role.ADMIN, Role.ADMIN)}


def test_only_the_hash_is_stored(copycat_env: Path) -> None:
    with session() as s:
        row, key = keys.create_key(s, Role.WRITE, "ci")
        key_id = row.id
    assert key.startswith(keys.KEY_PREFIX) and len(key) > 40
    with resources.current().engine.connect() as conn:
        stored = [str(v) for v in conn.execute(text("SELECT * FROM api_keys")).one()]
    assert key not in stored and keys.hash_key(key) in stored
    assert row.prefix == key[: keys.SHOWN_CHARS]
    with session() as s:
        assert keys.find_active(s, key).id == key_id
        assert keys.find_active(s, key + "x") is None
        keys.revoke_key(s, key_id)
    with session() as s:
        assert keys.find_active(s, key) is None


def test_a_prefix_shared_by_two_keys_is_refused(copycat_env: Path) -> None:
    with session() as s:
        first, _ = keys.create_key(s, Role.READ)
        second, _ = keys.create_key(s, Role.READ)
        second.prefix = first.prefix
    with session() as s, pytest.raises(LookupError, match="matches 2 keys"):
        keys.revoke_key(s, first.prefix)


def test_keys_cli_prints_the_key_last_and_revokes(copycat_env: Path) -> None:
    from cli.main import cli

    runner = CliRunner()
    created = runner.invoke(cli, ["keys", "create", "--role", "read", "--name", "grafana"])
    assert created.exit_code == 0, created.output
    key = created.output.strip().splitlines()[-1]
    with session() as s:
        assert keys.find_active(s, key).role == "read"
    listed = runner.invoke(cli, ["keys", "list"]).output
    assert "grafana" in listed and key not in listed and key[: keys.SHOWN_CHARS] in listed
    revoked = runner.invoke(cli, ["keys", "revoke", key[: keys.SHOWN_CHARS] + "..."])
    assert revoked.exit_code == 0, revoked.output
    with session() as s:
        assert keys.find_active(s, key) is None
    assert runner.invoke(cli, ["keys", "revoke", "cc_nothing"]).exit_code == 1


def test_who_may_do_what(client: TestClient) -> None:
    read, write, admin = new_key(Role.READ), new_key(Role.WRITE), new_key(Role.ADMIN)
    cases = [
        ("GET", "/v1/videos", None, 401), ("GET", "/v1/videos", "cc_not-a-key", 401),
        ("GET", "/v1/videos", read, 200), ("POST", "/v1/videos", read, 403), ("POST", "/v1/queries", read, 403),
        ("GET", "/v1/keys", write, 403), ("GET", "/v1/keys", admin, 200), ("GET", "/metrics", read, 200),
        ("GET", "/metrics", None, 401), ("GET", "/healthz", None, 200),
    ]
    for method, path, key, expected in cases:
        response = client.request(method, path, headers=bearer(key) if key else {},
                                  json={"key": "nothing-here"} if method == "POST" else None)
        assert response.status_code == expected, (method, path, key and key[:6], response.text)
        if expected >= 400:
            error = response.json()["error"]
            assert set(error) == {"code", "message"} and error["message"]
        if expected == 401:
            assert response.headers["www-authenticate"] == "Bearer"
    # A write key may POST: the request reaches the route, which names the missing object's field.
    refused = client.post("/v1/videos", headers=bearer(write), json={"key": "nothing-here"})
    assert refused.status_code == 422 and refused.json()["error"]["message"].startswith("key:")


def test_revoked_keys_stop_at_once(client: TestClient) -> None:
    admin = new_key(Role.ADMIN)
    made = client.post("/v1/keys", headers=bearer(admin), json={"role": "read", "name": "dash"})
    assert made.status_code == 201 and made.json()["role"] == "read"
    key = made.json()["key"]
    assert client.get("/v1/videos", headers=bearer(key)).status_code == 200
    assert client.delete(f"/v1/keys/{made.json()['id']}", headers=bearer(admin)).json()["revoked_at"]
    assert client.get("/v1/videos", headers=bearer(key)).status_code == 401
    assert key not in client.get("/v1/keys", headers=bearer(admin)).text


def test_errors_name_the_field(client: TestClient) -> None:
    write = bearer(new_key(Role.WRITE))
    checks = [
        (client.get("/v1/videos?status=bogus", headers=write), 422, "query.status"),
        (client.get("/v1/videos/not-a-uuid", headers=write), 422, "path.video_id"),
        (client.post("/v1/queries", headers=write, json={"key": "q.mp4", "top_k": 0}), 422, "body.top_k"),
        (client.post("/v1/queries", headers=write, json={"key": "q.mp4", "bucket": "a..b"}), 422, "body.bucket"),
        (client.post("/v1/queries", headers=write, files={"file": ("q.mp4", b"x")}, data={"crops": "9"}), 422,
         "body.crops"),
        (client.post("/v1/videos", headers=write, data={"other": "x"}, files={"not_file": ("a", b"x")}), 422,
         "body.file"),
        (client.post("/v1/videos", headers=write, json={"bucket": "elsewhere", "key": "a.mp4"}), 422, "bucket:"),
        (client.post("/v1/videos", headers={**write, "Content-Type": "text/plain"}, content=b"raw"), 415,
         "multipart"),
        (client.get("/v1/queries/6d1f7f0e-0000-4000-8000-000000000000", headers=write), 404, "no query job"),
        (client.get("/v1/nothing", headers=write), 404, "Not Found"),
    ]
    for response, status, named in checks:
        assert response.status_code == status, response.text
        assert named in response.json()["error"]["message"], response.json()


def test_bodies_over_the_limit_get_413(client: TestClient) -> None:
    write = bearer(new_key(Role.WRITE))
    big = b"\0" * (2 * 2**20)
    declared = client.post("/v1/videos", headers=write, files={"file": ("big.mp4", big)})
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it is read
        yield b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.mp4\"\r\n\r\n"
        for _ in range(4):
            yield b"\0" * 2**19 * 2

    streamed = client.post("/v1/videos", headers={**write, "Content-Type": "multipart/form-data; boundary=x"},
                           content=chunks())
    assert streamed.status_code == 413 and "COPYCAT_API__MAX_UPLOAD_MIB" in streamed.json()["error"]["message"]
    with session() as s:
        assert s.execute(text("SELECT count(*) FROM videos")).scalar() == 0


@pytest.mark.parametrize(("given", "kept"), [
    ("clip.mp4", "clip.mp4"), ("C:\\Users\\me\\clip.mp4", "clip.mp4"), ("../../etc/passwd", "passwd"),
    ("", "upload"), ("..", "upload"), ("a\x00b\nc.mp4", "abc.mp4"), ("x" * 300 + ".mp4", "x" * 196 + ".mp4"),
])
def test_upload_names_are_safe(given: str, kept: str) -> None:
    from api.bodies import upload_name

    assert upload_name(given) == kept
