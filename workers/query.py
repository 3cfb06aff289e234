"""The query plan: a query video's evidence from every enabled signal in, fused matches out.

``extract_query`` decodes the query once through every signal's extractor, with the job's views (tiles,
extra views), and keeps each signal's evidence for the match. ``answer_query`` runs the locating signals
(each finds candidates and localises segments in them) and fuses their matches, then each ranking signal:
its scores become the matches' ``video_similarity``, and the videos it ranks among the best ``top_k`` that no
locating signal matched are localised by the locating signals and kept when they reach ``min_score``.
Storage enters as ``SignalStores`` and ``References``, so the plan runs in tests over arrays and in the
product over Milvus, S3 and the database.
"""

from __future__ import annotations

import dataclasses
import heapq
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.decode import DecodeOptions
from workers.extract import ExtractedObject, ProgressFn, extract_object
from workers.ingest import views_of
from workers.signals.base import LocatingSignal, RankingSignal, References, Signal, SignalStores, Views
from workers.types import Match, QueryParams, Segment, StreamedObject

SAME_OFFSET_S = 1.0
"""Segments of one pair found by two signals are one copy when their offsets differ by at most this much."""


@dataclass
class QueryResult:
    """Matches best first, and seconds per stage."""

    matches: list[Match]
    timings: dict[str, float] = field(default_factory=dict)


def extract_query(job_id: str, read: Callable[[], StreamedObject], *, label: str, signals: Sequence[Signal[Any]],
                  stores: SignalStores, params: QueryParams, options: DecodeOptions, scratch_dir: Path,
                  progress: ProgressFn | None = None) -> ExtractedObject:
    """One decode of the query through every signal with the job's views; each signal keeps its evidence."""
    extracted = extract_object(views_of(signals, Views.of(params)), options, scratch_dir=scratch_dir, label=label,
                               stream=read, progress=progress)
    for signal in signals:
        signal.save_query(stores, job_id, extracted.video.evidence[signal.name])
    return extracted


def answer_query(evidence: Mapping[str, Any], signals: Sequence[Signal[Any]], *, stores: SignalStores,
                 references: References, params: QueryParams,
                 exclude: Collection[str] = frozenset()) -> QueryResult:
    """Matches of the query reaching ``params.min_score``, best first; ``evidence`` by signal name (a signal
    without evidence is left out)."""
    timings: dict[str, float] = {}
    present = [s for s in signals if s.name in evidence]
    locating = [s for s in present if isinstance(s, LocatingSignal)]
    matches = fuse([s.match(evidence[s.name], stores=stores, references=references, params=params, exclude=exclude,
                            timings=timings) for s in locating])
    for ranker in (s for s in present if isinstance(s, RankingSignal)):
        ranked = ranker.rank(evidence[ranker.name], [m.video_id for m in matches], stores=stores,
                             references=references, exclude=exclude, timings=timings)
        similarity = dict(ranked)
        matches = [dataclasses.replace(m, video_similarity=similarity.get(m.video_id)) for m in matches]

        tick = time.perf_counter()
        found = {m.video_id for m in matches}
        missed = [vid for vid, _ in ranked[: params.top_k] if vid not in found]
        allowed = set(references.searchable(missed)) if missed else set()
        missed = [vid for vid in missed if vid in allowed]
        extra = fuse([s.localise(evidence[s.name], missed, stores=stores, references=references, params=params)
                      for s in locating]) if missed else []
        extra = [dataclasses.replace(m, video_similarity=similarity[m.video_id]) for m in extra]
        timings[f"{ranker.name}_localise"] = time.perf_counter() - tick
        matches = list(heapq.merge(matches, extra, key=lambda m: -round(m.score, 3)))
    return QueryResult(matches, {k: round(v, 4) for k, v in timings.items()})


def fuse(found: Sequence[list[Match]]) -> list[Match]:
    """The matches of several locating signals as one list, best first.

    Per video, segments of different signals that agree (offsets within ``SAME_OFFSET_S``, overlapping query
    spans) become one segment over both spans, found by both, with the better score; the others stay single-
    signal. A video's score is its best segment's. One signal's list is returned as it is.
    """
    lists = [matches for matches in found if matches]
    if len(lists) <= 1:
        return list(lists[0]) if lists else []
    by_video: dict[str, list[Match]] = {}
    for matches in lists:
        for match in matches:
            by_video.setdefault(match.video_id, []).append(match)
    fused = []
    for video_id, parts in by_video.items():
        segments: list[Segment] = []
        for segment in sorted((s for m in parts for s in m.segments), key=lambda s: s.query_start):
            twin = next((i for i, kept in enumerate(segments) if _agree(kept, segment)), None)
            if twin is None:
                segments.append(segment)
            else:
                segments[twin] = _merged(segments[twin], segment)
        similarity = next((m.video_similarity for m in parts if m.video_similarity is not None), None)
        fused.append(Match(video_id, max(s.score for s in segments), segments, similarity))
    return sorted(fused, key=lambda m: (-round(m.score, 3), m.video_id))


def _agree(a: Segment, b: Segment) -> bool:
    same_offset = abs((a.ref_start - a.query_start) - (b.ref_start - b.query_start)) <= SAME_OFFSET_S
    return same_offset and a.query_start < b.query_end and b.query_start < a.query_end and a.signals != b.signals


def _merged(a: Segment, b: Segment) -> Segment:
    return Segment(min(a.query_start, b.query_start), max(a.query_end, b.query_end), min(a.ref_start, b.ref_start),
                   max(a.ref_end, b.ref_end), max(a.score, b.score), tuple(sorted({*a.signals, *b.signals})))
