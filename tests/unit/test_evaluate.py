"""Tests for workers/evaluate.py: the VCSL segment metric, its dataset-level forms and video-level rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.evaluate import (
    evaluate_macro,
    evaluate_micro,
    precision_recall,
    union_length,
    video_precision_recall,
)

EPS = 1e-6


def ratio(covered: float, total: float) -> float:
    """One axis of the metric: covered length over the plain sum of spans."""
    return covered / (total + EPS)


@pytest.mark.parametrize(
    ("pred", "gt", "expected"),
    [
        ([[0, 0, 10, 10]], [], (0, 1)),  # a prediction on a negative pair
        ([], [[0, 0, 10, 10]], (1, 0)),  # a missed positive
        ([], [], (1, 1)),  # nothing to find, nothing found
    ],
)
def test_special_cases(pred: list, gt: list, expected: tuple[int, int]) -> None:
    assert precision_recall(pred, gt) == expected


def test_exact_prediction_scores_just_below_one() -> None:
    p, r = precision_recall([[0, 0, 10, 10]], [[0, 0, 10, 10]])
    assert p == r == ratio(10, 10) ** 2
    assert p < 1


def test_half_overlap_on_both_axes() -> None:
    assert precision_recall([[0, 0, 10, 10]], [[5, 5, 15, 15]]) == (ratio(5, 10) ** 2, ratio(5, 10) ** 2)


def test_axes_are_separate_ratios_not_an_area() -> None:
    """The prediction covers all of the GT's 5 s of reference but spends 10 s of reference doing so."""
    p, r = precision_recall([[0, 0, 10, 10]], [[0, 0, 10, 5]])
    assert p == ratio(10, 10) * ratio(5, 10)
    assert r == ratio(10, 10) * ratio(5, 5)


def test_segment_split_across_two_predictions() -> None:
    """Two predictions tile one GT; their touching intersections merge into one 20 s union for recall."""
    p, r = precision_recall([[0, 0, 10, 10], [10, 10, 20, 20]], [[0, 0, 20, 20]])
    assert p == ratio(10 + 10, 20) ** 2
    assert r == ratio(20, 20) ** 2


def test_overlapping_predictions_inflate_the_precision_denominator() -> None:
    """Precision divides by the plain sum of prediction spans, 10 + 20 = 30, not their union, 25."""
    p, r = precision_recall([[0, 0, 10, 10], [5, 5, 25, 25]], [[0, 0, 10, 10]])
    assert p == ratio(10 + 5, 30) ** 2
    assert r == ratio(10, 10) ** 2  # the GT's two intersections, [0, 10] and [5, 10], union to 10


def test_touching_boxes_do_not_count() -> None:
    assert precision_recall([[10, 10, 20, 20]], [[0, 0, 10, 10]]) == (0.0, 0.0)


def test_overlap_on_one_axis_only_does_not_count() -> None:
    assert precision_recall([[0, 20, 10, 30]], [[0, 0, 10, 10]]) == (0.0, 0.0)


def test_unmatched_prediction_still_counts_in_the_denominator() -> None:
    p, r = precision_recall([[0, 0, 10, 10], [50, 50, 60, 60]], [[0, 0, 10, 10]])
    assert p == ratio(10, 20) ** 2
    assert r == ratio(10, 10) ** 2


def test_union_length_merges_touching_intervals_in_float32() -> None:
    assert union_length(np.array([[5.0, 8.0], [0.0, 2.0], [2.0, 3.0], [7.0, 9.0]])) == 7.0
    expected = float(np.float32(0.3) - np.float32(0.1))
    assert union_length(np.array([[0.1, 0.3]])) == expected != 0.3 - 0.1
    p, _ = precision_recall([[0.1, 0.1, 0.3, 0.3]], [[0.1, 0.1, 0.3, 0.3]])
    assert p == ratio(expected, 0.3 - 0.1) ** 2


def test_bad_box_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"\[N, 4\]"):
        precision_recall([[0, 0, 10]], [[0, 0, 10, 10]])


