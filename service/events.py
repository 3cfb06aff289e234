"""Webhook events: ``emit`` records an event and sends it to every target; each attempt is recorded.

Events: ``video.indexed``, ``video.failed``, ``query.done`` (a job ended, done or failed; its ``data`` is
the job's ``copycat query --json``) and ``copy.detected``. Targets are ``COPYCAT_WEBHOOKS__ENDPOINTS`` plus,
for ``query.done``, the job's own ``callback_url``. Delivery is the task ``copycat.ops.webhook`` (queue
``ops``): a non-2xx answer, a timeout or a refused connection is tried again after ``backoff_s`` (2 s,
4 s, 8 s, ... capped), up to ``COPYCAT_WEBHOOKS__MAX_ATTEMPTS`` attempts, then given up. In embedded mode
the process delivers on a background thread of its own (``InProcessDeliveries``), so a receiver that is
down holds up neither the work that emitted the event nor the process's stop. Delivery is at least once:
receivers deduplicate by the event id.

Emitting never fails the work that caused the event: the transition is already committed, so a database
or broker fault here is logged and the event is lost (there is no outbox sweep yet).

This module must not import ``tasks.base`` (whose task bases emit through it).
"""

from __future__ import annotations

import atexit
import heapq
import itertools
import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, get_args

from db import webhooks
from db.session import session_scope
from service.resources import Resources
from workers import webhooks as wire

log = logging.getLogger(__name__)

Event = Literal["video.indexed", "video.failed", "query.done", "copy.detected"]
EVENTS: tuple[Event, ...] = get_args(Event)
DELIVER = "copycat.ops.webhook"


def emit(res: Resources, event: str, data: dict[str, Any], *, callback_url: str | None = None) -> str | None:
    """Record ``event`` with the process's resources ``res`` and send it to its targets; returns its id (None:
    no target, or not recorded)."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    cfg = res.settings.webhooks
    targets = list(dict.fromkeys([*cfg.endpoints, *([callback_url] if callback_url else [])]))
    if not targets:
        return None
    try:
        with session_scope(res.engine) as s:
            event_id = webhooks.create_event(s, event, data).id
        for url in targets:
            if res.settings.embedded:
                in_process_deliveries(res).submit(event_id, url)
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


def attempt(res: Resources, event_id: str, url: str, number: int) -> Outcome:
    """Send the stored event to ``url`` once (attempt ``number``, from 1), record the attempt, say what next."""
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


class InProcessDeliveries:
    """Embedded mode's deliveries: every attempt on one background thread, each retry planned for its time.

    ``close()`` stops after the attempt in flight (the API shutting down; tests) and logs what is left;
    ``close(drain=True)`` first makes every planned attempt, waiting out the backoff as a worker would: a
    command's exit (registered with ``atexit``), so ``copycat ingest`` delivers what it announced.
    """

    def __init__(self, res: Resources) -> None:
        self._res = res
        self._planned: list[tuple[float, int, str, str, int]] = []  # heap of (due, order, event id, url, number)
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._draining = self._stopping = self._said_waiting = False
        self._thread = threading.Thread(target=self._run, name="copycat-webhooks", daemon=True)
        self._thread.start()
        atexit.register(self.close, drain=True)

    def submit(self, event_id: str, url: str) -> None:
        """Plan the first attempt of sending ``event_id`` to ``url``, now."""
        with self._wake:
            if not self._thread.is_alive():
                log.error("webhook event %s not sent to %s: this process's deliveries have stopped", event_id, url)
                return
            self._plan(event_id, url, 1, 0.0)

    def _plan(self, event_id: str, url: str, number: int, delay_s: float) -> None:
        """Queue attempt ``number`` ``delay_s`` from now (the caller holds ``_wake``)."""
        heapq.heappush(self._planned, (time.monotonic() + delay_s, next(self._order), event_id, url, number))
        self._wake.notify()

    def close(self, drain: bool = False) -> None:
        with self._wake:
            self._draining = True
            if self._planned and drain and not self._stopping:
                self._say_waiting()
            self._stopping = self._stopping or not drain
            self._wake.notify()
        self._thread.join(None if drain else self._res.settings.webhooks.timeout_s + 5)
        with self._wake:
            left, self._planned = self._planned, []
            self._stopping = True
        for _, _, event_id, url, number in sorted(left):
            log.warning("webhook event %s not delivered to %s: the process stopped before attempt %d (earlier "
                        "attempts are recorded)", event_id, url, number)
        atexit.unregister(self.close)

    def _run(self) -> None:
        while (planned := self._next()) is not None:
            _, _, event_id, url, number = planned
            try:
                outcome = attempt(self._res, event_id, url, number)
            except Exception:  # noqa: BLE001 - one event's fault (its database gone) must not end the thread
                log.exception("webhook event %s to %s: attempt %d failed; not retried", event_id, url, number)
                continue
            if outcome.retry_in is not None:
                with self._wake:
                    self._plan(event_id, url, number + 1, outcome.retry_in)
                    if self._draining and not self._stopping:
                        self._say_waiting()

    def _say_waiting(self) -> None:
        """Once, when the exit has to wait for retries (the caller holds ``_wake``)."""
        if not self._said_waiting:
            self._said_waiting = True
            wait = max(due for due, *_ in self._planned) - time.monotonic()
            log.warning("making %d planned webhook attempts before exit (the last in %.0f s, more if they fail; "
                        "Ctrl-C gives them up)", len(self._planned), max(0.0, wait))

    def _next(self) -> tuple[float, int, str, str, int] | None:
        """The next attempt once it is due; None when stopping, or when draining and nothing is left."""
        with self._wake:
            while not self._stopping:
                if not self._planned:
                    if self._draining:
                        return None
                    self._wake.wait()
                    continue
                wait = self._planned[0][0] - time.monotonic()
                if wait <= 0:
                    return heapq.heappop(self._planned)
                self._wake.wait(wait)
            return None


_deliveries: dict[int, InProcessDeliveries] = {}  # by id() of the resources they use
_deliveries_lock = threading.Lock()


def in_process_deliveries(res: Resources) -> InProcessDeliveries:
    """The deliveries thread of ``res`` (started on first use, stopped when ``res`` closes)."""
    with _deliveries_lock:
        deliveries = _deliveries.get(id(res))
        if deliveries is None:
            deliveries = _deliveries[id(res)] = InProcessDeliveries(res)
            res.on_close(partial(stop_in_process_deliveries, res))
    return deliveries


def stop_in_process_deliveries(res: Resources) -> None:
    """Stop the deliveries thread of ``res`` after its attempt in flight, if it has one (logs what is left)."""
    with _deliveries_lock:
        deliveries = _deliveries.pop(id(res), None)
    if deliveries is not None:
        deliveries.close()
