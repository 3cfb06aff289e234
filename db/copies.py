"""Named queries on copy relations: the segment pairs that copy detection on upload found."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, aliased

from db.models import CopyRelation, Video, VideoStatus
from workers.types import Match


def forget_video(session: Session, video_id: str) -> int:
    """Remove every relation the video is part of (either side); returns how many."""
    query = delete(CopyRelation).where(or_(CopyRelation.video_id == video_id, CopyRelation.other_id == video_id))
    return session.execute(query).rowcount or 0


def replace_copies(session: Session, video: Video, matches: Sequence[Match]) -> list[Match]:
    """Make the relations of ``video`` (locked by the caller, still indexed) exactly ``matches``.

    Every relation that names the video on either side goes: they described its previous content, and its
    current content was just searched against the whole library. Matches of videos that are no longer indexed
    are dropped; those kept are key-share locked until commit, so a concurrent delete of one waits and then
    cascades to the new rows. Returns the matches stored.
    """
    forget_video(session, video.id)
    others = [m.video_id for m in matches if m.video_id != video.id]
    query = select(Video.id).where(Video.id.in_(others), Video.status == VideoStatus.INDEXED)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(key_share=True)
    alive = set(session.scalars(query)) if others else set()
    kept = [m for m in matches if m.video_id in alive]
    for match in kept:
        session.add_all(CopyRelation(video_id=video.id, other_id=match.video_id, video_start=s.query_start,
                                     video_end=s.query_end, other_start=s.ref_start, other_end=s.ref_end,
                                     score=float(s.score), match_score=float(match.score),
                                     signals=list(s.signals))
                        for s in match.segments)
    return kept


def list_copies(session: Session, video_id: str | None = None, limit: int | None = None,
                offset: int = 0) -> list[dict[str, Any]]:
    """Relations as JSON rows, newest first; with ``video_id`` those it is part of, seen from its side
    (``video_*`` is that video, ``other_*`` the one it shares footage with)."""
    mine, theirs = aliased(Video), aliased(Video)
    query = (select(CopyRelation, mine.name, theirs.name)
             .join(mine, mine.id == CopyRelation.video_id).join(theirs, theirs.id == CopyRelation.other_id)
             .order_by(CopyRelation.detected_at.desc(), CopyRelation.id).offset(offset))
    if video_id:
        query = query.where(or_(CopyRelation.video_id == video_id, CopyRelation.other_id == video_id))
    if limit:
        query = query.limit(limit)
    rows = []
    for rel, name, other_name in session.execute(query):
        row = relation_json(rel, name, other_name)
        rows.append(_flipped(row) if video_id and rel.other_id == video_id else row)
    return rows


def relation_json(rel: CopyRelation, name: str, other_name: str) -> dict[str, Any]:
    """The documented shape of one relation (``copycat copies --json``, ``copy.detected``)."""
    return {
        "video_id": rel.video_id, "video_name": name, "video_start": rel.video_start, "video_end": rel.video_end,
        "other_id": rel.other_id, "other_name": other_name, "other_start": rel.other_start,
        "other_end": rel.other_end, "score": rel.score, "match_score": rel.match_score,
        "signals": list(rel.signals or []), "detected_at": rel.detected_at.isoformat(),
    }


def _flipped(row: dict[str, Any]) -> dict[str, Any]:
    swap = {"video": "other", "other": "video"}
    return {(swap[k.split("_", 1)[0]] + "_" + k.split("_", 1)[1] if k.split("_", 1)[0] in swap else k): v
            for k, v in row.items()}
