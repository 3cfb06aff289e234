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


@pytest.mark.parametrize("reduce", REDUCERS)
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
