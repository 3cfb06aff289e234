"""The failure transition of any failable row (videos, query jobs), in one place."""

from __future__ import annotations

from sqlalchemy.orm import Session

from db.models import Failable


def mark_failed(session: Session, row_type: type[Failable], row_id: str, code: str, detail: str) -> bool:
    """Record why a row's work failed; a missing row (deleted meanwhile) is ignored. Returns whether found."""
    row = session.get(row_type, row_id)
    if row is None:
        return False
    row.fail(code, detail)
    return True
