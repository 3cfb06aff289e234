"""Webhook deliveries: the signed request and one attempt to send it (no database, no settings).

A delivery is a POST of ``event_body`` (JSON ``{"event", "id", "created", "data"}``) with the headers of
``signed_headers``: ``X-Copycat-Signature: sha256=<hex>`` is the HMAC-SHA256, keyed with the shared secret,
of ``<X-Copycat-Timestamp>.<body>`` (the timestamp in Unix seconds, a dot, the raw body bytes). A receiver
recomputes it over the bytes it got and refuses old timestamps (replays). Redirects are not followed: a
3xx counts as a failed attempt, so a delivery never ends up somewhere the operator did not configure.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SIGNATURE_HEADER = "X-Copycat-Signature"
TIMESTAMP_HEADER = "X-Copycat-Timestamp"
EVENT_HEADER = "X-Copycat-Event"
ID_HEADER = "X-Copycat-Event-Id"
USER_AGENT = "copycat-webhooks/1"
ERROR_MAX = 500


def event_body(event_id: str, event: str, created: datetime, data: dict[str, Any]) -> bytes:
    """The JSON body of an event: the same bytes for every attempt (the signature covers them)."""
    moment = created if created.tzinfo else created.replace(tzinfo=UTC)
    payload = {"event": event, "id": event_id, "created": moment.astimezone(UTC).isoformat().replace("+00:00", "Z"),
               "data": data}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with ``secret``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def signed_headers(event_id: str, event: str, body: bytes, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """The request headers of one attempt (signed when there is a secret; each attempt signs anew)."""
    moment = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, EVENT_HEADER: event,
               ID_HEADER: event_id, TIMESTAMP_HEADER: str(moment)}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, moment, body)
    return headers


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay after failed attempt number ``attempt`` (1-based): base, 2 x base, 4 x base, ... capped at max."""
    return float(min(max_s, base_s * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class AttemptResult:
    """What one POST got: a 2xx is delivered; anything else (status, timeout, refused) is retried."""

    delivered: bool
    status_code: int | None
    error: str | None
    duration_s: float


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> AttemptResult:
    """POST ``body`` to ``url`` once; never raises for network faults or error statuses."""
    started = time.perf_counter()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            status = int(response.status)
            response.read(65536)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
        detail = exc.read(ERROR_MAX).decode("utf-8", "replace").strip()
        exc.close()
        message = f"HTTP {status}" + (f": {detail}" if detail else "")
        return AttemptResult(False, status, message[:ERROR_MAX], time.perf_counter() - started)
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        kind = "timed out" if isinstance(reason, TimeoutError | socket.timeout) else "unreachable"
        message = f"{kind} after {timeout_s:g} s" if kind == "timed out" else f"{kind}: {reason}"
        return AttemptResult(False, None, message[:ERROR_MAX], time.perf_counter() - started)
    delivered = 200 <= status < 300
    return AttemptResult(delivered, status, None if delivered else f"HTTP {status}", time.perf_counter() - started)
