"""Query tasks: which indexed videos does a query video copy, and where.

``copycat.query.embed`` (queue ``embed``): one decode of the query through every enabled signal with the
job's views (``workers.query.extract_query``); each signal keeps its evidence for the match.
``copycat.query.match`` (queue ``query``): ``workers.query.answer_query`` over the stored library, results
into the database.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from db import jobs, videos
from service import queue, resources
from service.queue import enqueue_match
from service.references import StoredReferences
from tasks.base import TASK_OPTIONS, JobTask, announce_job
from workers.errors import ModelMismatch, ObjectMissing
from workers.query import answer_query, extract_query

log = logging.getLogger(__name__)


@shared_task(name=queue.EMBED_QUERY, base=JobTask, **TASK_OPTIONS)
def embed_query(self: JobTask, job_id: str) -> dict[str, Any]:
    """Decode and embed the query video with the index's model (one decode), then queue the matching."""
    res = resources.current()
    job = self.start(job_id, res.embedder.name)
    if job is None:
        return {"job_id": job_id, "skipped": True}
    cfg, primary = res.settings, res.signals[0]
    with self.leased(job_id):
        done = extract_query(job_id, lambda: res.objects.read(job.bucket, job.key), label=job.name,
                             signals=res.signals, stores=res.stores, params=cfg.query_params(job.params),
                             options=res.decode_options, scratch_dir=cfg.scratch_dir, progress=self.reporter())
    frames = int(done.video.evidence[primary.name].features.shape[0])
    with res.session() as s:
        jobs.update_job(s, job_id, sha256=done.sha256, frame_count=frames, matrix_key=primary.query_key(job_id),
                        duration=done.video.info.duration, timings=dict(done.video.timings))
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
    with res.session() as s:
        job = jobs.get_job(s, job_id)
        if job is None or job.matrix_key is None:
            raise ObjectMissing(f"query job {job_id} has no embedded query (was it deleted?)")
        if job.model != res.embedder.name:
            raise ModelMismatch(f"query was embedded with {job.model!r} but the index holds {res.embedder.name!r}")
        params, timings = res.settings.query_params(job.params), dict(job.timings or {})
        exclude = videos.ids_with_sha256(s, job.sha256) if params.exclude_self and job.sha256 else set()
    evidence = load_evidence(res, job_id)
    result = answer_query(evidence, res.signals, stores=res.stores, references=StoredReferences(res), params=params,
                          exclude=exclude)
    with res.session() as s:
        names = {vid: v.name for vid, v in videos.videos_by_ids(s, [m.video_id for m in result.matches]).items()}
        jobs.update_job(s, job_id, timings={**timings, **result.timings})
        jobs.finish_job(s, job_id, result.matches, names)
    log.info("query job %s: %d matches in %.2f s", job_id, len(result.matches), sum(result.timings.values()))
    announce_job(job_id)
    return {"job_id": job_id, "matches": len(result.matches)}


def load_evidence(res: resources.Resources, job_id: str) -> dict[str, Any]:
    """Each enabled signal's evidence of the query; a signal switched on after the embed has none (skipped)."""
    evidence = {}
    for signal in res.signals:
        try:
            evidence[signal.name] = signal.load_query(res.stores, job_id)
        except ObjectMissing:
            if signal is res.signals[0]:
                raise
            log.info("query job %s: no %s evidence (switched on after the query was embedded); matched without it",
                     job_id, signal.name)
    return evidence
