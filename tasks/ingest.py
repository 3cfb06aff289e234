"""Ingest tasks: an uploaded video becomes frame vectors in Milvus and a frame matrix in object storage.

``copycat.ingest.embed`` (queue ``embed``, next to the model): download, decode + embed, store the matrix.
``copycat.ingest.index`` (queue ``index``): replace the video's vectors in Milvus, mark it ``indexed``.
``copycat.ingest.remove`` (queue ``index``): the object was deleted; drop its vectors, matrix and row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
from celery import shared_task

from db import videos
from db.models import VideoStatus
from db.session import advisory_lock, session_scope
from tasks import context, dns
from tasks.base import TASK_OPTIONS, VideoTask
from workers.errors import InputError, ModelMismatch
from workers.pipeline import EmbeddedVideo, ProgressFn, embed_crops, embed_file
from workers.stores.objects import load_matrix, save_matrix, sha256_file
from workers.types import VideoInfo

log = logging.getLogger(__name__)

# A fresh message for a video in these states is a duplicate (re-uploads and retries reset it to pending).
DONE_WITH_EMBEDDING = (VideoStatus.INDEXING, VideoStatus.INDEXED, VideoStatus.FAILED)

# Set by the CLI in embedded mode to draw a progress bar while a video is embedded in-process.
progress_hook: ContextVar[ProgressFn | None] = ContextVar("progress_hook", default=None)


def enqueue_ingest(video_id: str, name: str) -> None:
    """Queue the ingest of a registered video; Flower shows the video's name next to its id."""
    embed_video.apply_async(args=[video_id], argsrepr=_describe(video_id, name))


def enqueue_remove(video_id: str, name: str) -> None:
    remove_video.apply_async(args=[video_id], argsrepr=_describe(video_id, name))


def _describe(object_id: str, name: str) -> str:
    return f"({object_id!r}, name={name!r})"


def matrix_key(video_id: str, model: str, sha256: str) -> str:
    """Each content gets its own key, so a late run for replaced bytes can never overwrite the new matrix."""
    return f"videos/{model}/{video_id}/{sha256[:16]}.npy"


@shared_task(name="copycat.ingest.embed", base=VideoTask, **TASK_OPTIONS)
def embed_video(self: VideoTask, video_id: str) -> dict[str, Any]:
    """Decode and embed one uploaded video, store its frame matrix, then queue its indexing.

    The object may be replaced or deleted while this runs; the row's ETag tells. A run whose bytes are no
    longer the registered ones drops its result (the newer upload has its own run), also when it failed.
    """
    cfg, store, model = context.settings(), context.objects(), context.embedder()
    with session_scope(context.engine()) as session:
        current = videos.get_video(session, video_id)
        if current is None:
            log.info("video %s was deleted before its ingest ran; nothing to do", video_id)
            return {"video_id": video_id, "frames": 0}
        if current.status in DONE_WITH_EMBEDDING and not self.request.retries:
            log.info("video %s is already %s; duplicate ingest message ignored", video_id, current.status)
            return {"video_id": video_id, "frames": current.frame_count or 0}
        video = videos.set_status(session, video_id, VideoStatus.DECODING, model=model.name, dim=model.dim,
                                  failure_code=None, failure_detail=None)
        video.attempts += 1
        bucket, key, name, registered_etag = video.bucket, video.key, video.name, video.etag
    try:
        embedded = embed_object(bucket, key, name, on_probe=lambda info: _mark_embedding(video_id, info))
    except InputError:
        if _superseded(video_id, registered_etag):
            log.info("video %s was replaced or deleted while a failing run read it; dropping the failure", video_id)
            return {"video_id": video_id, "superseded": True}
        raise
    key_out = matrix_key(video_id, model.name, embedded.sha256)
    tick = time.perf_counter()
    save_matrix(store, cfg.s3.matrices_bucket, key_out, embedded.features.astype(cfg.embed.matrix_dtype))
    embedded.timings["store_matrix"] = round(time.perf_counter() - tick, 4)
    with session_scope(context.engine()) as session:
        advisory_lock(session, f"video:{video_id}")
        row = videos.get_video(session, video_id)
        current_etag = row.etag if row is not None else None
        previous = (row.matrix_bucket, row.matrix_key) if row is not None and row.matrix_key else None
        if row is not None and current_etag == embedded.etag:
            videos.set_status(session, video_id, VideoStatus.INDEXING, size=embedded.size, etag=embedded.etag,
                              sha256=embedded.sha256, frame_count=embedded.features.shape[0], fps=embedded.fps,
                              matrix_bucket=cfg.s3.matrices_bucket, matrix_key=key_out,
                              matrix_dtype=cfg.embed.matrix_dtype, timings=embedded.timings)
    if current_etag != embedded.etag:
        store.remove(cfg.s3.matrices_bucket, key_out)
        log.info("video %s was replaced or deleted while it was embedded; result dropped", video_id)
        return {"video_id": video_id, "superseded": True}
    if previous and previous != (cfg.s3.matrices_bucket, key_out):
        store.remove(*previous)
    index_video.apply_async(args=[video_id], argsrepr=_describe(video_id, name))
    log.info("video %s (%s): %d frames embedded with %s in %.1f s", video_id, name, embedded.features.shape[0],
             model.name, sum(embedded.timings.values()))
    return {"video_id": video_id, "frames": int(embedded.features.shape[0])}


