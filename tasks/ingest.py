"""Ingest tasks: an uploaded video becomes frame vectors in Milvus and a frame matrix in object storage.

``copycat.ingest.embed`` (queue ``embed``, next to the model): one run per upload: download, one decode
into every view (model frames, and DnS frames when DnS is on), embed, store the matrix, replace the
video's vectors, mark it ``indexed``. The matrix is read back only by a retry after a Milvus outage.
``copycat.ingest.remove`` (queue ``index``): the object was deleted; drop its vectors, matrix, copy
relations and row. An indexed video is announced (``video.indexed``) and, with
``COPYCAT_COPIES__ON_INGEST``, searched against the library (``copycat.copies.detect``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import numpy as np
from celery import shared_task

from db import copies, videos
from db.models import VideoStatus
from service import events, queue, resources
from service.queue import enqueue_backfill, enqueue_copy_detection
from service.resources import session
from tasks import dns
from tasks.base import TASK_OPTIONS, VideoTask, video_event
from workers.admission import check_file_size
from workers.dns.representation import DnsRepresentation
from workers.errors import InputError
from workers.pipeline import EmbeddedObject, ProgressFn, embed_object
from workers.stores.objects import ObjectInfo, load_matrix, save_matrix
from workers.views import ExtraView

log = logging.getLogger(__name__)

# Set by the CLI in embedded mode to draw a progress bar while a video is embedded in-process.
progress_hook: ContextVar[ProgressFn | None] = ContextVar("progress_hook", default=None)


def matrix_key(video_id: str, model: str, sha256: str) -> str:
    """Each content gets its own key, so a late run for replaced bytes can never overwrite the new matrix."""
    return f"videos/{model}/{video_id}/{sha256[:16]}.npy"


@shared_task(name=queue.INGEST, base=VideoTask, **TASK_OPTIONS)
def embed_video(self: VideoTask, video_id: str) -> dict[str, Any]:
    """Ingest one upload. The object may be replaced or deleted meanwhile: a run whose bytes are no longer
    the registered ones drops its result (the newer upload has its own run), also when it failed."""
    res = resources.current()
    video = self.claim(video_id, res.embedder.name, res.embedder.dim)
    if video is None:
        return {"video_id": video_id, "skipped": True}
    with self.leased(video_id):
        if video.status == VideoStatus.INDEXING:  # a retry after the matrix was stored: only vectors are left
            features = load_matrix(res.objects, video.matrix_bucket, video.matrix_key).astype(np.float32)
            return {"video_id": video_id, "frames": index_vectors(res, video_id, video.matrix_key, features)}
        try:
            embedded = embed(res, video.bucket, video.key, video.name, dns_on=dns.enabled(res.settings),
                             size=video.size,
                             progress=self.reporter(lambda: self.embedding(video_id), forward=progress_hook.get()))
        except InputError:
            if _superseded(video_id, video.etag):
                log.info("video %s was replaced or deleted while a failing run read it; failure dropped", video_id)
                return {"video_id": video_id, "superseded": True}
            raise
        key = store_matrix(res, video_id, embedded)
        if key is None:
            return {"video_id": video_id, "superseded": True}
        return {"video_id": video_id, "frames": index_vectors(res, video_id, key, embedded.video.features,
                                                              embedded.video.dns, embedded.sha256)}


def embed(res: resources.Resources, bucket: str, key: str, name: str, *, crop_grid: int = 1,
          extra_views: Sequence[ExtraView] = (), dns_on: bool = False, size: int | None = None,
          progress: ProgressFn | None = None) -> EmbeddedObject:
    """Decode + embed one object with the process's model (both jobs' first step), in one decode.

    An object whose registered ``size`` is over the file-size limit is refused before it is downloaded
    (probe checks the downloaded file again). The DnS students need frames at 1 fps: at another
    ``COPYCAT_DECODE__FPS`` their frames take a second decode of their own.
    """
    cfg = res.settings
    if size is not None:
        check_file_size(size, cfg.decode.limits(), name)

    def fetch(dest: Path) -> ObjectInfo:
        return res.objects.get_file(bucket, key, dest)

    shared = dns_on and dns.shares_decode(cfg)
    embedded = embed_object(None, res.embedder, res.decode_options, scratch_dir=cfg.scratch_dir, label=name,
                            crop_grid=crop_grid, extra_views=extra_views, dns=res.dns_models if shared else None,
                            dns_geometry=dns.DNS_GEOMETRY if shared else None, frame_filter=cfg.frame_filter(),
                            patterns=res.pattern_features, progress=progress,
                            stream=lambda: res.objects.read(bucket, key))
    if dns_on and not shared:
        embedded.video.dns = dns.represent(res, fetch, name).video.dns
    return embedded


def store_matrix(res: resources.Resources, video_id: str, embedded: EmbeddedObject) -> str | None:
    """Store the run's matrix and record it on the row (``indexing``), only for the registered bytes.

    Returns the matrix key, or None when the run was superseded (its matrix is then removed again).
    """
    cfg, store, features = res.settings, res.objects, embedded.video.features
    key = matrix_key(video_id, res.embedder.name, embedded.sha256)
    tick = time.perf_counter()
    save_matrix(store, cfg.s3.matrices_bucket, key, features.astype(cfg.embed.matrix_dtype))
    timings = {**embedded.video.timings, "store_matrix": round(time.perf_counter() - tick, 4)}
    with session() as s:
        row = videos.lock_video(s, video_id)
        current = row is not None and row.etag == embedded.source.etag
        previous = (row.matrix_bucket, row.matrix_key) if row is not None and row.matrix_key else None
        if current:
            videos.record_matrix(s, row, embedded.video.info, size=embedded.source.size, sha256=embedded.sha256,
                                 frame_count=int(features.shape[0]), fps=embedded.video.fps,
                                 matrix_bucket=cfg.s3.matrices_bucket, matrix_key=key,
                                 matrix_dtype=cfg.embed.matrix_dtype, timings=timings)
    if not current:
        store.remove(cfg.s3.matrices_bucket, key)
        log.info("video %s was replaced or deleted while it was embedded; result dropped", video_id)
        return None
    if previous and previous != (cfg.s3.matrices_bucket, key):
        store.remove(*previous)
    return key


def index_vectors(res: resources.Resources, video_id: str, key: str, features: np.ndarray,
                  representation: DnsRepresentation | None = None, sha256: str | None = None) -> int:
    """Make Milvus hold exactly this matrix's vectors (and the DnS outputs), then mark the video indexed.

    Runs under the video's lock, which ``remove_video`` also takes: vectors are written only for the row's
    current matrix and only while the row exists, so no late run can leave stale vectors. Returns the count.
    """
    with session() as s:
        row = videos.lock_video(s, video_id)
        if row is None or row.matrix_key != key:
            log.info("video %s was removed or re-ingested before its vectors were written; nothing to index",
                     video_id)
            return 0
        tick = time.perf_counter()
        count = res.frame_index.replace_video(video_id, features, known_frames=row.vector_frames)
        if representation is not None and sha256 is not None:
            dns.save_representation(res, s, video_id, representation, sha256)
        videos.add_timing(s, video_id, "index", time.perf_counter() - tick)
        copies.forget_video(s, video_id)  # they described the previous content; detection finds the new ones
        indexed = videos.set_status(s, video_id, VideoStatus.INDEXED, vector_count=count,
                                    vector_frames=int(features.shape[0]))
        name, data = row.name, video_event(indexed)
    if dns.enabled(res.settings) and representation is None:  # a retry: the run's DnS outputs were lost
        enqueue_backfill(res, "dns", video_id, name)
    log.info("video %s (%s): %d of %d frames informative, indexed with %s", video_id, name, count,
             features.shape[0], res.embedder.name)
    events.emit(res, "video.indexed", data)
    if res.settings.copies.on_ingest:
        enqueue_copy_detection(res, video_id, name)
    return count


@shared_task(name=queue.REMOVE, base=VideoTask, **TASK_OPTIONS)
def remove_video(self: VideoTask, video_id: str) -> dict[str, Any]:
    """Forget a deleted upload: vectors and objects first, then its row, all under the video's lock.

    The row goes last: if Milvus or the store fails, the retry still finds the row and finishes the job,
    so no vector is ever orphaned. Nothing is removed when the object is back in the bucket (deleted and
    uploaded again, or listed by a sweep just before it was uploaded): the upload's registration handles it.
    """
    res = resources.current()
    with session() as s:
        video = videos.get_video(s, video_id)
        if video is None:
            return {"video_id": video_id, "removed": False}
        bucket, key = video.bucket, video.key
    if res.objects.stat(bucket, key) is not None:
        log.info("video %s: s3://%s/%s exists again; not removed", video_id, bucket, key)
        return {"video_id": video_id, "removed": False}
    with session() as s:
        video = videos.lock_video(s, video_id)
        if video is None:
            return {"video_id": video_id, "removed": False}
        res.frame_index.delete_video(video_id)
        dns.forget_video(res, s, video_id)
        copies.forget_video(s, video_id)
        if video.matrix_key:
            res.objects.remove(video.matrix_bucket, video.matrix_key)
        removed = videos.delete_video(s, video_id)
    return {"video_id": video_id, "removed": removed}


def _superseded(video_id: str, etag: str | None) -> bool:
    with session() as s:
        row = videos.get_video(s, video_id)
        return row is None or row.etag != etag
