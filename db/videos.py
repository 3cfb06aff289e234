"""Named queries on reference videos. Every status change of a video goes through here."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db import leases
from db.models import Video, VideoStatus, utcnow
from db.session import advisory_lock
from workers.types import VideoInfo

VIDEO_NAMESPACE = uuid.UUID("5b0f6a1e-7c3d-4e8a-9a59-0c0b8f1d2c3e")
RUNNING = (VideoStatus.DECODING, VideoStatus.EMBEDDING, VideoStatus.INDEXING)
IN_PROGRESS = (VideoStatus.PENDING, *RUNNING)
# A fresh message for a video in these states is a duplicate (re-uploads and retries reset it to pending).
DONE_WITH_EMBEDDING = (VideoStatus.INDEXING, VideoStatus.INDEXED, VideoStatus.FAILED)


def video_id_for(bucket: str, key: str) -> str:
    """Stable id of the object ``bucket/key``: the same upload always maps to the same row and vectors."""
    return str(uuid.uuid5(VIDEO_NAMESPACE, f"{bucket}/{key}"))


def register_upload(session: Session, bucket: str, key: str, *, size: int | None, etag: str | None,
                    retry_failed: bool = False, force: bool = False,
                    stale_after: timedelta | None = None) -> tuple[Video, bool]:
    """Record an object in the uploads bucket; returns the row and whether it needs (re)ingesting.

    A new object or a changed ETag (overwrite) is queued. A failed row is queued again only with
    ``retry_failed`` (a sweep must not retry a broken file forever), and a row stuck in progress for
    longer than ``stale_after`` (its worker died) is queued again. An indexed row with the same ETag is not,
    unless ``force`` (a user asking to re-ingest).
    """
    video_id = video_id_for(bucket, key)
    advisory_lock(session, f"video:{video_id}")
    video = session.get(Video, video_id, with_for_update=True)
    if video is None:
        video = Video(id=video_id, name=key.rsplit("/", 1)[-1], bucket=bucket, key=key, size=size, etag=etag,
                      status=VideoStatus.PENDING, timings={})
        session.add(video)
        session.flush()
        return video, True
    changed = bool(etag) and etag != video.etag
    stuck = stale_after is not None and _stuck(video, stale_after)
    if force or changed or (retry_failed and video.status == VideoStatus.FAILED) or stuck:
        video.size, video.etag = size, etag
        _reset(video)
        return video, True
    return video, False


def claim_for_ingest(session: Session, video_id: str, *, model: str, dim: int, retrying: bool, run_id: str,
                     lease: timedelta) -> Video | None:
    """Start an ingest run (``decoding``, one more attempt) holding the video's lease for ``lease``.

    None when there is nothing to do: the row is gone, the message is a duplicate of a run that already got
    past embedding (``retrying`` runs always proceed), or another run holds a live lease (a sweep re-queued
    the video while it was being worked on). The same run (``run_id``: the task id, also when the broker
    redelivers the message after its worker died) takes its lease over. A retry of a run whose matrix is
    already stored stays ``indexing``: only the vectors are left to write.
    """
    video = session.get(Video, video_id, with_for_update=True)
    same_run = video is not None and video.lease_owner == run_id
    if video is None or (video.status in DONE_WITH_EMBEDDING and not (retrying or same_run)):
        return None
    if video.status in RUNNING and leases.held_by_another(video, run_id):
        return None
    leases.take(video, run_id, lease)
    if video.status == VideoStatus.INDEXING and video.matrix_key and (retrying or same_run):
        video.attempts += 1
        return video
    set_status(session, video_id, VideoStatus.DECODING, model=model, dim=dim, failure_code=None,
               failure_detail=None)
    video.attempts += 1
    return video


def renew_lease(session: Session, video_id: str, run_id: str, lease: timedelta) -> bool:
    """The run is alive: its lease lasts ``lease`` from now. False when the run no longer holds it."""
    return leases.renew(session, Video, video_id, run_id, lease)


def mark_embedding(session: Session, video_id: str) -> bool:
    """Frames of the run are being embedded; False when the row is gone."""
    video = session.get(Video, video_id)
    if video is None:
        return False
    video.status = VideoStatus.EMBEDDING
    return True


def lock_video(session: Session, video_id: str) -> Video | None:
    """The row under the video's lock (held until commit), which ingest and removal both take."""
    advisory_lock(session, f"video:{video_id}")
    return session.get(Video, video_id)


def record_matrix(session: Session, video: Video, info: VideoInfo, *, size: int, sha256: str, frame_count: int,
                  fps: float, matrix_bucket: str, matrix_key: str, matrix_dtype: str,
                  timings: dict[str, float]) -> None:
    """The run's matrix is stored for the registered bytes: ``indexing`` (its vectors are written next).

    ``vector_frames`` only grows here: rows of a longer earlier version stay covered until an index run has
    deleted them (``index_vectors`` lowers it), even when this run dies before that.
    """
    bound = None if video.vector_frames is None else max(video.vector_frames, frame_count)
    set_status(session, video.id, VideoStatus.INDEXING, size=size, sha256=sha256, frame_count=frame_count, fps=fps,
               matrix_bucket=matrix_bucket, matrix_key=matrix_key, matrix_dtype=matrix_dtype, timings=timings,
               duration=info.duration, width=info.width, height=info.height, source_fps=info.fps,
               codec=info.codec, vector_frames=bound)