def _superseded(video_id: str, etag: str | None) -> bool:
    with session_scope(context.engine()) as session:
        row = videos.get_video(session, video_id)
        return row is None or row.etag != etag


@dataclass
class EmbeddedObject(EmbeddedVideo):
    """An embedded video from the object store, with what identifies the bytes that were read."""

    size: int = 0
    etag: str = ""
    sha256: str = ""
    crops: np.ndarray | None = None  # float32 [grid², T, D] when tiles were asked for


def embed_object(bucket: str, key: str, name: str, on_probe: Callable[[VideoInfo], None],
                 crop_grid: int = 1) -> EmbeddedObject:
    """Download an object to scratch space, decode + embed it with the configured model, clean up.

    With ``crop_grid`` > 1 the frames' tiles are embedded too (``workers.pipeline.embed_crops``).
    """
    cfg = context.settings()
    decode = {"fps": cfg.decode.fps, "chunk_frames": cfg.decode.chunk_frames, "timeout_s": cfg.decode.timeout_s,
              "max_errors": cfg.decode.max_errors, "max_duration_s": cfg.decode.max_duration_s, "label": name,
              "limits": cfg.decode.limits()}
    started = time.perf_counter()
    with context.scratch_file(name) as path:
        obj = context.objects().get_file(bucket, key, path)
        downloaded = time.perf_counter() - started
        sha256 = sha256_file(path)
        result = embed_file(path, context.embedder(), on_probe=on_probe, progress=progress_hook.get(), **decode)
        tick = time.perf_counter()
        crops = embed_crops(path, context.embedder(), crop_grid, **decode) if crop_grid > 1 else None
        crop_s = time.perf_counter() - tick
    timings = {"download": round(downloaded, 4), **result.timings}
    if crops is not None:
        timings["embed_crops"] = round(crop_s, 4)
    return EmbeddedObject(result.info, result.features, result.fps, timings, size=obj.size, etag=obj.etag,
                          sha256=sha256, crops=crops)


@shared_task(name="copycat.ingest.index", base=VideoTask, **TASK_OPTIONS)
def index_video(self: VideoTask, video_id: str) -> dict[str, Any]:
    """Make Milvus hold exactly this video's frame vectors, then mark it indexed.

    Runs under the video's database lock, which ``remove_video`` also takes: vectors are written only
    for the row's current matrix and only while the row exists, so no late run can leave stale vectors.
    """
    index = context.vectors()
    tick = time.perf_counter()
    with session_scope(context.engine()) as session:
        advisory_lock(session, f"video:{video_id}")
        video = videos.get_video(session, video_id)
        if video is None or video.matrix_key is None:
            log.info("video %s vanished or has no matrix; nothing to index", video_id)
            return {"video_id": video_id, "vectors": 0}
        if video.model != index.model:
            raise ModelMismatch(f"video {video.name} was embedded with {video.model!r} but the index uses "
                                f"{index.model!r}; re-ingest it with the configured model")
        matrix = load_matrix(context.objects(), video.matrix_bucket, video.matrix_key).astype(np.float32)
        count = index.replace_video(video_id, matrix)
        videos.add_timing(session, video_id, "index", time.perf_counter() - tick)
        videos.set_status(session, video_id, VideoStatus.INDEXED)
        name = video.name
    if dns.enabled():
        dns.index_video_dns.apply_async(args=[video_id], argsrepr=_describe(video_id, name))
    return {"video_id": video_id, "vectors": count}


@shared_task(name="copycat.ingest.remove", base=VideoTask, **TASK_OPTIONS)
def remove_video(self: VideoTask, video_id: str) -> dict[str, Any]:
    """Forget a deleted upload: its row first (under the video's lock), then its vectors and objects.

    Nothing is removed when the object is back in the bucket (deleted and uploaded again, or listed by a
    sweep just before it was uploaded): the upload's own registration handles it.
    """
    with session_scope(context.engine()) as session:
        video = videos.get_video(session, video_id)
        if video is None:
            return {"video_id": video_id, "removed": False}
        bucket, key = video.bucket, video.key
    if context.objects().stat(bucket, key) is not None:
        log.info("video %s: s3://%s/%s exists again; not removed", video_id, bucket, key)
        return {"video_id": video_id, "removed": False}
    dns.forget_video(video_id)
    with session_scope(context.engine()) as session:
        advisory_lock(session, f"video:{video_id}")
        video = videos.get_video(session, video_id)
        matrix = (video.matrix_bucket, video.matrix_key) if video and video.matrix_key else None
        removed = videos.delete_video(session, video_id)
    context.vectors().delete_video(video_id)
    if matrix:
        context.objects().remove(*matrix)
    return {"video_id": video_id, "removed": removed}


def _mark_embedding(video_id: str, info: VideoInfo) -> None:
    with session_scope(context.engine()) as session:
        videos.set_status(session, video_id, VideoStatus.EMBEDDING, duration=info.duration, width=info.width,
                          height=info.height, source_fps=info.fps, codec=info.codec)
