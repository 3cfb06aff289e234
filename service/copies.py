"""Copy detection on upload: a newly indexed video searched against the rest of the library.

``detect_copies`` (the task ``copycat.copies.detect``, queue ``query``, queued by ingest when
``COPYCAT_COPIES__ON_INGEST`` is on) runs the query plan (``workers.query.answer_query``) on what every
enabled signal stored for the video (for the frame descriptors its matrix): whole frames only,
since a reference's matrix holds no tiles (so picture-in-picture copies are not found here; a query with
``--crops 2`` finds them). It costs one batched search of the video's informative frames plus the
localisation of ``COPYCAT_COPIES__TOP_K`` candidates, and no decode: about a fifth of the search work of a
query of the same length with tiles. Relations at or above ``COPYCAT_COPIES__MIN_SCORE`` replace the
video's previous ones and are announced as ``copy.detected``. A failure is logged; the video stays indexed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

from db import copies, videos
from db.models import VideoStatus
from service import events, resources
from service.references import StoredReferences
from service.video_rows import records_of
from workers.errors import ObjectMissing
from workers.query import answer_query
from workers.types import Match

log = logging.getLogger(__name__)


def detect_copies(res: resources.Resources, video_id: str) -> dict[str, Any]:
    """Find what the indexed video shares with the library; store and announce it."""
    cfg = res.settings
    with res.session() as s:
        video = videos.get_video(s, video_id)
        usable = (video is not None and video.status == VideoStatus.INDEXED and video.matrix_key is not None
                  and video.model == res.embedder.name and video.fps is not None
                  and abs(video.fps - cfg.decode.fps) < 1e-6)
        if not usable:
            log.info("video %s is gone, not indexed, or of another model or fps; no copy detection", video_id)
            return {"video_id": video_id, "skipped": True}
        key, records = video.matrix_key, records_of(res, video)
    started = time.perf_counter()
    evidence = {}
    for signal in res.signals:
        if signal.name in records:
            try:
                evidence[signal.name] = signal.load(res.stores, records[signal.name])
            except ObjectMissing as exc:
                log.info("video %s: no %s evidence for copy detection (%s)", video_id, signal.name, exc)
    result = answer_query(evidence, res.signals, stores=res.stores, references=StoredReferences(res, without=video_id),
                          params=cfg.copy_params(), exclude={video_id})
    with res.session() as s:
        row = videos.lock_video(s, video_id)
        if row is None or row.status != VideoStatus.INDEXED or row.matrix_key != key:
            log.info("video %s was removed or re-ingested during its copy detection; result dropped", video_id)
            return {"video_id": video_id, "superseded": True}
        kept = copies.replace_copies(s, row, strong_segments(result.matches, cfg.copies.min_score))
        videos.add_timing(s, video_id, "copies", time.perf_counter() - started)
        s.flush()
        relations = copies.list_copies(s, video_id)
        name = row.name
    log.info("video %s (%s): %d videos share footage with it, %d segments (%.2f s: %s)", video_id, name, len(kept),
             len(relations), time.perf_counter() - started, result.timings)
    if relations:
        events.emit(res, "copy.detected", {"video_id": video_id, "name": name, "copies": relations})
    return {"video_id": video_id, "copies": len(kept), "segments": len(relations)}


def strong_segments(matches: list[Match], min_score: float) -> list[Match]:
    """Each match with only its segments scoring ``min_score`` or more (a relation is one segment pair)."""
    kept = [dataclasses.replace(m, segments=[s for s in m.segments if s.score >= min_score]) for m in matches]
    return [m for m in kept if m.segments]
