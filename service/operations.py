"""Keeping the database in step with the buckets: event handling and the reconciliation sweep.

Bucket events (MinIO notifications, see ``service/watcher.py``) are the fast path; the sweep is the safety
net that works on any S3 server: it lists both buckets and queues every upload that has no row or a
stale ETag, every query object without a job, and the removal of every video whose object is gone. Both
paths go through ``db.videos.register_upload``, so an object seen by both is still processed once. Every
function takes the process's ``Resources`` first.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

from sqlalchemy import select

from db import jobs, videos
from db.failures import mark_failed
from db.models import QueryJob, Video
from db.session import advisory_lock
from service.queue import enqueue_ingest, enqueue_query, enqueue_remove
from service.resources import Resources
from workers.errors import CopycatError, ObjectMissing
from workers.stores.events import ObjectEvent
from workers.types import QueryParams

log = logging.getLogger(__name__)


def recover_dead_runs(res: Resources) -> int:
    with res.session() as s:
        dead_videos = videos.requeue_expired(s)
        dead_jobs = jobs.requeue_expired(s)
    for video_id, name in dead_videos:
        log.warning("video %s (%s): its ingest run stopped renewing its lease (worker gone); queued again",
                    name, video_id)
        enqueue_ingest(res, video_id, name)
    for job_id, name in dead_jobs:
        log.warning("query job %s (%s): its run stopped renewing its lease (worker gone); queued again", job_id,
                    name)
        enqueue_query(res, job_id, name)
    return len(dead_videos) + len(dead_jobs)


def sweep(res: Resources) -> dict[str, int]:
    """Queue whatever the buckets hold that the database does not know, and forget what is gone."""
    cfg, store = res.settings, res.objects
    counts = {"queued": 0, "removed": 0, "queries": 0}
    present: set[str] = set()
    for obj in store.list(cfg.s3.uploads_bucket):
        present.add(obj.key)
        if register_upload(res, obj.bucket, obj.key, obj.size, obj.etag):
            counts["queued"] += 1
    with res.session() as s:
        rows = s.execute(select(Video.id, Video.key, Video.name)
                               .where(Video.bucket == cfg.s3.uploads_bucket)).all()
    for video_id, key, name in rows:
        if key not in present:
            enqueue_remove(res, video_id, name)
            counts["removed"] += 1
    for obj in store.list(cfg.s3.queries_bucket):
        if register_query_object(res, obj.bucket, obj.key):
            counts["queries"] += 1
    log.info("reconcile: %d uploads queued, %d removed, %d queries queued", counts["queued"], counts["removed"],
             counts["queries"])
    return counts


def handle_event(res: Resources, event: ObjectEvent) -> bool:
    """Act on one bucket event; returns whether anything was queued."""
    cfg = res.settings
    if event.bucket == cfg.s3.uploads_bucket:
        if event.kind == "created":
            return register_upload(res, event.bucket, event.key, event.size, event.etag)
        with res.session() as s:
            video = videos.find_by_object(s, event.bucket, event.key)
            found = (video.id, video.name) if video else None
        if found:
            enqueue_remove(res, *found)
        return found is not None
    if event.bucket == cfg.s3.queries_bucket and event.kind == "created":
        return register_query_object(res, event.bucket, event.key)
    log.debug("ignoring %s event for s3://%s/%s", event.kind, event.bucket, event.key)
    return False


def register_upload(res: Resources, bucket: str, key: str, size: int | None, etag: str | None, *,
                    retry_failed: bool = False, force: bool = False) -> bool:
    """Record an upload and queue its ingest when it is new, changed, or stuck; returns whether queued.

    ``retry_failed`` and ``force`` are for a person re-running ``copycat ingest`` (see
    ``db.videos.register_upload``); events and sweeps use neither.
    """
    stale_after = timedelta(seconds=res.settings.broker.task_time_limit_s * 2)
    with res.session() as s:
        video, needed = videos.register_upload(s, bucket, key, size=size, etag=etag, retry_failed=retry_failed,
                                               force=force, stale_after=stale_after)
        video_id, name = video.id, video.name
    if needed:
        enqueue_ingest(res, video_id, name)
    return needed


def register_query_object(res: Resources, bucket: str, key: str) -> bool:
    """Create and queue a query job for an object dropped in the queries bucket, once."""
    name = key.rsplit("/", 1)[-1]
    with res.session() as s:
        advisory_lock(s, f"query:{bucket}/{key}")
        if jobs.find_job_by_object(s, bucket, key) is not None:
            return False
        job_id = jobs.create_job(s, source=f"s3://{bucket}/{key}", name=name, bucket=bucket, key=key,
                                 params=asdict(res.settings.query_params())).id
    enqueue_query(res, job_id, name)
    return True


def ingest_object(res: Resources, bucket: str, key: str, *, force: bool = False) -> str:
    """Register an object already in ``bucket`` (raises ``ObjectMissing`` when it is not) and queue its ingest
    unless it is indexed with these bytes; a failed video is tried again. Returns the video id."""
    info = res.objects.stat(bucket, key)
    if info is None:
        raise ObjectMissing(f"s3://{bucket}/{key} does not exist")
    register_upload(res, bucket, key, info.size, info.etag, retry_failed=True, force=force)
    return videos.video_id_for(bucket, key)


def submit_query(res: Resources, bucket: str, key: str, params: QueryParams, *, source: str | None = None,
                 job_id: str | None = None, put: Callable[[str, str], object] | None = None,
                 callback_url: str | None = None) -> str:
    """Create a query job for the object ``bucket/key`` and queue it; returns the job id.

    With ``put``, the object is an upload that ``put(bucket, key)`` writes once the job's row exists (so a
    bucket sweep never makes a second job for it). A failed write fails the job with the store's reason and
    raises.
    """
    job_id = job_id or str(uuid.uuid4())
    name = key.rsplit("/", 1)[-1]
    with res.session() as s:
        jobs.create_job(s, job_id=job_id, source=source or f"s3://{bucket}/{key}", name=name, bucket=bucket, key=key,
                        params=asdict(params), callback_url=callback_url)
    if put is not None:
        try:
            put(bucket, key)
        except CopycatError as exc:
            with res.session() as s:
                mark_failed(s, QueryJob, job_id, exc.code, f"the query video was not stored: {exc}")
            raise
    enqueue_query(res, job_id, name)
    return job_id