def searchable_ids(session: Session, video_ids: Sequence[str], *, model: str, fps: float) -> set[str]:
    """Those ``video_ids`` whose row is indexed with ``model`` at ``fps``: the only videos a query may report.

    Deleted, failed, re-indexing videos and videos sampled at another rate (after a change of
    ``COPYCAT_DECODE__FPS``: their matrices do not line up with the query's) are left out.
    """
    if not video_ids:
        return set()
    query = select(Video.id, Video.fps).where(Video.id.in_(list(video_ids)), Video.status == VideoStatus.INDEXED,
                                              Video.model == model, Video.matrix_key.is_not(None))
    return {vid for vid, video_fps in session.execute(query) if video_fps is not None and abs(video_fps - fps) < 1e-6}


def set_status(session: Session, video_id: str, status: VideoStatus, **fields: Any) -> Video:
    """Move a video to ``status`` and record the given columns."""
    video = _get(session, video_id)
    video.status = status
    for name, value in fields.items():
        setattr(video, name, value)
    if status == VideoStatus.INDEXED:
        video.indexed_at = utcnow()
        leases.release(video)
    return video


def add_timing(session: Session, video_id: str, stage: str, seconds: float) -> None:
    video = _get(session, video_id)
    video.timings = {**(video.timings or {}), stage: round(seconds, 4)}


def get_video(session: Session, video_id: str) -> Video | None:
    return session.get(Video, video_id)


def find_by_object(session: Session, bucket: str, key: str) -> Video | None:
    return session.get(Video, video_id_for(bucket, key))


def list_videos(session: Session, status: str | None = None, limit: int | None = None,
                offset: int = 0) -> Sequence[Video]:
    """Videos in upload order (oldest first), optionally one state only, a page at a time."""
    query = select(Video).order_by(Video.created_at, Video.name, Video.id).offset(offset)
    if status:
        query = query.where(Video.status == status)
    if limit:
        query = query.limit(limit)
    return session.scalars(query).all()


def count_videos(session: Session, status: str | None = None) -> int:
    query = select(func.count()).select_from(Video)
    if status:
        query = query.where(Video.status == status)
    return int(session.scalar(query) or 0)


def videos_by_ids(session: Session, ids: Sequence[str]) -> dict[str, Video]:
    if not ids:
        return {}
    return {v.id: v for v in session.scalars(select(Video).where(Video.id.in_(list(ids))))}


def ids_with_sha256(session: Session, sha256: str) -> set[str]:
    return set(session.scalars(select(Video.id).where(Video.sha256 == sha256)))


def count_by_status(session: Session) -> dict[str, int]:
    rows = session.execute(select(Video.status, func.count()).group_by(Video.status)).all()
    return {status: count for status, count in rows}


def delete_video(session: Session, video_id: str) -> bool:
    return session.execute(delete(Video).where(Video.id == video_id)).rowcount > 0


def requeue_expired(session: Session, limit: int = 1000) -> list[tuple[str, str]]:
    """Reset to pending every running video whose lease has expired (its worker died) and return their
    ``(id, name)`` to queue again. Cheap (one indexed query), so it runs every few seconds, not per sweep."""
    reset: list[tuple[str, str]] = []
    for video_id in leases.expired(session, Video, RUNNING, limit):
        advisory_lock(session, f"video:{video_id}")
        video = session.get(Video, video_id, with_for_update=True, populate_existing=True)
        if video is not None and video.status in RUNNING and video.lease_until is not None \
                and leases.aware(video.lease_until) < utcnow():
            _reset(video)
            reset.append((video.id, video.name))
    return reset


def video_json(video: Video) -> dict[str, Any]:
    """The documented JSON of a video (``copycat videos --json`` and the HTTP API)."""
    return {
        "video_id": video.id, "name": video.name, "bucket": video.bucket, "key": video.key,
        "status": video.status, "duration": video.duration, "frames": video.frame_count, "fps": video.fps,
        "model": video.model, "dim": video.dim, "size": video.size, "etag": video.etag, "sha256": video.sha256,
        "matrix_key": video.matrix_key, "timings": video.timings or {},
        "error": f"{video.failure_code}: {video.failure_detail}" if video.failure_code else None,
    }


def _stuck(video: Video, stale_after: timedelta) -> bool:
    """Whether a row in progress has lost its worker: a run's lease expired (renewed every few seconds
    while it lives, whatever the video's length), or a row waited ``stale_after`` without being picked up."""
    now = utcnow()
    if video.status in RUNNING and video.lease_until is not None:
        return leases.aware(video.lease_until) < now
    return video.status in IN_PROGRESS and leases.aware(video.updated_at) < now - stale_after


def _reset(video: Video) -> None:
    """Back to pending, stamped now: a row re-queued this way is not 'stuck' again until stale_after passes."""
    video.updated_at = utcnow()
    video.status = VideoStatus.PENDING
    video.failure_code = video.failure_detail = None
    video.timings = {}
    video.indexed_at = None
    leases.release(video)


def _get(session: Session, video_id: str) -> Video:
    video = session.get(Video, video_id)
    if video is None:
        raise LookupError(f"video {video_id} is not in the database")
    return video
