"""DnS (Distill-and-Select) stage: video-level vectors at ingest, selector-driven re-ranking at query time.

``copycat.dns.index`` (queue ``embed``, where the models run): decode an indexed upload at 1 fps with the
reference preprocessing, store its coarse vector in Milvus (one row per video), its fine index next to the
frame matrix and its selector statistic in ``video_dns``.

``dns_rerank`` (called by the query task): coarse video-level search for candidates, selector, fine
re-scoring of a budget of them, temporal localisation of DnS candidates the frame search missed, and the
final DnS score of every match as ``Match.video_similarity``.

Everything is off unless ``COPYCAT_DNS__ENABLED=true`` and the weights are in ``COPYCAT_DNS__WEIGHTS_DIR``
(or ``COPYCAT_DNS__ALLOW_RANDOM_WEIGHTS=true``, for tests only).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import time
from collections.abc import Callable, Collection
from functools import lru_cache
from typing import Any

import numpy as np
from celery import shared_task

from db import dns as dns_db
from db import jobs, videos
from db.models import VideoStatus
from db.session import session_scope
from tasks import context
from tasks.base import TASK_OPTIONS, EnrichmentTask
from workers.decode import probe, sample_frames
from workers.dns.video import (
    DNS_FPS,
    DNS_GEOMETRY,
    DnsModels,
    DnsRepresentation,
    RankedVideo,
    load_dns_models,
    pack_fine,
    required_files,
    rerank,
    unpack_fine,
)
from workers.dns.weights import WeightFile
from workers.pipeline import match_query
from workers.stores.objects import load_matrix, save_matrix
from workers.stores.vectors import SearchHits
from workers.stores.videovectors import VideoVectorIndex
from workers.types import Match

log = logging.getLogger(__name__)

COARSE_MODEL = "dns_cg_student"
COARSE_DIM = 1024


def missing_weights() -> list[WeightFile]:
    """The weight files the configured student needs that are not in the weights folder."""
    cfg = context.settings()
    return [f for f in required_files(cfg.dns.student) if not (cfg.weights_dir / f.name).is_file()]


def enabled() -> bool:
    """DnS is switched on. Missing weight files then fail the DnS work with an error naming each file
    (``WeightsMissing``) rather than being skipped without a word."""
    return context.settings().dns.enabled


def fine_key(video_id: str, student: str) -> str:
    """Object key of a video's fine index, next to its frame matrix (``videos/<model>/<id>.npy``)."""
    return f"videos/dns_{student}/{video_id}.npy"


def models() -> DnsModels:
    """The DnS networks of the configured student, loaded once per process (and per settings)."""
    cfg = context.settings()
    device = None if cfg.embed.device == "auto" else cfg.embed.device
    return _load_models(str(cfg.weights_dir), cfg.dns.student, cfg.dns.allow_random_weights, device,
                        cfg.embed.batch_size)


@lru_cache(maxsize=1)
def _load_models(weights_dir: str, student: str, allow_random: bool, device: str | None,
                 batch_size: int) -> DnsModels:
    started = time.perf_counter()
    loaded = load_dns_models(weights_dir, student, allow_random=allow_random, device=device, batch_size=batch_size)
    log.info("DnS models (%s) loaded from %s on %s in %.1f s", student, weights_dir, loaded.device,
             time.perf_counter() - started)
    return loaded


_index_slot: dict[tuple[str, str, str], VideoVectorIndex] = {}


def video_vectors() -> VideoVectorIndex:
    """The Milvus collection of coarse vectors (``<collection_prefix>_dns_cg_student``), one per process."""
    cfg = context.settings()
    m = cfg.milvus
    key = (cfg.milvus_uri, m.token, m.collection_prefix)
    if key not in _index_slot:
        _close_index()
        if "://" not in cfg.milvus_uri:
            cfg.home.mkdir(parents=True, exist_ok=True)
        _index_slot[key] = VideoVectorIndex(cfg.milvus_uri, COARSE_MODEL, COARSE_DIM, token=m.token,
                                            prefix=m.collection_prefix, index_type=m.index_type, hnsw_m=m.hnsw_m,
                                            hnsw_ef_construction=m.hnsw_ef_construction, search_ef=m.search_ef)
    return _index_slot[key]


def reset() -> None:
    """Close the coarse-vector client and forget the loaded models (tests, or after the settings change)."""
    _close_index()
    _load_models.cache_clear()


