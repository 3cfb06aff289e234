"""Query tasks: which indexed videos does a query video copy, and where.

``copycat.query.embed`` (queue ``embed``): decode + embed the query exactly as ingest does.
``copycat.query.match`` (queue ``query``): batched Milvus search, candidate selection, temporal
localisation against each candidate's frame matrix, results into the database.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from celery import shared_task

from db import jobs, videos
from db.models import VideoStatus
from db.session import session_scope
from tasks import context, dns
from tasks.base import TASK_OPTIONS, JobTask
from tasks.ingest import embed_object
from workers.errors import ModelMismatch, ObjectMissing
from workers.pipeline import match_query
from workers.stores.objects import load_matrix, save_matrix

log = logging.getLogger(__name__)


def enqueue_query(job_id: str, name: str) -> None:
    """Queue a query job; Flower shows the query's name next to the job id."""
    embed_query.apply_async(args=[job_id], argsrepr=f"({job_id!r}, name={name!r})")


def query_matrix_key(job_id: str, model: str) -> str:
    return f"queries/{model}/{job_id}.npy"


def default_params() -> dict[str, Any]:
    """The job parameters that the settings define; a job may override any of them."""
    cfg = context.settings()
    return {"top_k": cfg.select.top_k, "search_limit": cfg.select.search_limit, "reduce": cfg.select.reduce,
            "min_score": cfg.query.min_score, "exclude_self": cfg.query.exclude_self,
            "crop_grid": cfg.query.crop_grid}


@shared_task(name="copycat.query.embed", base=JobTask, **TASK_OPTIONS)
def embed_query(self: JobTask, job_id: str) -> dict[str, Any]:
    """Decode and embed the query video with the index's model, then queue the matching."""
    cfg, model = context.settings(), context.embedder()
    with session_scope(context.engine()) as session:
        job = jobs.start_job(session, job_id, model=model.name, timings={})
        bucket, key, name = job.bucket, job.key, job.name
        crop_grid = int({**default_params(), **(job.params or {})}["crop_grid"])
    embedded = embed_object(bucket, key, name, on_probe=lambda info: _record_duration(job_id, info.duration),
                            crop_grid=crop_grid)
    # [T, D], or [1 + grid², T, D] with the tiles as extra views of each frame.
    query = embedded.features if embedded.crops is None else np.concatenate([embedded.features[None],
                                                                            embedded.crops])
    key_out = query_matrix_key(job_id, model.name)
    save_matrix(context.objects(), cfg.s3.matrices_bucket, key_out, query.astype(np.float16))
    with session_scope(context.engine()) as session:
        jobs.update_job(session, job_id, sha256=embedded.sha256, frame_count=int(embedded.features.shape[0]),
                        matrix_key=key_out, timings=dict(embedded.timings))
    match_job.apply_async(args=[job_id], argsrepr=f"({job_id!r}, name={name!r})")
    return {"job_id": job_id, "frames": int(embedded.features.shape[0])}


@shared_task(name="copycat.query.match", base=JobTask, **TASK_OPTIONS)
def match_job(self: JobTask, job_id: str) -> dict[str, Any]:
    """Find and localise the copies of an embedded query; store matches and segments."""
    cfg, index, store = context.settings(), context.vectors(), context.objects()
    with session_scope(context.engine()) as session:
        job = jobs.get_job(session, job_id)
        if job is None or job.matrix_key is None:
            raise LookupError(f"query job {job_id} has no embedded query")
        if job.model != index.model:
            raise ModelMismatch(f"query was embedded with {job.model!r} but the index holds {index.model!r}")
        params = {**default_params(), **(job.params or {})}
        exclude = videos.ids_with_sha256(session, job.sha256) if params["exclude_self"] and job.sha256 else set()
        matrix_key, timings = job.matrix_key, dict(job.timings or {})
    query = load_matrix(store, cfg.s3.matrices_bucket, matrix_key).astype(np.float32)
    fps = cfg.decode.fps

    def load_reference(video_id: str) -> np.ndarray:
        """A candidate's frames; none when it was deleted, replaced or failed since it was indexed."""
        nothing = np.zeros((0, index.dim), np.float32)
        with session_scope(context.engine()) as session:
            video = videos.get_video(session, video_id)
        if video is None or video.status != VideoStatus.INDEXED or video.matrix_key is None:
            return nothing
        if video.model != index.model or video.fps != fps:
            raise ModelMismatch(f"reference {video.name} was indexed with {video.model} at {video.fps} fps; "
                                f"the query uses {index.model} at {fps} fps")
        try:
            return load_matrix(store, video.matrix_bucket, video.matrix_key)
        except ObjectMissing:  # removed between the row read and the object read
            return nothing

    stage_timings: dict[str, float] = {}
    matches = match_query(query, fps=fps, search=index.search, load_reference=load_reference,
                          localizer=context.localizer(), search_limit=int(params["search_limit"]),
                          top_k=int(params["top_k"]), reduce=str(params["reduce"]), exclude=exclude,
                          min_score=float(params["min_score"]), timings=stage_timings)
    matches = dns.dns_rerank(job_id, matches, query=query, fps=fps, load_reference=load_reference,
                             top_k=int(params["top_k"]), min_score=float(params["min_score"]), exclude=exclude,
                             timings=stage_timings)
    timings.update({k: round(v, 4) for k, v in stage_timings.items()})
    with session_scope(context.engine()) as session:
        names = {vid: v.name for vid, v in videos.videos_by_ids(session, [m.video_id for m in matches]).items()}
        jobs.update_job(session, job_id, timings=timings)
        jobs.finish_job(session, job_id, matches, names)
    log.info("query job %s: %d matches in %.2f s", job_id, len(matches), sum(stage_timings.values()))
    return {"job_id": job_id, "matches": len(matches)}


def _record_duration(job_id: str, duration: float) -> None:
    with session_scope(context.engine()) as session:
        jobs.update_job(session, job_id, duration=duration)
