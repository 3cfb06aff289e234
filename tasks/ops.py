"""Operations tasks: the reconciliation sweep that makes sure no upload is ever missed."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import shared_task

from db import jobs, videos
from db.models import QueryJob, Video
from db.session import session_scope
from tasks import context
from tasks.base import TASK_OPTIONS, CopycatTask

log = logging.getLogger(__name__)


@shared_task(name="copycat.ops.reconcile", base=CopycatTask, **TASK_OPTIONS)
def reconcile(self: CopycatTask) -> dict[str, int]:
    """Compare the buckets with the database and queue whatever is missing, changed or gone.

    Works on any S3 server (it only lists), so uploads made while the event listener was down, or on a
    server without notifications, are still indexed.
    """
    return sweep()


def sweep() -> dict[str, int]:
    from sqlalchemy import select

    from tasks.ingest import embed_video, remove_video
    from tasks.query import embed_query

    cfg, store = context.settings(), context.objects()
    stale_after = timedelta(seconds=cfg.broker.task_time_limit_s * 2)
    counts = {"queued": 0, "removed": 0, "queries": 0}
    present: set[str] = set()
    for obj in store.list(cfg.s3.uploads_bucket):
        present.add(obj.key)
        with session_scope(context.engine()) as session:
            video, needed = videos.register_upload(session, obj.bucket, obj.key, size=obj.size, etag=obj.etag,
                                                   stale_after=stale_after)
            video_id = video.id
        if needed:
            embed_video.delay(video_id)
            counts["queued"] += 1
    with session_scope(context.engine()) as session:
        rows = session.execute(select(Video.id, Video.key).where(Video.bucket == cfg.s3.uploads_bucket)).all()
    for video_id, key in rows:
        if key not in present:
            remove_video.delay(video_id)
            counts["removed"] += 1
    for obj in store.list(cfg.s3.queries_bucket):
        job_id = register_query_object(obj.bucket, obj.key)
        if job_id:
            embed_query.delay(job_id)
            counts["queries"] += 1
    log.info("reconcile: %d uploads queued, %d removed, %d queries queued", counts["queued"], counts["removed"],
             counts["queries"])
    return counts


def register_query_object(bucket: str, key: str) -> str | None:
    """Create a query job for an object dropped in the queries bucket; None if it already has one."""
    from tasks.query import default_params

    with session_scope(context.engine()) as session:
        if jobs.find_job_by_object(session, bucket, key) is not None:
            return None
        job: QueryJob = jobs.create_job(session, source=f"s3://{bucket}/{key}", name=key.rsplit("/", 1)[-1],
                                        bucket=bucket, key=key, params=default_params())
        return job.id
