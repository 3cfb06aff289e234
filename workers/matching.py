"""Query matching for frame descriptors: one batched search, candidate selection, temporal localisation.

Storage enters only as callables (``search``, ``load_references``, ``searchable``), so matching runs in tests
over arrays (``workers.stores.memory.MemoryLibrary``) and in the product over Milvus and S3
(``workers.signals.frames``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Protocol

import numpy as np

from workers.localise import Localiser, query_coverage, video_score
from workers.selection import select_candidates
from workers.types import Match, QueryParams, SearchHits


class SearchFn(Protocol):
    """A frame search: ``search(vectors [N, D], limit, exclude=ids, per_video=bool) -> SearchHits``."""

    def __call__(self, vectors: np.ndarray, limit: int, *, exclude: Collection[str] = ...,
                 per_video: bool = ...) -> SearchHits: ...


MAX_SEARCH_ROUNDS = 3
"""Searches per query at most: the first, and one more for each round of unreportable videos found in hits."""


def match_query(query: np.ndarray, *, fps: float, search: SearchFn,
                load_references: Callable[[list[str]], Mapping[str, np.ndarray]], localiser: Localiser,
                params: QueryParams = QueryParams(), exclude: Collection[str] = frozenset(),
                searchable: Callable[[list[str]], Collection[str]] | None = None,
                timings: dict[str, float] | None = None) -> list[Match]:
    """Query frames [Tq, D] (or views [V, Tq, D]) -> matches whose video score reaches ``min_score``, best first.

    One batched search for every view of every frame (``search_reportable``: videos that may not be
    reported never take a hit slot), hits aggregated per video (``params.reduce``), the ``params.top_k``
    best candidates localised with ``localiser`` against their full frame matrices (one ``load_references``
    call for all of them).
    """
    timings = timings if timings is not None else {}
    tick = time.perf_counter()
    rows = query.reshape(-1, query.shape[-1])
    hits = search_reportable(search, rows[informative(rows)], params, exclude=exclude, searchable=searchable)
    timings["search"] = time.perf_counter() - tick

    tick = time.perf_counter()
    ranked = select_candidates(hits.video_id, hits.score, reduce=params.reduce, top_k=params.top_k,
                               exclude=set(exclude), query_rows=hits.query_frame)
    candidates = [c.video_id for c in ranked]
    timings["select"] = time.perf_counter() - tick

    tick = time.perf_counter()
    references = load_references(candidates)
    timings["load_candidates"] = time.perf_counter() - tick

    tick = time.perf_counter()
    matches = localise_candidates(query, candidates, references, fps=fps, localiser=localiser,
                                  min_score=params.min_score)
    timings["localise"] = time.perf_counter() - tick
    return matches


def search_reportable(search: SearchFn, rows: np.ndarray, params: QueryParams, *,
                      exclude: Collection[str] = frozenset(),
                      searchable: Callable[[list[str]], Collection[str]] | None = None) -> SearchHits:
    """Hits of ``rows`` [N, D] (``params.search_limit`` each) on videos a query may report.

    ``searchable`` (ids -> those that may be reported: indexed, same model and fps, not being removed) is
    asked about every video in the hits. Frames of the others (deleted, failed, being re-indexed) would
    hold hit slots that belong to real candidates, so they join ``exclude``, which the search filters out
    inside the index, and the search is repeated (at most ``MAX_SEARCH_ROUNDS`` searches; what the last
    one still returns of them is dropped).
    """
    blocked = set(exclude)
    for attempt in range(MAX_SEARCH_ROUNDS):
        hits = search(rows, params.search_limit, exclude=frozenset(blocked), per_video=params.per_video)
        if searchable is None:
            break
        found = list(dict.fromkeys(hits.video_id.tolist()))
        allowed = set(searchable(found)) if found else set()
        refused = {vid for vid in found if vid not in allowed}
        if not refused:
            break
        blocked |= refused
        if attempt == MAX_SEARCH_ROUNDS - 1:
            hits = hits.subset(~np.isin(hits.video_id, list(blocked)))
    return hits


def informative(features: np.ndarray) -> np.ndarray:
    """bool [...]: which descriptors (last axis) carry a frame; ``embed_video`` zeroes the uninformative ones."""
    return np.any(np.asarray(features) != 0, axis=-1)


def localise_candidates(query: np.ndarray, video_ids: list[str], references: Mapping[str, np.ndarray], *,
                        fps: float, localiser: Localiser, min_score: float) -> list[Match]:
    """Localise ``query`` against each candidate's matrix; matches scoring ``min_score`` or more, best first.

    Zero descriptors mark uninformative frames (``embed_video``) and are masked for the localiser. A
    candidate without a matrix in ``references`` (deleted or replaced meanwhile) is skipped. Ties are
    broken by how much of the query the segments cover, then by video id.
    """
    matches: list[Match] = []
    coverage: dict[str, float] = {}
    query_mask = informative(query)
    for video_id in video_ids:
        reference = references.get(video_id)
        if reference is None or reference.shape[0] == 0:
            continue
        segments = localiser.localise(query, reference, fps, query_informative=query_mask,
                                      reference_informative=informative(reference))
        score = video_score(segments)
        if segments and score >= min_score:
            matches.append(Match(video_id, score, segments))
            coverage[video_id] = query_coverage(segments, query.shape[-2] / fps)
    matches.sort(key=lambda m: (-round(m.score, 3), -coverage[m.video_id], m.video_id))
    return matches
