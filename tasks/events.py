"""Webhook events: ``emit`` records an event and sends it to every target; each attempt is recorded.

Events: ``video.indexed``, ``video.failed``, ``query.done`` (a job ended, done or failed; its ``data`` is
the job's ``copycat query --json``) and ``copy.detected``. Targets are ``COPYCAT_WEBHOOKS__ENDPOINTS`` plus,
for ``query.done``, the job's own ``callback_url``. Delivery is the task ``copycat.ops.webhook`` (queue
``ops``): a non-2xx answer, a timeout or a refused connection is tried again after ``backoff_s`` (2 s,
4 s, 8 s, ... capped), up to ``COPYCAT_WEBHOOKS__MAX_ATTEMPTS`` attempts, then given up. In embedded mode
the calling process delivers, sleeping between attempts. Delivery is at least once: receivers deduplicate
by the event id.

Emitting never fails the work that caused the event: the transition is already committed, so a database
or broker fault here is logged and the event is lost (there is no outbox sweep yet).

This module must not import ``tasks.base`` (whose task bases emit through it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal, get_args

from celery import Task, shared_task

from db import webhooks
from db.session import session_scope
from tasks import resources
from workers import webhooks as wire

log = logging.getLogger(__name__)

Event = Literal["video.indexed", "video.failed", "query.done", "copy.detected"]
EVENTS: tuple[Event, ...] = get_args(Event)
DELIVER = "copycat.ops.webhook"


def emit(event: str, data: dict[str, Any], *, callback_url: str | None = None) -> str | None:
    """Record ``event`` and send it to its targets; returns its id (None: no target, or not recorded)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    res = resources.current()
    cfg = res.settings.webhooks
    targets = list(dict.fromkeys([*cfg.endpoints, *([callback_url] if callback_url else [])]))
    if not targets:
        return None
    try:
        with session_scope(res.engine) as s:
            event_id = webhooks.create_event(s, event, data).id
        for url in targets:
            if res.settings.embedded:
                deliver_in_process(event_id, url)
            else:
                res.app.tasks[DELIVER].apply_async(args=[event_id, url], argsrepr=f"({event_id!r}, {url!r}, {event!r})")
    except Exception as exc:  # noqa: BLE001 - the cause's transition is committed; an event must not undo it
        log.error("webhook event %s not sent to %s: %s: %s", event, ", ".join(targets), type(exc).__name__, exc)
        return None
    return event_id


@dataclass(frozen=True)
class Outcome:
    """An attempt's end: ``retry_in`` seconds until the next one, or None when the delivery is over."""

    delivered: bool
    retry_in: float | None


def attempt(event_id: str, url: str, number: int) -> Outcome:
    """Send the stored event to ``url`` once (attempt ``number``, from 1), record the attempt, say what next."""
    res = resources.current()
    cfg = res.settings.webhooks
    with session_scope(res.engine) as s:
        event = webhooks.get_event(s, event_id)
        if event is None:
            log.info("webhook event %s is gone; delivery to %s dropped", event_id, url)
            return Outcome(False, None)
        body = wire.event_body(event.id, event.event, event.created_at, event.data)
        name = event.event
    result = wire.post(url, body, wire.signed_headers(event_id, name, body, cfg.secret), cfg.timeout_s)
    last = number >= cfg.max_attempts
    outcome = "delivered" if result.delivered else ("given_up" if last else "retrying")
    with session_scope(res.engine) as s:
        event = webhooks.get_event(s, event_id)
        if event is not None:
            webhooks.record_attempt(s, event, url, number, status_code=result.status_code, error=result.error,
                                    duration_s=result.duration_s, outcome=outcome)
    if result.delivered:
        log.info("webhook %s %s delivered to %s (attempt %d, HTTP %s)", name, event_id, url, number,
                 result.status_code)
        return Outcome(True, None)
    if last:
        log.error("webhook %s %s to %s given up after %d attempts: %s", name, event_id, url, number, result.error)
        return Outcome(False, None)
    delay = wire.backoff_s(number, cfg.backoff_base_s, cfg.backoff_max_s)
    log.warning("webhook %s %s to %s failed (attempt %d of %d: %s); next attempt in %.0f s", name, event_id, url,
                number, cfg.max_attempts, result.error, delay)
    return Outcome(False, delay)


def deliver_in_process(event_id: str, url: str) -> bool:
    """Embedded mode: every attempt in this process, sleeping the backoff in between."""
    number = 1
    while True:
        outcome = attempt(event_id, url, number)
        if outcome.retry_in is None:
            return outcome.delivered
        time.sleep(outcome.retry_in)
        number += 1


@shared_task(name=DELIVER, bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self: Task, event_id: str, url: str) -> dict[str, Any]:
    """One attempt; a failed one is retried by Celery after the backoff (the countdown keeps the worker free)."""
    number = self.request.retries + 1
    outcome = attempt(event_id, url, number)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return {"event_id": event_id, "url": url, "attempts": number, "delivered": outcome.delivered}
