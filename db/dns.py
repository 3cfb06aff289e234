"""Named queries on DnS rows (``video_dns``): save one, read them back for re-ranking."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.dns_models import VideoDns
from db.models import utcnow


def save_video_dns(session: Session, video_id: str, *, student: str, selector_stat: float, fine_bucket: str,
                   fine_key: str, fine_dtype: str, frames: int) -> VideoDns:
    """Insert or replace the DnS row of ``video_id`` (the video row must exist)."""
    row = session.get(VideoDns, video_id, with_for_update=True)
    if row is None:
        row = VideoDns(video_id=video_id)
        session.add(row)
    row.student, row.selector_stat, row.frames = student, float(selector_stat), int(frames)
    row.fine_bucket, row.fine_key, row.fine_dtype = fine_bucket, fine_key, fine_dtype
    row.created_at = utcnow()
    session.flush()
    return row


def get_video_dns(session: Session, video_id: str) -> VideoDns | None:
    return session.get(VideoDns, video_id)


def rows_for(session: Session, video_ids: Sequence[str], student: str) -> dict[str, VideoDns]:
    """The rows of those ``video_ids`` that were indexed with ``student`` (others cannot be re-ranked)."""
    if not video_ids:
        return {}
    query = select(VideoDns).where(VideoDns.video_id.in_(list(video_ids)), VideoDns.student == student)
    return {row.video_id: row for row in session.scalars(query)}
