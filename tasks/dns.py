"""DnS (Distill-and-Select) storage wiring: video-level outputs at ingest, the library side of re-ranking.

With DnS on, the ingest run computes a video's DnS representation from the same decode as its frame
descriptors (``workers.pipeline.embed_video``) and ``save_representation`` stores it: the coarse vector in
Milvus (one row per video), the fine index next to the frame matrix, the selector statistic in
``video_dns``. ``copycat.dns.index`` (queue ``embed``) computes it for a video indexed before DnS was
switched on. Query jobs re-rank through ``workers.query.DnsStage`` over ``StoredDnsLibrary``.

Everything is off unless ``COPYCAT_DNS__ENABLED=true`` and the weights are in ``COPYCAT_DNS__WEIGHTS_DIR``
(or ``COPYCAT_DNS__ALLOW_RANDOM_WEIGHTS=true``, for tests only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from celery import shared_task
from sqlalchemy.orm import Session

from db import dns as dns_db
from db import videos
from db.models import VideoStatus
from service import queue, resources
from service.resources import session
from service.settings import Settings
from tasks.base import TASK_OPTIONS, EnrichmentTask
from workers.dns.files import WeightFile
from workers.dns.representation import DNS_FPS, DNS_GEOMETRY, DnsRepresentation, pack_fine, required_files, unpack_fine
from workers.pipeline import EmbeddedObject, embed_object
from workers.stores.objects import ObjectInfo, load_matrix, save_matrix
from workers.stores.videovectors import VideoHits

log = logging.getLogger(__name__)

__all__ = ["DNS_GEOMETRY", "StoredDnsLibrary", "enabled", "forget_video", "missing_weights", "represent",
           "save_representation"]


def missing_weights(settings: Settings) -> list[WeightFile]:
    """The weight files the configured student needs that are not in the weights folder."""
    return [f for f in required_files(settings.dns.student) if not (settings.weights_dir / f.name).is_file()]


def enabled(settings: Settings) -> bool:
    """DnS is switched on. Missing weight files then fail the DnS work with an error naming each file
    (``WeightsMissing``) rather than being skipped without a word."""
    return settings.dns.enabled


def shares_decode(settings: Settings) -> bool:
    """The DnS frames come from the ingest's own decode when both sample at the students' rate."""
    return abs(settings.decode.fps - DNS_FPS) < 1e-9


def fine_key(video_id: str, student: str, sha256: str) -> str:
    """Object key of a video's fine index; per content, like the frame matrix, so a late run for replaced
    bytes can never overwrite the fine index of the new bytes."""
    return f"videos/dns_{student}/{video_id}/{sha256[:16]}.npy"


def save_representation(res: resources.Resources, s: Session, video_id: str, rep: DnsRepresentation,
                        sha256: str) -> None:
    """Store a video's DnS outputs inside the caller's transaction, which holds the video's lock."""
    cfg = res.settings
    previous = dns_db.get_video_dns(s, video_id)
    stale = (previous.fine_bucket, previous.fine_key) if previous else None
    stored, fine_dtype = pack_fine(rep.fine, cfg.dns.student)
    key = fine_key(video_id, cfg.dns.student, sha256)
    save_matrix(res.objects, cfg.s3.matrices_bucket, key, stored)
    dns_db.save_video_dns(s, video_id, student=cfg.dns.student, selector_stat=rep.selector_stat,
                          fine_bucket=cfg.s3.matrices_bucket, fine_key=key, fine_dtype=fine_dtype, frames=rep.frames)
    res.video_index.upsert(video_id, rep.coarse)
    if stale and stale != (cfg.s3.matrices_bucket, key):
        res.objects.remove(*stale)


def forget_video(res: resources.Resources, s: Session, video_id: str) -> None:
    """Drop a video's coarse vector and fine object, inside the caller's transaction (the row cascades)."""
    row = dns_db.get_video_dns(s, video_id)
    if res.video_index.exists():
        res.video_index.delete(video_id)
    if row is not None:
        res.objects.remove(row.fine_bucket, row.fine_key)


def represent(res: resources.Resources, fetch: Callable[[Path], ObjectInfo], name: str) -> EmbeddedObject:
    """A decode of its own at the students' 1 fps, for the DnS representation (``.video.dns``) of an object
    whose frames were not decoded at that rate (backfill, or ``COPYCAT_DECODE__FPS`` other than 1)."""
    cfg = res.settings
    return embed_object(fetch, res.embedder, replace(res.decode_options, fps=DNS_FPS), scratch_dir=cfg.scratch_dir,
                        label=name, dns=res.dns_models, dns_geometry=DNS_GEOMETRY)


@shared_task(name=queue.BACKFILL_SIGNAL, base=EnrichmentTask, **TASK_OPTIONS)
def index_video_dns(self: EnrichmentTask, signal: str, video_id: str) -> dict[str, Any]:
    """Compute and store the DnS outputs of an indexed video (one indexed before DnS was switched on)."""
    res = resources.current()
    cfg = res.settings
    if not enabled(cfg):
        return {"video_id": video_id, "skipped": "dns disabled"}
    with session() as s:
        video = videos.get_video(s, video_id)
        if video is None or video.status != VideoStatus.INDEXED or video.sha256 is None:
            log.info("video %s vanished or is not indexed; no DnS representation", video_id)
            return {"video_id": video_id, "skipped": "no video"}
        bucket, key, name, sha256 = video.bucket, video.key, video.name, video.sha256
    embedded = represent(res, lambda dest: res.objects.get_file(bucket, key, dest), name)
    rep = embedded.video.dns
    assert rep is not None
    with session() as s:
        row = videos.lock_video(s, video_id)
        if row is None or row.sha256 != embedded.sha256 or row.sha256 != sha256:
            log.info("video %s was replaced or deleted while its DnS representation was computed", video_id)
            return {"video_id": video_id, "skipped": "superseded"}
        save_representation(res, s, video_id, rep, embedded.sha256)
        videos.add_timing(s, video_id, "dns", embedded.video.timings.get("dns_embed", 0.0))
    log.info("video %s (%s): DnS %s representation of %d frames", video_id, name, cfg.dns.student, rep.frames)
    return {"video_id": video_id, "frames": rep.frames, "student": cfg.dns.student}


class StoredDnsLibrary:
    """``workers.query.DnsLibrary`` over Milvus (coarse vectors), the database and the object store."""

    def __init__(self, res: resources.Resources) -> None:
        self.res = res
        self.student = res.settings.dns.student
        self._rows: dict[str, tuple[float, str, str, str]] = {}

    def search(self, coarse: np.ndarray, limit: int) -> VideoHits:
        return self.res.video_index.search(coarse, limit)

    def coarse(self, video_ids: list[str]) -> Mapping[str, np.ndarray]:
        return self.res.video_index.get(video_ids)

    def selector_stats(self, video_ids: list[str]) -> Mapping[str, float]:
        with session() as s:
            rows = dns_db.rows_for(s, video_ids, self.student)
            self._rows.update({vid: (r.selector_stat, r.fine_bucket, r.fine_key, r.fine_dtype)
                               for vid, r in rows.items()})
        return {vid: self._rows[vid][0] for vid in video_ids if vid in self._rows}

    def fine(self, video_id: str) -> np.ndarray:
        _, bucket, key, fine_dtype = self._rows[video_id]
        return unpack_fine(load_matrix(self.res.objects, bucket, key), fine_dtype)
