"""Leases: a running task's claim on its row (a video being ingested, a query job being answered).

The run renews its lease while it lives (``tasks.base.RecordedTask.leased``); a lease that ran out means
its worker died, and the recovery check queues the row again (``service.operations.recover``). Another run's
message for a row under a live lease is a duplicate and is dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import utcnow


def held_by_another(row: Any, run_id: str) -> bool:
    """Whether a live run other than ``run_id`` holds the row's lease."""
    return (row.lease_owner not in (None, run_id) and row.lease_until is not None
            and aware(row.lease_until) > utcnow())


def take(row: Any, run_id: str, lease: timedelta) -> None:
    row.lease_owner, row.lease_until = run_id, utcnow() + lease


def release(row: Any) -> None:
    row.lease_owner = row.lease_until = None


def renew(session: Session, model: type, row_id: str, run_id: str, lease: timedelta) -> bool:
    """The run is alive: its lease lasts ``lease`` from now. False when the run no longer holds it."""
    row = session.get(model, row_id)
    if row is None or row.lease_owner != run_id:
        return False
    row.lease_until = utcnow() + lease
    return True


def expired(session: Session, model: type, statuses: tuple[str, ...], limit: int) -> list[str]:
    """Ids of rows in ``statuses`` whose lease ran out (one indexed query: cheap enough to run often)."""
    return list(session.scalars(select(model.id).where(model.status.in_(statuses), model.lease_until < utcnow())
                                .limit(limit)).all())


def aware(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything here is UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
