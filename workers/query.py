"""Answer one query: embedded query views in, matches out (frame search, selection, localisation, DnS).

Storage enters as small protocols (``FrameLibrary`` for the frame side, ``DnsLibrary`` for the optional
DnS side), so the whole query path runs in tests over in-memory arrays and in tasks over Milvus and S3.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

from workers.localise import Localiser
from workers.pipeline import localise_candidates, match_query
from workers.types import Match, QueryParams, SearchHits

if TYPE_CHECKING:
    from workers.dns.representation import DnsRepresentation
    from workers.dns.video import DnsModels, RankedVideo
    from workers.stores.videovectors import VideoHits


class FrameLibrary(Protocol):
    """The indexed library as the frame-level query sees it."""

    def search(self, vectors: np.ndarray, limit: int, *, exclude: Collection[str] = (),
               per_video: bool = False) -> SearchHits:
        """Top ``limit`` indexed frames for each row of ``vectors`` [N, D], none of ``exclude``'s videos (filtered
        inside the index); ``per_video``: each video once per row, by its best frame."""

    def searchable(self, video_ids: list[str]) -> Collection[str]:
        """Those ids a query may report (indexed, same model and sampling rate, not being removed)."""

    def load(self, video_ids: list[str]) -> Mapping[str, np.ndarray]:
        """Frame matrices [T, D] of those ids that still have one."""


class DnsLibrary(Protocol):
    """The library's DnS side: coarse vectors, selector statistics and fine indexes."""

    def search(self, coarse: np.ndarray, limit: int) -> VideoHits:
        """Videos nearest to a coarse vector [1024]."""

    def coarse(self, video_ids: list[str]) -> Mapping[str, np.ndarray]:
        """Stored coarse vectors of those ids that have one."""

    def selector_stats(self, video_ids: list[str]) -> Mapping[str, float]:
        """Selector statistic of those ids indexed with the configured student."""

    def fine(self, video_id: str) -> np.ndarray:
        """The fine index [T, R, 512] of one video (float32)."""


@dataclass
class QueryResult:
    """Matches best first, and seconds per stage."""

    matches: list[Match]
    timings: dict[str, float] = field(default_factory=dict)


def answer_query(views: np.ndarray, *, fps: float, library: FrameLibrary, localiser: Localiser,
                 params: QueryParams, exclude: Collection[str] = frozenset(),
                 dns: DnsStage | None = None) -> QueryResult:
    """Query views [Tq, D] or [V, Tq, D] -> matches reaching ``params.min_score``, with DnS scores when ``dns``."""
    timings: dict[str, float] = {}
    matches = match_query(views, fps=fps, search=library.search, load_references=library.load,
                          searchable=library.searchable, localiser=localiser, params=params, exclude=exclude,
                          timings=timings)
    if dns is not None:
        matches = dns.rerank(matches, views, fps=fps, library=library, localiser=localiser, params=params,
                             exclude=exclude, timings=timings)
    return QueryResult(matches, {k: round(v, 4) for k, v in timings.items()})


@dataclass
class DnsStage:
    """The DnS re-ranking of one query (spec §7): its representation, the models and the library's DnS side."""

    query: DnsRepresentation
    models: DnsModels
    library: DnsLibrary
    coarse_top_k: int = 20
    rerank_percentage: float = 0.25

    def rerank(self, matches: list[Match], views: np.ndarray, *, fps: float, library: FrameLibrary,
               localiser: Localiser, params: QueryParams, exclude: Collection[str],
               timings: dict[str, float]) -> list[Match]:
        """``matches`` with ``video_similarity`` set, plus DnS candidates among the best ``top_k`` that the frame
        search missed, localised "as before" against ``views`` and kept when they score ``min_score``."""
        ranked = self.rank_library([m.video_id for m in matches], exclude=exclude, timings=timings)
        similarity = {r.video_id: r.score for r in ranked}
        result = [dataclasses.replace(m, video_similarity=similarity.get(m.video_id)) for m in matches]

        tick = time.perf_counter()
        found = {m.video_id for m in matches}
        missed = [r.video_id for r in ranked[: params.top_k] if r.video_id not in found]
        allowed = set(library.searchable(missed)) if missed else set()
        missed = [vid for vid in missed if vid in allowed]
        extra = localise_candidates(views, missed, library.load(missed) if missed else {}, fps=fps,
                                    localiser=localiser, min_score=params.min_score)
        extra = [dataclasses.replace(m, video_similarity=similarity[m.video_id]) for m in extra]
        timings["dns_localise"] = time.perf_counter() - tick
        return list(heapq.merge(result, extra, key=lambda m: -round(m.score, 3)))

    def rank_library(self, also: list[str], *, exclude: Collection[str] = frozenset(),
                     timings: dict[str, float] | None = None) -> list[RankedVideo]:
        """Coarse search (+ the ``also`` videos), selector, fine re-scoring of the budget. Best first."""
        from workers.dns.video import rerank

        timings = timings if timings is not None else {}
        tick = time.perf_counter()
        hits = self.library.search(self.query.coarse, self.coarse_top_k)
        coarse = {vid: float(s) for vid, s in zip(hits.video_id, hits.score, strict=True) if vid not in exclude}
        extra = [vid for vid in also if vid not in coarse and vid not in exclude]
        coarse |= {vid: float(vec @ self.query.coarse) for vid, vec in self.library.coarse(extra).items()}
        timings["dns_search"] = time.perf_counter() - tick

        tick = time.perf_counter()
        candidates = list(coarse)
        stats = self.library.selector_stats(candidates)
        have_row = np.array([vid in stats for vid in candidates], bool)
        stat_values = np.array([stats.get(vid, 0.0) for vid in candidates], np.float32)
        sims = np.array([coarse[vid] for vid in candidates], np.float32)
        probabilities = self.models.selector_probability(self.query.selector_stat, stat_values, sims).astype(np.float64)
        probabilities[~have_row] = np.nan
        timings["dns_select"] = time.perf_counter() - tick

        tick = time.perf_counter()
        ranked = rerank(candidates, sims, probabilities,
                        lambda vid: self.models.fine_similarity(self.query.fine, self.library.fine(vid)),
                        self.rerank_percentage)
        timings["dns_fine"] = time.perf_counter() - tick
        return ranked