def _close_index() -> None:
    for index in _index_slot.values():
        index.close()
    _index_slot.clear()


def represent_object(bucket: str, key: str, name: str) -> DnsRepresentation:
    """Download an object to scratch space and compute its DnS representation (frames streamed to the model)."""
    cfg = context.settings()
    with context.scratch_file(name) as path:
        context.objects().get_file(bucket, key, path)
        info = probe(path, name, cfg.decode.limits())
        chunks = sample_frames(path, info, DNS_GEOMETRY, fps=DNS_FPS, chunk_frames=cfg.decode.chunk_frames,
                               timeout_s=cfg.decode.timeout_s, max_errors=cfg.decode.max_errors,
                               max_duration_s=cfg.decode.max_duration_s, label=name)
        return models().represent(chunks)


@shared_task(name="copycat.dns.index", base=EnrichmentTask, **TASK_OPTIONS)
def index_video_dns(self: EnrichmentTask, video_id: str) -> dict[str, Any]:
    """Compute and store one video's DnS outputs: coarse vector (Milvus), fine index (S3), selector stat (DB)."""
    cfg, store = context.settings(), context.objects()
    if not cfg.dns.enabled:
        return {"video_id": video_id, "skipped": "dns disabled"}
    with session_scope(context.engine()) as session:
        video = videos.get_video(session, video_id)
        if video is None or video.status == VideoStatus.FAILED:
            log.info("video %s vanished or failed; no DnS representation", video_id)
            return {"video_id": video_id, "skipped": "no video"}
        bucket, key, name = video.bucket, video.key, video.name
        previous = dns_db.get_video_dns(session, video_id)
        stale = (previous.fine_bucket, previous.fine_key) if previous else None
    tick = time.perf_counter()
    rep = represent_object(bucket, key, name)
    stored, fine_dtype = pack_fine(rep.fine, cfg.dns.student)
    key_out = fine_key(video_id, cfg.dns.student)
    save_matrix(store, cfg.s3.matrices_bucket, key_out, stored)
    with session_scope(context.engine()) as session:
        if videos.get_video(session, video_id) is None:  # deleted while we worked
            store.remove(cfg.s3.matrices_bucket, key_out)
            return {"video_id": video_id, "skipped": "no video"}
        dns_db.save_video_dns(session, video_id, student=cfg.dns.student, selector_stat=rep.selector_stat,
                              fine_bucket=cfg.s3.matrices_bucket, fine_key=key_out, fine_dtype=fine_dtype,
                              frames=rep.frames)
        videos.add_timing(session, video_id, "dns", time.perf_counter() - tick)
    video_vectors().upsert(video_id, rep.coarse)
    if stale and stale != (cfg.s3.matrices_bucket, key_out):
        store.remove(*stale)
    log.info("video %s (%s): DnS %s representation of %d frames", video_id, name, cfg.dns.student, rep.frames)
    return {"video_id": video_id, "frames": rep.frames, "student": cfg.dns.student}


def forget_video(video_id: str) -> None:
    """Drop a video's coarse vector and fine object; call before its row is deleted (the DB row cascades)."""
    with session_scope(context.engine()) as session:
        row = dns_db.get_video_dns(session, video_id)
        fine = (row.fine_bucket, row.fine_key) if row else None
    index = video_vectors()
    if index.exists():
        index.delete(video_id)
    if fine:
        context.objects().remove(*fine)


