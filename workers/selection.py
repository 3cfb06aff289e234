"""Candidate selection: which indexed videos the query's frame-level nearest-neighbour hits point to.

This is towhee's ``select_video`` (spec §4): group the hits of all query frames by the video that owns the hit
frame, reduce each group's scores to one number, and keep the ``top_k`` videos with the highest aggregate.
Unlike towhee the result carries the aggregate (``Candidate.score``), ties are broken by video id, and videos
can be excluded (typically the query itself).
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np

from workers.types import Candidate

REDUCERS = ("sum", "mean", "max", "min", "count", "row_max")
"""How a video's hit scores become one number; ``count`` is the number of hits, ``row_max`` the sum over
query rows of the video's best hit in each row (needs ``query_rows``): a video of static footage that fills
every one of a row's hits counts once per row, like a video with one matching frame."""


def select_candidates(
    video_ids: np.ndarray,
    scores: np.ndarray,
    reduce: str = "sum",
    top_k: int | None = None,
    exclude: Collection[str] = (),
    query_rows: np.ndarray | None = None,
) -> list[Candidate]:
    """Aggregate parallel hit arrays per video and rank the videos.

    Args:
        video_ids: str or int [H], the video owning each hit (repeats).
        scores: float [H], each hit's similarity (higher is better).
        reduce: one of ``REDUCERS``.
        top_k: keep at most this many videos; None keeps all.
        exclude: video ids (as strings) to leave out.
        query_rows: int [H], the query row of each hit (``SearchHits.query_frame``); ``row_max`` needs it.

    Returns:
        Candidates by aggregate score, descending; equal scores in ascending video id order (numeric for int
        ids). ``Candidate.video_id`` is ``str(video_id)``.
    """
    ids = np.asarray(video_ids)
    values = np.asarray(scores, dtype=np.float64)
    if ids.ndim != 1 or ids.shape != values.shape:
        raise ValueError(f"video_ids and scores must be parallel 1-D arrays, got {ids.shape} and {values.shape}")
    if reduce not in REDUCERS:
        raise ValueError(f"unknown reduce {reduce!r}; expected one of {', '.join(REDUCERS)}")
    if top_k is not None and top_k < 0:
        raise ValueError(f"top_k must be >= 0 or None, got {top_k}")
    if reduce == "row_max" and (query_rows is None or np.shape(query_rows) != ids.shape):
        raise ValueError("reduce 'row_max' needs query_rows parallel to video_ids")
    if ids.size == 0:
        return []

    videos, group = np.unique(ids, return_inverse=True)  # videos sorted ascending
    if reduce == "row_max":
        _, row = np.unique(np.asarray(query_rows), return_inverse=True)
        best = np.full((row.max() + 1, len(videos)), -np.inf)
        np.maximum.at(best, (row, group), values)
        aggregate = np.where(np.isfinite(best), best, 0.0).sum(axis=0)
    elif reduce in ("max", "min"):
        order = np.argsort(group, kind="stable")
        starts = np.searchsorted(group[order], np.arange(len(videos)))
        aggregate = (np.maximum if reduce == "max" else np.minimum).reduceat(values[order], starts)
    else:
        count = np.bincount(group, minlength=len(videos)).astype(np.float64)
        total = np.bincount(group, weights=values, minlength=len(videos))
        aggregate = {"sum": total, "mean": total / count, "count": count}[reduce]

    kept = np.arange(len(videos))
    if exclude:
        kept = kept[~np.isin(videos.astype(str), list(exclude))]
    ranked = kept[np.argsort(-aggregate[kept], kind="stable")][:top_k]
    return [
        Candidate(video_id=str(video), score=score)
        for video, score in zip(videos[ranked].tolist(), aggregate[ranked].tolist(), strict=True)
    ]
