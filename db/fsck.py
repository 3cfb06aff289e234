"""Named queries for consistency checks: the rows ``copycat fsck`` compares, and its recorded runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import signals
from db.models import FsckRun, QueryJob, Video
from db.videos import IN_PROGRESS
from workers.consistency import RowState


def row_states(session: Session) -> dict[str, RowState]:
    """Every video as fsck sees it, with the objects of its other signals' rows."""
    keys = signals.object_keys(session)
    rows = session.execute(select(Video.id, Video.bucket, Video.key, Video.status, Video.model, Video.vector_count,
                                  Video.matrix_key)).all()
    return {vid: RowState(vid, f"{bucket}/{key}", status, model, status in IN_PROGRESS, count, matrix,
                          keys.get(vid, {}))
            for vid, bucket, key, status, model, count, matrix in rows}


def job_ids(session: Session) -> set[str]:
    return set(session.scalars(select(QueryJob.id)).all())


def record_run(session: Session, *, started_at: datetime, seconds: float, repaired: bool,
               counts: dict[str, int]) -> FsckRun:
    run = FsckRun(started_at=started_at, seconds=seconds, repaired=repaired, counts=counts, total=sum(counts.values()))
    session.add(run)
    session.flush()
    return run


def latest_run(session: Session) -> FsckRun | None:
    return session.scalars(select(FsckRun).order_by(FsckRun.started_at.desc(), FsckRun.id.desc()).limit(1)).first()
