"""``copycat.signals.backfill`` (queue ``embed``): one signal's evidence for a video indexed without it
(the signal was switched on since, or a retry found nothing of it stored). A failure is logged; the video stays
searchable by its other signals."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from db import videos
from db.models import VideoStatus
from service import queue, resources
from service.video_rows import VideoRows
from tasks.base import TASK_OPTIONS, EnrichmentTask
from workers.ingest import backfill

log = logging.getLogger(__name__)


@shared_task(name=queue.BACKFILL_SIGNAL, base=EnrichmentTask, **TASK_OPTIONS)
def backfill_signal(self: EnrichmentTask, signal: str, video_id: str) -> dict[str, Any]:
    """Decode the video once for ``signal`` (enabled) and store and index what it finds."""
    res = resources.current()
    found = next((s for s in res.signals if s.name == signal), None)
    with res.session() as s:
        video = videos.get_video(s, video_id)
        ready = video is not None and video.status == VideoStatus.INDEXED and video.sha256 is not None
        source = (video.bucket, video.key, video.name, video.sha256) if ready and video else None
    if found is None or source is None:
        log.info("video %s: no %s backfill (signal off, video gone or not indexed)", video_id, signal)
        return {"video_id": video_id, "signal": signal, "skipped": True}
    bucket, key, name, sha256 = source
    result = backfill(video_id, found, sha256=sha256, fetch=lambda dest: res.objects.get_file(bucket, key, dest),
                      label=name, stores=res.stores, rows=VideoRows(res), options=res.decode_options,
                      scratch_dir=res.settings.scratch_dir)
    return {"video_id": video_id, "signal": signal, **({"superseded": True} if result.superseded else result.vectors)}