def dns_rerank(job_id: str, matches: list[Match], *, query: np.ndarray, fps: float,
               load_reference: Callable[[str], np.ndarray], top_k: int, min_score: float,
               exclude: Collection[str] = frozenset(), timings: dict[str, float] | None = None) -> list[Match]:
    """The DnS stage of query ``job_id``: ``matches`` (from the frame search) with ``video_similarity`` set.

    Returns ``matches`` unchanged when DnS is off. Otherwise: the query's DnS representation (its video is
    decoded again at 1 fps), the ``coarse_top_k`` nearest coarse vectors plus the matched videos as
    candidates, selector probabilities, fine re-scoring of ``floor(rerank_percentage * N)`` of them, and the
    final DnS score of each as ``video_similarity``. DnS candidates among the best ``top_k`` that the frame
    search missed are localised against ``query`` [Tq, D] (frame descriptors) with ``load_reference`` and
    added when they have segments scoring ``min_score`` or more. Sorted by match score as before.
    """
    if not enabled():
        return matches
    cfg = context.settings()
    timings = timings if timings is not None else {}
    with session_scope(context.engine()) as session:
        job = jobs.get_job(session, job_id)
        if job is None:
            raise LookupError(f"query job {job_id} is not in the database")
        bucket, key, name = job.bucket, job.key, job.name
    tick = time.perf_counter()
    rep = represent_object(bucket, key, name)
    timings["dns_embed"] = time.perf_counter() - tick

    ranked = rank_library(rep, [m.video_id for m in matches], exclude=exclude, timings=timings)
    similarity = {r.video_id: r.score for r in ranked}
    result = [dataclasses.replace(m, video_similarity=similarity.get(m.video_id)) for m in matches]

    tick = time.perf_counter()
    found = {m.video_id for m in matches}
    missed = [c for c in ranked[:top_k] if c.video_id not in found]
    extra = localise_candidates(missed, query=query, fps=fps, load_reference=load_reference, min_score=min_score)
    timings["dns_localise"] = time.perf_counter() - tick
    result = list(heapq.merge(result, extra, key=lambda m: -round(m.score, 3)))
    log.info("query job %s: DnS ranked %d candidates, %d re-scored by %s", job_id, len(ranked),
             sum(r.reranked for r in ranked), cfg.dns.student)
    return result


def localise_candidates(candidates: list[RankedVideo], *, query: np.ndarray, fps: float,
                        load_reference: Callable[[str], np.ndarray], min_score: float) -> list[Match]:
    """Temporal localisation "as before" of DnS candidates: ``match_query`` over exactly these videos.

    The frame search is replaced by one hit per candidate, so the localiser, the match score, the
    ``min_score`` cut and the ordering are the query pipeline's own. ``video_similarity`` = the DnS score.
    """
    if not candidates:
        return []
    n = len(candidates)
    hits = SearchHits(np.zeros(n, np.int32), np.array([c.video_id for c in candidates], dtype=object),
                      np.zeros(n, np.int32), np.array([c.score for c in candidates], np.float32))
    similarity = {c.video_id: c.score for c in candidates}
    found = match_query(query, fps=fps, search=lambda _vectors, _limit: hits, load_reference=load_reference,
                        localizer=context.localizer(), search_limit=1, top_k=n, reduce="max",
                        min_score=min_score, timings={})
    return [dataclasses.replace(m, video_similarity=similarity[m.video_id]) for m in found]


def rank_library(rep: DnsRepresentation, also: list[str], *, exclude: Collection[str] = frozenset(),
                 timings: dict[str, float] | None = None) -> list[RankedVideo]:
    """DnS ranking of the library for a query representation: coarse search (+ the ``also`` videos), selector,
    fine re-scoring of the budget. Best first."""
    cfg, store, dns_models = context.settings(), context.objects(), models()
    timings = timings if timings is not None else {}
    index = video_vectors()

    tick = time.perf_counter()
    hits = index.search(rep.coarse, cfg.dns.coarse_top_k)
    coarse = {vid: float(s) for vid, s in zip(hits.video_id, hits.score, strict=True) if vid not in exclude}
    extra = [vid for vid in also if vid not in coarse and vid not in exclude]
    coarse |= {vid: float(vec @ rep.coarse) for vid, vec in index.get(extra).items()}
    timings["dns_search"] = time.perf_counter() - tick

    tick = time.perf_counter()
    candidates = list(coarse)
    with session_scope(context.engine()) as session:
        rows = {vid: (r.selector_stat, r.fine_bucket, r.fine_key, r.fine_dtype)
                for vid, r in dns_db.rows_for(session, candidates, cfg.dns.student).items()}
    have_row = np.array([vid in rows for vid in candidates], bool)
    stats = np.array([rows[vid][0] if vid in rows else 0.0 for vid in candidates], np.float32)
    sims = np.array([coarse[vid] for vid in candidates], np.float32)
    probabilities = dns_models.selector_probability(rep.selector_stat, stats, sims).astype(np.float64)
    probabilities[~have_row] = np.nan
    timings["dns_select"] = time.perf_counter() - tick

    def fine(video_id: str) -> float:
        _, bucket, key, fine_dtype = rows[video_id]
        target = unpack_fine(load_matrix(store, bucket, key), fine_dtype)
        return dns_models.fine_similarity(rep.fine, target)

    tick = time.perf_counter()
    ranked = rerank(candidates, sims, probabilities, fine, cfg.dns.rerank_percentage)
    timings["dns_fine"] = time.perf_counter() - tick
    return ranked
