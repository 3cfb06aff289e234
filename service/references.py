"""What a query needs to know about the library (``workers.signals.base.References``), from the database."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from db import signals as signal_rows
from db import videos
from db.models import Video
from service.resources import Resources
from workers.signals.base import Record
from workers.signals.registry import PRIMARY

log = logging.getLogger(__name__)


class StoredReferences:
    """``References`` over the database: the primary signal's record is the video row's matrix columns."""

    def __init__(self, res: Resources, *, without: str | None = None) -> None:
        self.res = res
        self.fps = res.settings.decode.fps
        self.without = without

    def searchable(self, video_ids: list[str]) -> Collection[str]:
        with self.res.session() as s:
            allowed = videos.searchable_ids(s, video_ids, model=self.res.frame_index.model, fps=self.fps)
        allowed.discard(self.without)
        if len(allowed) < len(video_ids):
            log.info("%d of %d candidate videos skipped: not indexed (deleted, failed, re-indexing) or indexed "
                     "at another fps than %g (re-ingest them)", len(video_ids) - len(allowed), len(video_ids),
                     self.fps)
        return allowed

    def records(self, signal: str, video_ids: list[str]) -> Mapping[str, Record]:
        with self.res.session() as s:
            if signal == PRIMARY:
                return {v.id: primary_record(v) for v in videos.videos_by_ids(s, video_ids).values() if v.matrix_key}
            return {vid: Record(row.object_key, row.data)
                    for vid, row in signal_rows.records_for(s, signal, video_ids).items()}


def primary_record(video: Video) -> Record:
    """The primary signal's record of a video: its frame matrix."""
    return Record(video.matrix_key, {"dtype": video.matrix_dtype, "frames": video.frame_count})
