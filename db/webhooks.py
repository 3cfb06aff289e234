"""Named queries on webhook events and their delivery attempts."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import WebhookDelivery, WebhookEvent


def create_event(session: Session, event: str, data: dict[str, Any]) -> WebhookEvent:
    row = WebhookEvent(id=str(uuid.uuid4()), event=event, data=data)
    session.add(row)
    session.flush()
    return row


def get_event(session: Session, event_id: str) -> WebhookEvent | None:
    return session.get(WebhookEvent, event_id)


def record_attempt(session: Session, event: WebhookEvent, url: str, attempt: int, *, status_code: int | None,
                   error: str | None, duration_s: float, outcome: str) -> WebhookDelivery:
    row = WebhookDelivery(event_id=event.id, event=event.event, url=url, attempt=attempt, status_code=status_code,
                          error=error, duration_s=round(duration_s, 4), outcome=outcome)
    session.add(row)
    return row


def list_deliveries(session: Session, *, event_id: str | None = None, event: str | None = None,
                    limit: int | None = 100, offset: int = 0) -> Sequence[WebhookDelivery]:
    """Delivery attempts, newest first (one event's, or one event type's)."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    if event_id:
        query = query.where(WebhookDelivery.event_id == event_id)
    if event:
        query = query.where(WebhookDelivery.event == event)
    return session.scalars(query.offset(offset).limit(limit)).all()


def delivery_json(row: WebhookDelivery) -> dict[str, Any]:
    return {"event_id": row.event_id, "event": row.event, "url": row.url, "attempt": row.attempt,
            "status_code": row.status_code, "error": row.error, "duration_s": row.duration_s,
            "outcome": row.outcome, "created_at": row.created_at.isoformat()}
