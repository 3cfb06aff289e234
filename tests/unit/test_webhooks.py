"""Webhook wire format: the signature a receiver recomputes, the backoff schedule, one POST per attempt."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from service.settings import WebhooksSettings
from workers import webhooks as wire


def receiver_verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """What docs/api.md tells a receiver to do, written independently of the product's code."""
    expected = hmac.new(secret.encode(), headers["X-Copycat-Timestamp"].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest("sha256=" + expected, headers["X-Copycat-Signature"])


def test_a_receiver_verifies_the_signature_over_timestamp_and_body() -> None:
    body = wire.event_body("e1", "query.done", datetime(2026, 12, 1, 12, 0, tzinfo=UTC), {"job_id": "j"})
    headers = wire.signed_headers("e1", "query.done", body, "s3cret", timestamp=1764590400)
    assert receiver_verifies("s3cret", headers, body)
    assert not receiver_verifies("other", headers, body)
    assert not receiver_verifies("s3cret", headers, body.replace(b'"j"', b'"k"'))
    assert not receiver_verifies("s3cret", {**headers, "X-Copycat-Timestamp": "1764590401"}, body)
    assert headers["X-Copycat-Event"] == "query.done" and headers["X-Copycat-Event-Id"] == "e1"


def test_the_body_has_the_documented_fields_and_is_the_same_bytes_every_time() -> None:
    created = datetime(2026, 12, 1, 12, 0, 5, tzinfo=UTC)
    body = wire.event_body("e1", "video.indexed", created, {"video_id": "v", "name": "a.mp4"})
    assert body == wire.event_body("e1", "video.indexed", created, {"name": "a.mp4", "video_id": "v"})
    assert json.loads(body) == {"event": "video.indexed", "id": "e1", "created": "2026-12-01T12:00:05Z",
                                "data": {"video_id": "v", "name": "a.mp4"}}


def test_no_secret_means_no_signature_header() -> None:
    assert wire.SIGNATURE_HEADER not in wire.signed_headers("e", "video.failed", b"{}", "")


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    assert [wire.backoff_s(n, 2.0, 20.0) for n in range(1, 7)] == [2.0, 4.0, 8.0, 16.0, 20.0, 20.0]


def test_endpoints_are_a_comma_separated_list_of_http_urls() -> None:
    assert WebhooksSettings(endpoints="http://a:1/x, https://b/y").endpoints == ["http://a:1/x", "https://b/y"]
    with pytest.raises(ValueError, match="http"):
        WebhooksSettings(endpoints="file:///etc/passwd")


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        path = self.path.strip("/")
        if path == "slow":
            threading.Event().wait(2.0)
        code = {"ok": 204, "fail": 500, "move": 302, "slow": 200}[path]
        self.send_response(code)
        if code == 302:
            self.send_header("Location", f"http://127.0.0.1:{self.server.server_port}/ok")
        self.send_header("Content-Length", "4" if code == 500 else "0")
        self.end_headers()
        if code == 500:
            self.wfile.write(b"boom")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def test_post_reports_what_each_attempt_got(server: str) -> None:
    headers = {"Content-Type": "application/json"}
    ok = wire.post(f"{server}/ok", b"{}", headers, 5)
    assert (ok.delivered, ok.status_code, ok.error) == (True, 204, None)
    failed = wire.post(f"{server}/fail", b"{}", headers, 5)
    assert (failed.delivered, failed.status_code, failed.error) == (False, 500, "HTTP 500: boom")
    moved = wire.post(f"{server}/move", b"{}", headers, 5)
    assert (moved.delivered, moved.status_code) == (False, 302), "a redirect is never followed"
    slow = wire.post(f"{server}/slow", b"{}", headers, 0.3)
    assert (slow.delivered, slow.status_code) == (False, None) and "timed out" in slow.error
    assert 0.25 < slow.duration_s < 1.5


def test_post_to_a_closed_port_is_unreachable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = wire.post(f"http://127.0.0.1:{port}/", b"{}", {}, 2)
    assert not result.delivered and result.status_code is None and result.error.startswith("unreachable")
