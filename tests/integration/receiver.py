"""A webhook receiver on loopback for the tests: verifies each signature as docs/api.md says, records
each request, and answers with the status its path asks for (``/fail-once``: 500 to the first delivery
of each event, then 200; ``/always-fail``: 500; anything else: 200)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    event: str
    event_id: str
    body: dict[str, Any]
    verified: bool
    answered: int
    at: float


class Receiver:
    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.requests: list[Received] = []
        self._seen: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                timestamp = self.headers.get("X-Copycat-Timestamp", "")
                expected = "sha256=" + hmac.new(receiver.secret.encode(), timestamp.encode() + b"." + raw,
                                                hashlib.sha256).hexdigest()
                verified = hmac.compare_digest(expected, self.headers.get("X-Copycat-Signature", ""))
                fresh = abs(time.time() - int(timestamp or 0)) < 300
                body = json.loads(raw)
                with receiver._lock:
                    first = (self.path, body["id"]) not in receiver._seen
                    receiver._seen.add((self.path, body["id"]))
                    code = 500 if self.path == "/always-fail" or (self.path == "/fail-once" and first) else 200
                    receiver.requests.append(Received(self.path, body["event"], body["id"], body,
                                                      verified and fresh, code, time.monotonic()))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def got(self, event: str, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.event == event and (path is None or r.path == path)]
