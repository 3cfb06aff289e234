"""Named queries on query jobs and their results. Every status change of a job goes through here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, selectinload

from db import leases
from db.models import JobStatus, QueryJob, QueryMatch, QuerySegment, utcnow
from workers.types import Match


def create_job(session: Session, *, source: str, name: str, bucket: str, key: str,
               params: dict[str, Any], job_id: str | None = None, callback_url: str | None = None) -> QueryJob:
    """A pending job; ``callback_url`` (checked by the caller) gets its ``query.done`` event."""
    job = QueryJob(id=job_id or str(uuid.uuid4()), source=source, name=name, bucket=bucket, key=key,
                   params=params, status=JobStatus.PENDING, timings={}, callback_url=callback_url or None)
    session.add(job)
    session.flush()
    return job


def start_job(session: Session, job_id: str, *, run_id: str, lease: timedelta, retrying: bool = False,
              **fields: Any) -> QueryJob | None:
    """Mark a job running under the run's lease; a re-run starts from a clean slate (earlier results removed).

    None when there is nothing to do: the job is gone, it ended (a late duplicate; a retry of the same run
    proceeds), or another live run holds it.
    """
    job = session.get(QueryJob, job_id, with_for_update=True)
    if job is None or leases.held_by_another(job, run_id):
        return None
    if job.status in (JobStatus.DONE, JobStatus.FAILED) and not (retrying or job.lease_owner == run_id):
        return None
    leases.take(job, run_id, lease)
    session.execute(delete(QueryMatch).where(QueryMatch.job_id == job_id))
    job.status = JobStatus.RUNNING
    job.failure_code = job.failure_detail = None
    job.started_at, job.finished_at = utcnow(), None
    for name, value in fields.items():
        setattr(job, name, value)
    return job


def claim_match(session: Session, job_id: str, *, run_id: str, lease: timedelta) -> QueryJob | None:
    """The matching step takes the job's lease; None when it is gone, ended, or held by another live run."""
    job = session.get(QueryJob, job_id, with_for_update=True)
    if job is None or job.status != JobStatus.RUNNING or leases.held_by_another(job, run_id):
        return None
    leases.take(job, run_id, lease)
    return job


def release_lease(session: Session, job_id: str) -> None:
    """Between its steps a job waits in a queue: no run holds it (a queued message is not lost)."""
    job = session.get(QueryJob, job_id)
    if job is not None:
        leases.release(job)


def renew_lease(session: Session, job_id: str, run_id: str, lease: timedelta) -> bool:
    return leases.renew(session, QueryJob, job_id, run_id, lease)


def requeue_expired(session: Session, limit: int = 1000) -> list[tuple[str, str]]:
    """Reset to pending every running job whose lease ran out (its worker died); ``(id, name)`` to queue."""
    reset = []
    for job_id in leases.expired(session, QueryJob, (JobStatus.RUNNING,), limit):
        job = session.get(QueryJob, job_id, with_for_update=True, populate_existing=True)
        if job is not None and job.status == JobStatus.RUNNING and job.lease_until is not None \
                and leases.aware(job.lease_until) < utcnow():
            job.status, job.matrix_key = JobStatus.PENDING, None
            leases.release(job)
            reset.append((job.id, job.name))
    return reset


def update_job(session: Session, job_id: str, **fields: Any) -> QueryJob:
    job = _get(session, job_id)
    for name, value in fields.items():
        setattr(job, name, value)
    return job


def add_timing(session: Session, job_id: str, stage: str, seconds: float) -> None:
    job = _get(session, job_id)
    job.timings = {**(job.timings or {}), stage: round(seconds, 4)}


def finish_job(session: Session, job_id: str, matches: Sequence[Match], names: dict[str, str]) -> QueryJob:
    """Store the matches (replacing any earlier ones) and mark the job done."""
    job = _get(session, job_id)
    session.execute(delete(QueryMatch).where(QueryMatch.job_id == job_id))
    for rank, match in enumerate(matches):
        row = QueryMatch(job_id=job_id, rank=rank, video_id=match.video_id, name=names.get(match.video_id, ""),
                         score=float(match.score), video_similarity=match.video_similarity)
        row.segments = [
            QuerySegment(query_start=s.query_start, query_end=s.query_end, ref_start=s.ref_start,
                         ref_end=s.ref_end, score=float(s.score), signals=list(s.signals))
            for s in match.segments
        ]
        session.add(row)
    job.status = JobStatus.DONE
    job.finished_at = utcnow()
    leases.release(job)
    return job


def get_job(session: Session, job_id: str) -> QueryJob | None:
    query = (select(QueryJob).where(QueryJob.id == job_id)
             .options(selectinload(QueryJob.matches).selectinload(QueryMatch.segments)))
    return session.scalars(query).first()


def find_job_by_object(session: Session, bucket: str, key: str) -> QueryJob | None:
    query = select(QueryJob).where(QueryJob.bucket == bucket, QueryJob.key == key).order_by(QueryJob.created_at)
    return session.scalars(query).first()


def list_jobs(session: Session, limit: int = 50, status: str | None = None) -> Sequence[QueryJob]:
    query = select(QueryJob).order_by(QueryJob.created_at.desc()).limit(limit)
    if status:
        query = query.where(QueryJob.status == status)
    return session.scalars(query).all()


def result_json(job: QueryJob) -> dict[str, Any]:
    """The documented result shape that scripts and evaluations rely on."""
    done = job.status == JobStatus.DONE
    error = None
    if job.status == JobStatus.FAILED:
        error = f"{job.failure_code}: {job.failure_detail}" if job.failure_code else job.failure_detail
    matches = []
    for match in job.matches if done else []:
        segments = [
            {"query_start": s.query_start, "query_end": s.query_end, "ref_start": s.ref_start,
             "ref_end": s.ref_end, "score": s.score, "signals": list(s.signals or [])}
            for s in match.segments
        ]
        item: dict[str, Any] = {
            "video_id": match.video_id,
            "name": match.name,
            "score": float(match.score),
            "signals": sorted({label for s in segments for label in s["signals"]}),
            "segments": segments,
        }
        if match.video_similarity is not None:
            item["video_similarity"] = float(match.video_similarity)
        matches.append(item)
    return {
        "job_id": job.id,
        "query": job.source,
        "status": job.status,
        "error": error,
        "timings": dict(job.timings or {}),
        "matches": matches,
    }


def _get(session: Session, job_id: str) -> QueryJob:
    job = session.get(QueryJob, job_id)
    if job is None:
        raise LookupError(f"query job {job_id} is not in the database")
    return job