EXACT = ratio(10, 10) ** 2
HALF = ratio(5, 10) ** 2
PAIRS = {
    "exact": ([[0, 0, 10, 10]], [[0, 0, 10, 10]]),  # p = r = EXACT
    "half": ([[0, 0, 10, 10]], [[5, 5, 15, 15]]),  # p = r = HALF
    "missed": ([], [[0, 0, 10, 10]]),  # p = 1, r = 0
    "false_alarm": ([[0, 0, 10, 10]], []),  # p = 0, r = 1
    "quiet_negative": ([], []),  # p = 1, r = 1
}


def test_micro_by_hand() -> None:
    """Recall skips the two negatives (r == 1); precision skips the two pairs without predictions (p == 1)."""
    result = evaluate_micro(PAIRS)
    assert result["recall"] == pytest.approx((EXACT + HALF + 0) / 3)
    assert result["precision"] == pytest.approx((EXACT + HALF + 0) / 3)
    assert result["f1"] == pytest.approx((EXACT + HALF) / 3)
    assert result["frr"] == pytest.approx(2 * 1 / 5)
    assert result["far"] == pytest.approx(2 * 1 / 5)


def test_micro_ratio_weights_the_rates() -> None:
    result = evaluate_micro(PAIRS, ratio=4.0)
    assert result["frr"] == pytest.approx(5 / 4 * 1 / 5)
    assert result["far"] == pytest.approx(5 * 1 / 5)


def test_micro_without_predictions_has_no_precision() -> None:
    result = evaluate_micro({"missed": PAIRS["missed"]})
    assert math.isnan(result["precision"]) and result["recall"] == 0.0
    assert math.isnan(result["f1"])


def test_macro_by_hand() -> None:
    """Per set means include values of 1; sets are then averaged."""
    result = evaluate_macro(PAIRS, {"s1": ["exact", "half"], "s2": ["missed"]})
    precision = ((EXACT + HALF) / 2 + 1) / 2
    recall = ((EXACT + HALF) / 2 + 0) / 2
    assert result["precision"] == pytest.approx(precision)
    assert result["recall"] == pytest.approx(recall)
    assert result["f1"] == pytest.approx(2 * precision * recall / (precision + recall))


def test_macro_names_a_missing_pair() -> None:
    with pytest.raises(ValueError, match="nowhere"):
        evaluate_macro(PAIRS, {"s1": ["exact", "nowhere"]})


def test_video_level_precision_and_recall() -> None:
    """Predicted matches: exact, half, false_alarm; real matches: exact, half, missed."""
    assert video_precision_recall(PAIRS) == (2 / 3, 2 / 3)
    precision, recall = video_precision_recall({"quiet_negative": PAIRS["quiet_negative"]})
    assert math.isnan(precision) and math.isnan(recall)


def test_references_that_share_a_file_name_are_scored_apart() -> None:
    """``a/x.mp4`` and ``b/x.mp4`` are both named ``x.mp4`` in a match; the video id tells them apart."""
    from workers.evaluate import predicted_boxes, score

    gt = {"references": [{"name": "a/x.mp4"}, {"name": "b/x.mp4"}],
          "queries": [{"name": "q.mp4", "matches": [{"reference": "b/x.mp4", "segments": [[0, 0, 10, 10]]}]}]}
    segment = {"query_start": 0, "ref_start": 0, "query_end": 10, "ref_end": 10}
    matches = [{"video_id": "id-b", "name": "x.mp4", "segments": [segment]},
               {"video_id": "id-elsewhere", "name": "x.mp4", "segments": [segment]}]  # not in the ground truth
    predictions = {"q.mp4": predicted_boxes(matches, {"id-a": "a/x.mp4", "id-b": "b/x.mp4"})}
    assert predictions == {"q.mp4": {"b/x.mp4": [[0, 0, 10, 10]]}}
    report = score(gt, gt["queries"], predictions)
    assert report.video == {"precision": 1.0, "recall": 1.0}
    assert report.segment["recall"] == pytest.approx(EXACT)
