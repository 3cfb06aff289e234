"""Ingest tasks: an upload becomes every enabled signal's evidence (``workers.ingest``); a deleted one is forgotten.

``copycat.ingest.embed`` (queue ``embed``, next to the model): one run per upload. ``copycat.ingest.remove``
(queue ``index``): the object was deleted; its vectors, objects, copy relations and rows go. The video's
status changes after the claim, its lock and the events they announce live in ``service/video_rows.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from db import videos
from db.models import VideoStatus
from service import queue, resources
from service.queue import enqueue_backfill
from service.video_rows import VideoRows, records_of
from tasks.base import TASK_OPTIONS, VideoTask
from workers.ingest import IngestResult, ingest, resume

log = logging.getLogger(__name__)


@shared_task(name=queue.INGEST, base=VideoTask, **TASK_OPTIONS)
def embed_video(self: VideoTask, video_id: str) -> dict[str, Any]:
    """Ingest one upload. The object may be replaced or deleted meanwhile: a run whose bytes are no longer
    the registered ones drops its result (the newer upload has its own run), also when it failed."""
    res = resources.current()
    video = self.claim(video_id, res.embedder.name, res.embedder.dim)
    if video is None:
        return {"video_id": video_id, "skipped": True}
    cfg, plan = res.settings, {"signals": res.signals, "stores": res.stores, "rows": VideoRows(res)}
    result = IngestResult(superseded=True)  # unless the block below gets further
    with self.leased(video_id), self.dropped_if_superseded(video_id, video.etag):
        if video.status == VideoStatus.INDEXING:  # a retry after the objects were stored: only vectors are left
            result = resume(video_id, records_of(res, video), **plan)
        else:
            result = ingest(video_id, lambda: res.objects.read(video.bucket, video.key), label=video.name,
                            size=video.size, options=res.decode_options, scratch_dir=cfg.scratch_dir, **plan,
                            progress=self.reporter(lambda: self.embedding(video_id),
                                                   forward=res.progress_listeners.get(video_id)))
    for signal in result.missing:
        enqueue_backfill(res, signal, video_id, video.name)
    return {"video_id": video_id, **result.summary()}


@shared_task(name=queue.REMOVE, base=VideoTask, **TASK_OPTIONS)
def remove_video(self: VideoTask, video_id: str) -> dict[str, Any]:
    """Forget a deleted upload. Nothing is removed when the object is back in the bucket (deleted and uploaded
    again, or listed by a sweep just before it was uploaded): the upload's registration handles it."""
    res = resources.current()
    with res.session() as s:
        video = videos.get_video(s, video_id)
        found = (video.bucket, video.key) if video is not None else None
    if found is None:
        return {"video_id": video_id, "removed": False}
    if res.objects.stat(*found) is not None:
        log.info("video %s: s3://%s/%s exists again; not removed", video_id, *found)
        return {"video_id": video_id, "removed": False}
    return {"video_id": video_id, "removed": VideoRows(res).remove(video_id)}
