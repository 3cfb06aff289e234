"""Named queries on ``video_signals``: what each signal other than the primary stored for a video."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from db.models import VideoSignal, utcnow


def save_record(session: Session, video_id: str, signal: str, *, object_key: str | None,
                data: dict[str, Any]) -> str | None:
    """Insert or replace the row of (``video_id``, ``signal``) (the video row must exist); returns the object key
    of the row it replaced, when that differs (the caller removes the stale object)."""
    row = session.get(VideoSignal, (video_id, signal), with_for_update=True)
    if row is None:
        row = VideoSignal(video_id=video_id, signal=signal)
        session.add(row)
    stale = row.object_key if row.object_key != object_key else None
    row.object_key, row.data, row.created_at = object_key, dict(data), utcnow()
    session.flush()
    return stale


def records_for(session: Session, signal: str, video_ids: Sequence[str]) -> dict[str, VideoSignal]:
    """The rows ``signal`` holds for those ``video_ids`` that have one."""
    if not video_ids:
        return {}
    query = select(VideoSignal).where(VideoSignal.signal == signal, VideoSignal.video_id.in_(list(video_ids)))
    return {row.video_id: row for row in session.scalars(query)}


def records_of(session: Session, video_id: str) -> dict[str, VideoSignal]:
    """Every signal's row of one video, by signal."""
    return {row.signal: row for row in session.scalars(select(VideoSignal).where(VideoSignal.video_id == video_id))}


def object_keys(session: Session) -> dict[str, dict[str, str]]:
    """Video id -> signal -> object key, for every row that has an object (fsck)."""
    found: dict[str, dict[str, str]] = {}
    for video_id, signal, key in session.execute(select(VideoSignal.video_id, VideoSignal.signal,
                                                        VideoSignal.object_key)):
        if key:
            found.setdefault(video_id, {})[signal] = key
    return found


def delete_record(session: Session, video_id: str, signal: str) -> None:
    session.execute(delete(VideoSignal).where(VideoSignal.video_id == video_id, VideoSignal.signal == signal))
