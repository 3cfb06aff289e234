"""A video's rows through ingest and removal: every status change after the claim, the video's lock, and the
events those changes announce (``workers.ingest.VideoRows`` over the database).

The claim, progress and failure transitions are Celery's side of a run (``tasks/base.py``); everything that
depends on what the run produced is here. Vectors are written under the video's lock, which removal also
takes: a late run can never leave vectors of a removed or replaced video behind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from db import copies, videos
from db import signals as signal_rows
from db.models import Video, VideoStatus
from service import events
from service.queue import enqueue_copy_detection
from service.references import primary_record
from service.resources import Resources
from workers.extract import ExtractedObject
from workers.ingest import forget
from workers.signals.base import Record
from workers.signals.registry import PRIMARY

log = logging.getLogger(__name__)


def video_event(video: Video) -> dict[str, Any]:
    """``data`` of ``video.indexed`` and ``video.failed``."""
    error = f"{video.failure_code}: {video.failure_detail}" if video.failure_code else None
    return {"video_id": video.id, "name": video.name, "bucket": video.bucket, "key": video.key,
            "status": video.status, "error": error, "duration": video.duration, "frames": video.frame_count,
            "vectors": video.vector_count, "model": video.model, "sha256": video.sha256}


def records_of(res: Resources, video: Video) -> dict[str, Record]:
    """Every record a video's rows hold, by signal."""
    found = {PRIMARY: primary_record(video)} if video.matrix_key else {}
    with res.session() as s:
        found |= {name: Record(row.object_key, row.data) for name, row in signal_rows.records_of(s, video.id).items()}
    return found


@dataclass
class _Target:
    """``workers.ingest.IndexTarget`` of one locked video."""

    video_id: str
    known_frames: int | None
    outcome: dict[str, Any]

    def indexed(self, vectors: Mapping[str, int], seconds: float) -> None:
        self.outcome.update(vectors=dict(vectors), seconds=seconds)


class VideoRows:
    """``workers.ingest.VideoRows`` of this process."""

    def __init__(self, res: Resources) -> None:
        self.res = res

    def record(self, video_id: str, stored: ExtractedObject, records: Mapping[str, Record],
               timings: Mapping[str, float]) -> list[str] | None:
        video, primary = stored.video, records[PRIMARY]
        stale: list[str] = []
        with self.res.session() as s:
            row = videos.lock_video(s, video_id)
            if row is None or row.etag != stored.source.etag:
                log.info("video %s was replaced or deleted while it was embedded; result dropped", video_id)
                return None
            if row.matrix_key and row.matrix_key != primary.key:
                stale.append(row.matrix_key)
            assert primary.key is not None
            videos.record_matrix(s, row, video.info, size=stored.source.size, sha256=stored.sha256,
                                 frame_count=int(primary.data["frames"]), fps=video.fps,
                                 matrix_bucket=self.res.settings.s3.matrices_bucket, matrix_key=primary.key,
                                 matrix_dtype=str(primary.data["dtype"]), timings=dict(timings))
            for name, record in records.items():
                if name != PRIMARY:
                    old = signal_rows.save_record(s, video_id, name, object_key=record.key, data=dict(record.data))
                    stale += [old] if old else []
            for name, row in signal_rows.records_of(s, video_id).items():
                if name not in records:  # a signal switched off since: what it kept describes the old bytes
                    self.res.signal(name).forget(self.res.stores, video_id)
                    signal_rows.delete_record(s, video_id, name)
                    stale += [row.object_key] if row.object_key else []
        return stale

    @contextmanager
    def indexing(self, video_id: str, key: str) -> Iterator[_Target | None]:
        outcome: dict[str, Any] = {}
        with self.res.session() as s:
            row = videos.lock_video(s, video_id)
            if row is None or row.matrix_key != key:
                log.info("video %s was removed or re-ingested before its vectors were written; nothing to index",
                         video_id)
                yield None
                return
            yield _Target(video_id, row.vector_frames, outcome)
            if not outcome:
                return
            videos.add_timing(s, video_id, "index", outcome["seconds"])
            copies.forget_video(s, video_id)  # they described the previous content; detection finds the new ones
            count, frames = outcome["vectors"][PRIMARY], row.frame_count
            indexed = videos.set_status(s, video_id, VideoStatus.INDEXED, vector_count=count, vector_frames=frames)
            name, data = row.name, video_event(indexed)
        log.info("video %s (%s): %d of %d frames informative, indexed with %s (signals: %s)", video_id, name, count,
                 frames, self.res.embedder.name, ", ".join(outcome["vectors"]))
        events.emit(self.res, "video.indexed", data)
        if self.res.settings.copies.on_ingest:
            enqueue_copy_detection(self.res, video_id, name)

    @contextmanager
    def add_signal(self, video_id: str, sha256: str, signal: str, record: Record) -> Iterator[bool]:
        with self.res.session() as s:
            row = videos.lock_video(s, video_id)
            if row is None or row.status != VideoStatus.INDEXED or row.sha256 != sha256:
                log.info("video %s was replaced, deleted or is not indexed; its %s evidence dropped", video_id, signal)
                yield False
                return
            old = signal_rows.save_record(s, video_id, signal, object_key=record.key, data=dict(record.data))
            yield True
        if old:
            self.res.stores.arrays.remove(old)

    def remove(self, video_id: str) -> bool:
        """Forget a video whose upload is gone: every signal's vectors and objects, its relations, then its row,
        all under the video's lock (the row goes last, so a retry after a store failure finishes the job)."""
        with self.res.session() as s:
            video = videos.lock_video(s, video_id)
            if video is None:
                return False
            records = records_of(self.res, video)
            forget(video_id, records, signals=[self.res.signal(name) for name in {PRIMARY, *records}],
                   stores=self.res.stores)
            copies.forget_video(s, video_id)
            return videos.delete_video(s, video_id)
