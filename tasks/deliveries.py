"""Webhook delivery (``copycat.ops.webhook``, queue ``ops``): one attempt per run, retried after the backoff."""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from service import resources
from service.events import DELIVER, attempt


@shared_task(name=DELIVER, bind=True, acks_late=True, max_retries=None)
def deliver_webhook(self: Task, event_id: str, url: str) -> dict[str, Any]:
    """One attempt; a failed one is retried by Celery after the backoff (the countdown keeps the worker free)."""
    number = self.request.retries + 1
    outcome = attempt(resources.current(), event_id, url, number)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return {"event_id": event_id, "url": url, "attempts": number, "delivered": outcome.delivered}
