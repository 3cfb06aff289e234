"""Tests for workers/selection.py: grouping ANN hits by video and ranking the videos."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from workers.selection import REDUCERS, select_candidates
from workers.types import Candidate

README_URLS = np.array(["a", "a", "c", "a", "b", "b", "c", "c"])
README_SCORES = np.array([2, 8, 9.3, 5, 2, 1, 0, -1])


@pytest.mark.parametrize(
    ("reduce", "expected"),
    [
        ("sum", [("a", 15.0), ("c", 8.3)]),
        ("mean", [("a", 5.0), ("c", 8.3 / 3)]),
        ("max", [("c", 9.3), ("a", 8.0)]),
        ("min", [("a", 2.0), ("b", 1.0)]),
    ],
)
def test_towhee_readme_example(reduce: str, expected: list[tuple[str, float]]) -> None:
    """towhee select_video README: top_k=2, reverse=True."""
    candidates = select_candidates(README_URLS, README_SCORES, reduce=reduce, top_k=2)
    assert [c.video_id for c in candidates] == [video for video, _ in expected]
    assert [c.score for c in candidates] == pytest.approx([score for _, score in expected])


def test_count_and_all_candidates_without_top_k() -> None:
    assert select_candidates(README_URLS, README_SCORES, reduce="count") == [
        Candidate("a", 3.0),
        Candidate("c", 3.0),
        Candidate("b", 2.0),
    ]


def test_ties_are_broken_by_video_id() -> None:
    candidates = select_candidates(np.array(["b", "a", "c"]), np.array([1.0, 1.0, 1.0]))
    assert [c.video_id for c in candidates] == ["a", "b", "c"]


def test_integer_ids_tie_in_numeric_order_and_come_back_as_strings() -> None:
    candidates = select_candidates(np.array([10, 9, 10]), np.array([1.0, 2.0, 1.0]))
    assert candidates == [Candidate("9", 2.0), Candidate("10", 2.0)]


def test_excluded_videos_are_left_out() -> None:
    candidates = select_candidates(README_URLS, README_SCORES, top_k=2, exclude={"a"})
    assert [c.video_id for c in candidates] == ["c", "b"]
    assert select_candidates(np.array([7, 7, 8]), np.ones(3), exclude={"7"}) == [Candidate("8", 1.0)]


def test_top_k_larger_than_the_number_of_videos() -> None:
    assert len(select_candidates(README_URLS, README_SCORES, top_k=100)) == 3
    assert select_candidates(README_URLS, README_SCORES, top_k=0) == []



def test_no_hits_no_candidates() -> None:
    assert select_candidates(np.array([], dtype=str), np.array([])) == []


@pytest.mark.parametrize("reduce", [r for r in REDUCERS if r != "row_max"])
def test_300_frames_of_64_hits_match_a_plain_dict(reduce: str) -> None:
    rng = np.random.default_rng(0)
    video_ids = rng.integers(0, 500, 300 * 64).astype(str)
    scores = rng.uniform(0, 1, 300 * 64)
    groups: dict[str, list[float]] = defaultdict(list)
    for video, score in zip(video_ids.tolist(), scores.tolist(), strict=True):
        groups[video].append(score)
    reduce_list = {"sum": sum, "mean": lambda s: sum(s) / len(s), "max": max, "min": min, "count": len}[reduce]
    expected = sorted(((video, float(reduce_list(s))) for video, s in groups.items()), key=lambda x: (-x[1], x[0]))
    candidates = select_candidates(video_ids, scores, reduce=reduce, top_k=100)
    assert [c.video_id for c in candidates] == [video for video, _ in expected[:100]]
    assert [c.score for c in candidates] == pytest.approx([score for _, score in expected[:100]])


def test_bad_arguments_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown reduce 'median'"):
        select_candidates(README_URLS, README_SCORES, reduce="median")
    with pytest.raises(ValueError, match="parallel"):
        select_candidates(README_URLS, README_SCORES[:3])
    with pytest.raises(ValueError, match="top_k"):
        select_candidates(README_URLS, README_SCORES, top_k=-1)


def test_row_max_counts_each_video_once_per_query_row() -> None:
    """Static footage filling every hit of a row counts its best hit once, like a video with one matching frame:
    a short copy (video s, 0.8 in two rows) outranks 64 look-alike frames at 0.3 (sum 19.2 per row)."""
    rows = np.concatenate([np.repeat([0, 1], 63), [0, 1]])
    ids = np.array(["static"] * 126 + ["s", "s"])
    scores = np.concatenate([np.full(126, 0.3), [0.8, 0.8]])
    assert [c.video_id for c in select_candidates(ids, scores, reduce="sum")] == ["static", "s"]
    ranked = select_candidates(ids, scores, reduce="row_max", query_rows=rows)
    assert ranked == [Candidate("s", pytest.approx(1.6)), Candidate("static", pytest.approx(0.6))]


def test_row_max_matches_a_plain_dict() -> None:
    rng = np.random.default_rng(1)
    rows, ids = rng.integers(0, 50, 3000), rng.integers(0, 40, 3000).astype(str)
    scores = rng.uniform(-0.2, 1, 3000)
    best: dict[tuple[int, str], float] = {}
    for row, video, score in zip(rows.tolist(), ids.tolist(), scores.tolist(), strict=True):
        best[row, video] = max(best.get((row, video), -np.inf), score)
    totals: dict[str, float] = defaultdict(float)
    for (_, video), score in best.items():
        totals[video] += score
    expected = sorted(totals.items(), key=lambda x: (-x[1], x[0]))
    candidates = select_candidates(ids, scores, reduce="row_max", query_rows=rows)
    assert [(c.video_id, c.score) for c in candidates] == [(v, pytest.approx(t)) for v, t in expected]


def test_row_max_needs_query_rows() -> None:
    with pytest.raises(ValueError, match="query_rows"):
        select_candidates(README_URLS, README_SCORES, reduce="row_max")
