"""Query tasks: which indexed videos does a query video copy, and where.

``copycat.query.embed`` (queue ``embed``): one decode of the query into every view the job needs (whole
frames, tiles, DnS frames), embedded exactly as ingest does; the views (and the DnS representation) are
stored for the match and for reports.
``copycat.query.match`` (queue ``query``): ``workers.query.answer_query`` over the stored library, results
into the database.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
from celery import shared_task

from db import jobs, videos
from service import queue, resources
from service.queue import enqueue_match
from service.resources import session
from tasks import dns
from tasks.base import TASK_OPTIONS, JobTask, announce_job
from tasks.ingest import embed
from workers.dns.representation import DnsRepresentation
from workers.errors import ModelMismatch, ObjectMissing
from workers.query import DnsStage, answer_query
from workers.stores.objects import load_arrays, load_matrix, save_arrays, save_matrix
from workers.types import SearchHits

log = logging.getLogger(__name__)


def query_matrix_key(job_id: str, model: str) -> str:
    return f"queries/{model}/{job_id}.npy"


def query_dns_key(job_id: str, student: str) -> str:
    return f"queries/dns_{student}/{job_id}.npz"


@shared_task(name=queue.EMBED_QUERY, base=JobTask, **TASK_OPTIONS)
def embed_query(self: JobTask, job_id: str) -> dict[str, Any]:
    """Decode and embed the query video with the index's model (one decode), then queue the matching."""
    res = resources.current()
    cfg = res.settings
    job = self.start(job_id, res.embedder.name)
    if job is None:
        return {"job_id": job_id, "skipped": True}
    params = cfg.query_params(job.params)
    with_dns = dns.enabled(cfg)
    with self.leased(job_id):
        embedded = embed(res, job.bucket, job.key, job.name, crop_grid=params.crop_grid, dns_on=with_dns,
                         extra_views=params.extra_views, progress=self.reporter())
        key = query_matrix_key(job_id, res.embedder.name)
        save_matrix(res.objects, cfg.s3.matrices_bucket, key, embedded.video.views.astype(cfg.embed.matrix_dtype))
        if embedded.video.dns is not None:
            rep = embedded.video.dns
            save_arrays(res.objects, cfg.s3.matrices_bucket, query_dns_key(job_id, cfg.dns.student),
                        coarse=rep.coarse, fine=rep.fine, selector_stat=np.float32(rep.selector_stat))
    frames = int(embedded.video.features.shape[0])
    with session() as s:
        jobs.update_job(s, job_id, sha256=embedded.sha256, frame_count=frames, matrix_key=key,
                        duration=embedded.video.info.duration, timings=dict(embedded.video.timings))
        jobs.release_lease(s, job_id)
    enqueue_match(res, job_id, job.name)
    return {"job_id": job_id, "frames": frames}


@shared_task(name=queue.MATCH_QUERY, base=JobTask, **TASK_OPTIONS)
def match_job(self: JobTask, job_id: str) -> dict[str, Any]:
    """Find and localise the copies of an embedded query; store matches and segments."""
    res = resources.current()
    if self.claim_match(job_id) is None:
        return {"job_id": job_id, "skipped": True}
    with self.leased(job_id):
        return _match(res, job_id)


def _match(res: resources.Resources, job_id: str) -> dict[str, Any]:
    cfg, index = res.settings, res.frame_index
    with session() as s:
        job = jobs.get_job(s, job_id)
        if job is None or job.matrix_key is None:
            raise ObjectMissing(f"query job {job_id} has no embedded query (was it deleted?)")
        if job.model != index.model:
            raise ModelMismatch(f"query was embedded with {job.model!r} but the index holds {index.model!r}")
        params = cfg.query_params(job.params)
        exclude = videos.ids_with_sha256(s, job.sha256) if params.exclude_self and job.sha256 else set()
    views = load_matrix(res.objects, cfg.s3.matrices_bucket, job.matrix_key).astype(np.float32)
    stage = None
    if dns.enabled(cfg):
        stored = load_arrays(res.objects, cfg.s3.matrices_bucket, query_dns_key(job_id, cfg.dns.student))
        rep = DnsRepresentation(stored["coarse"], stored["fine"], float(stored["selector_stat"]))
        stage = DnsStage(rep, res.dns_models, dns.StoredDnsLibrary(res), coarse_top_k=cfg.dns.coarse_top_k,
                         rerank_percentage=cfg.dns.rerank_percentage)
    result = answer_query(views, fps=cfg.decode.fps, library=StoredFrameLibrary(res), localiser=res.localiser,
                          params=params, exclude=exclude, dns=stage)
    with session() as s:
        names = {vid: v.name for vid, v in videos.videos_by_ids(s, [m.video_id for m in result.matches]).items()}
        jobs.update_job(s, job_id, timings={**(job.timings or {}), **result.timings})
        jobs.finish_job(s, job_id, result.matches, names)
    log.info("query job %s: %d matches in %.2f s", job_id, len(result.matches), sum(result.timings.values()))
    announce_job(job_id)
    return {"job_id": job_id, "matches": len(result.matches)}


class StoredFrameLibrary:
    """``workers.query.FrameLibrary`` over the frame collection, the database and the object store."""

    def __init__(self, res: resources.Resources) -> None:
        self.res = res
        self.fps = res.settings.decode.fps

    def search(self, vectors: np.ndarray, limit: int, *, exclude: Collection[str] = (),
               per_video: bool = False) -> SearchHits:
        return self.res.frame_index.search(vectors, limit, exclude=exclude, per_video=per_video)

    def searchable(self, video_ids: list[str]) -> Collection[str]:
        with session() as s:
            allowed = videos.searchable_ids(s, video_ids, model=self.res.frame_index.model, fps=self.fps)
        if len(allowed) < len(video_ids):
            log.info("%d of %d candidate videos skipped: not indexed (deleted, failed, re-indexing) or indexed "
                     "at another fps than %g (re-ingest them)", len(video_ids) - len(allowed), len(video_ids),
                     self.fps)
        return allowed

    def load(self, video_ids: list[str]) -> Mapping[str, np.ndarray]:
        """Matrices of the candidates, read in one database session; one removed meanwhile is left out."""
        with session() as s:
            rows = [(v.id, v.matrix_bucket, v.matrix_key) for v in videos.videos_by_ids(s, video_ids).values()
                    if v.matrix_key]
        matrices = {}
        for video_id, bucket, key in rows:
            try:
                matrices[video_id] = load_matrix(self.res.objects, bucket, key)
            except ObjectMissing:  # removed between the row read and the object read
                continue
        return matrices
