"""The query plan (``workers.query.answer_query``) over hand-made signals: locating signals' matches, then a
ranking signal's scores and the candidates it adds, localised by the locating signals."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, ClassVar

from workers.query import answer_query
from workers.signals.base import LocatingSignal, RankingSignal, References, SignalStores
from workers.types import Match, QueryParams, Segment


def match(video_id: str, score: float) -> Match:
    return Match(video_id, score, [Segment(0, 5, 0, 5, score, ("video",))])


class Locating(LocatingSignal[str]):
    """Finds ``found`` by itself; localises any candidate it is handed at score 0.5 (0.1 for "weak")."""

    name: ClassVar[str] = "locating"
    label: ClassVar[str] = "video"

    def __init__(self, found: list[Match]) -> None:
        self.found = found
        self.localised: list[str] = []

    def match(self, query: str, **_: Any) -> list[Match]:
        return list(self.found)

    def localise(self, query: str, video_ids: list[str], **_: Any) -> list[Match]:
        self.localised += video_ids
        return [match(vid, 0.1 if vid == "weak" else 0.5) for vid in video_ids]

    # storage and extraction are not part of a query over evidence already made
    create = extraction = save = load = index = forget = save_query = load_query = None  # type: ignore[assignment]


class Ranking(RankingSignal[str]):
    name: ClassVar[str] = "ranking"
    label: ClassVar[str] = "ranking"

    def __init__(self, ranked: list[tuple[str, float]]) -> None:
        self.ranked = ranked
        self.also: list[str] = []

    def rank(self, query: str, also: list[str], *, exclude: Collection[str], **_: Any) -> list[tuple[str, float]]:
        self.also = also
        return [(vid, s) for vid, s in self.ranked if vid not in exclude]

    # storage and extraction are not part of a query over evidence already made
    create = extraction = save = load = index = forget = save_query = load_query = None  # type: ignore[assignment]


class Library(References):
    def searchable(self, video_ids: list[str]) -> Collection[str]:
        return {vid for vid in video_ids if vid != "deleted"}

    def records(self, signal: str, video_ids: list[str]) -> dict:
        return {}


STORES = SignalStores(arrays=None, vectors=None)  # type: ignore[arg-type]  # the stub signals store nothing
EVIDENCE = {"locating": "q", "ranking": "q"}


def test_a_ranking_signal_scores_matches_and_adds_what_the_locating_signals_missed() -> None:
    locating = Locating([match("a", 0.9)])
    ranking = Ranking([("b", 0.8), ("deleted", 0.7), ("a", 0.6), ("weak", 0.5), ("c", 0.4)])
    result = answer_query(EVIDENCE, [locating, ranking], stores=STORES, references=Library(),
                          params=QueryParams(top_k=4, min_score=0.0))
    assert ranking.also == ["a"]
    assert locating.localised == ["b", "weak"]  # top 4 not matched yet, minus the unreportable one; not c
    assert [(m.video_id, m.video_similarity) for m in result.matches] == [("a", 0.6), ("b", 0.8), ("weak", 0.5)]
    assert all(m.signals == ["video"] for m in result.matches)
    assert "ranking_localise" in result.timings


def test_without_a_ranking_signal_or_its_evidence_the_locating_matches_stand() -> None:
    locating = Locating([match("a", 0.9)])
    alone = answer_query({"locating": "q"}, [locating, Ranking([("b", 0.9)])], stores=STORES,
                         references=Library(), params=QueryParams())
    assert [(m.video_id, m.video_similarity) for m in alone.matches] == [("a", None)] and locating.localised == []


def test_excluded_videos_are_never_added() -> None:
    locating = Locating([])
    result = answer_query(EVIDENCE, [locating, Ranking([("a", 0.9), ("b", 0.8)])], stores=STORES,
                          references=Library(), params=QueryParams(top_k=2), exclude={"a", "b"})
    assert result.matches == [] and locating.localised == []
