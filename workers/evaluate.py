"""Evaluation: the VCSL segment-level metric (spec §5) and video-level detection rates.

A box is ``[q_start, r_start, q_end, r_end]`` in seconds: x is the query time axis, y the reference's.
``pairs`` maps a pair key (VCSL: ``"<query>-<reference>"``) to ``(predicted boxes, ground-truth boxes)``,
each float [N, 4] (an empty list for none). Negative pairs have no ground-truth boxes.

``precision_recall`` reproduces ``vcsl/metric.py::precision_recall`` exactly, including its special cases, the
float32 interval union, plain-sum denominators and the 1e-6 terms.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BoxPair = tuple[np.ndarray | Sequence[Sequence[float]], np.ndarray | Sequence[Sequence[float]]]
"""(predicted boxes [N, 4], ground-truth boxes [M, 4]) of one video pair."""


def _boxes(boxes: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """float64 [N, 4] from an array or a (possibly empty) list of boxes."""
    array = np.asarray(boxes, dtype=np.float64)
    if array.size == 0:
        return array.reshape(0, 4)
    if array.ndim != 2 or array.shape[1] != 4:
        raise ValueError(f"boxes must be [N, 4] [q_start, r_start, q_end, r_end], got shape {array.shape}")
    return array


def union_length(intervals: np.ndarray) -> float:
    """Total length of the union of intervals float [K, 2] (start, end), as VCSL computes it.

    Intervals are merged in start order when the previous end is at least the next start (touching intervals
    merge), and the merged lengths are summed in float32.
    """
    merged: list[list[float]] = []
    for start, end in sorted(intervals.tolist(), key=lambda interval: interval[0]):
        if merged and merged[-1][1] >= start:
            merged[-1] = [min(merged[-1][0], start), max(merged[-1][1], end)]
        else:
            merged.append([start, end])
    spans = np.array(merged, dtype=np.float32)
    return float(np.sum(spans[:, 1] - spans[:, 0]))


def _covered_fraction(inter_lo: np.ndarray, inter_hi: np.ndarray, overlaps: np.ndarray, boxes: np.ndarray) -> float:
    """Product over both axes of Σ_i |∪_j inter(i, j)| / (Σ_i span_i + 1e-6).

    Row i of ``inter_lo``/``inter_hi`` (float [N, M, 2]: x, y) and ``overlaps`` (bool [N, M]) pairs box i of
    ``boxes`` (float [N, 4]) with the boxes of the other set; only overlapping pairs count.
    """
    covered = [0.0, 0.0]
    for i in range(len(boxes)):
        js = np.flatnonzero(overlaps[i])
        if len(js):
            for axis in (0, 1):
                covered[axis] += union_length(np.stack([inter_lo[i, js, axis], inter_hi[i, js, axis]], axis=1))
    span_x = float(np.sum(boxes[:, 2] - boxes[:, 0]))
    span_y = float(np.sum(boxes[:, 3] - boxes[:, 1]))
    return (covered[0] / (span_x + 1e-6)) * (covered[1] / (span_y + 1e-6))


def precision_recall(
    pred: np.ndarray | Sequence[Sequence[float]], gt: np.ndarray | Sequence[Sequence[float]]
) -> tuple[float, float]:
    """VCSL segment precision and recall of one video pair.

    Args:
        pred: float [N, 4] predicted boxes.
        gt: float [M, 4] ground-truth boxes.

    Returns:
        ``(precision, recall)``. With no predictions precision is 1, with no ground truth recall is 1, and
        a prediction for a negative pair gives precision 0. Otherwise each is a product of per-axis length
        ratios: for every box, the union of its intersections with the overlapping (positive-area) boxes
        of the other set, over the plain sum of that set's spans. Such values are always below 1.
    """
    pred, gt = _boxes(pred), _boxes(gt)
    if len(pred) == 0 or len(gt) == 0:
        return (0.0 if len(pred) else 1.0), (0.0 if len(gt) else 1.0)
    lo = np.maximum(pred[:, None, :2], gt[None, :, :2])  # [N, M, 2]
    hi = np.minimum(pred[:, None, 2:], gt[None, :, 2:])
    wh = np.maximum(hi - lo, 0.0)
    overlaps = wh[:, :, 0] * wh[:, :, 1] > 0
    precision = _covered_fraction(lo, hi, overlaps, pred)
    recall = _covered_fraction(lo.transpose(1, 0, 2), hi.transpose(1, 0, 2), overlaps.T, gt)
    return precision, recall


def _f1(precision: float, recall: float) -> float:
    """Harmonic mean; 0 when both are 0, nan when either is nan."""
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _mean(values: Sequence[float]) -> float:
    """Arithmetic mean, nan for no values."""
    return float(np.mean(values)) if len(values) else float("nan")


def evaluate_micro(pairs: Mapping[Hashable, BoxPair], ratio: float = 1.0) -> dict[str, float]:
    """VCSL's overall segment-level metric over every pair of a split, positives and negatives.

    ``recall`` is the mean recall of pairs whose recall is not 1 (so negatives and empty-empty pairs don't
    count) and ``precision`` the mean precision of pairs whose precision is not 1 (pairs without predictions
    don't count); either is nan when no pair counts. ``f1 = 2PR / (P + R)``. With ``ratio`` = positives /
    negatives and n pairs, the video-level rates are ``frr = (1 + ratio) / ratio * #{p == 1, r == 0} / n``
    (missed positives) and ``far = (1 + ratio) * #{p == 0, r == 1} / n`` (false alarms on negatives).

    Returns:
        ``{"precision", "recall", "f1", "frr", "far"}``.
    """
    if not pairs:
        raise ValueError("evaluate_micro needs at least one pair")
    results = [precision_recall(pred, gt) for pred, gt in pairs.values()]
    precision = _mean([p for p, _ in results if p != 1])
    recall = _mean([r for _, r in results if r != 1])
    missed = sum(1 for p, r in results if p == 1 and r == 0)
    false_alarms = sum(1 for p, r in results if p == 0 and r == 1)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _f1(precision, recall),
        "frr": (1 + ratio) / ratio * missed / len(results),
        "far": (1 + ratio) * false_alarms / len(results),
    }


def evaluate_macro(
    pairs: Mapping[Hashable, BoxPair], query_sets: Mapping[Hashable, Sequence[Hashable]]
) -> dict[str, float]:
    """VCSL's query-set macro metric (used to tune on val positives).

    For each query set (``query_sets`` maps a set id to its pair keys in ``pairs``) take the mean precision
    and mean recall of its pairs, values of 1 included; average those over sets; ``f1 = 2PR / (P + R)``.

    Returns:
        ``{"precision", "recall", "f1"}``.
    """
    if not query_sets:
        raise ValueError("evaluate_macro needs at least one query set")
    per_set = []
    for set_id, keys in query_sets.items():
        if not keys:
            raise ValueError(f"query set {set_id!r} has no pairs")
        missing = [key for key in keys if key not in pairs]
        if missing:
            raise ValueError(f"query set {set_id!r} names pairs without boxes: {missing[:3]}")
        results = [precision_recall(*pairs[key]) for key in keys]
        per_set.append((_mean([p for p, _ in results]), _mean([r for _, r in results])))
    precision = _mean([p for p, _ in per_set])
    recall = _mean([r for _, r in per_set])
    return {"precision": precision, "recall": recall, "f1": _f1(precision, recall)}


def video_precision_recall(pairs: Mapping[Hashable, BoxPair]) -> tuple[float, float]:
    """Video-level detection: a pair is predicted a match iff it has at least one predicted box.

    Returns:
        ``(precision, recall)`` = (true matches / predicted matches, true matches / pairs with ground-truth
        boxes); nan where the denominator is 0.
    """
    predicted = [len(_boxes(pred)) > 0 for pred, _ in pairs.values()]
    actual = [len(_boxes(gt)) > 0 for _, gt in pairs.values()]
    hits = sum(p and a for p, a in zip(predicted, actual, strict=True))
    precision = hits / sum(predicted) if any(predicted) else float("nan")
    recall = hits / sum(actual) if any(actual) else float("nan")
    return precision, recall


@dataclass
class EvaluationReport:
    """Scores of one labelled set: segment P/R/F1 (VCSL micro), video P/R, per transformation, per query."""

    segment: dict[str, float]
    video: dict[str, float]
    per_transform: dict[str, dict[str, float]]
    queries: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"segment": self.segment, "video": self.video, "per_transform": self.per_transform,
                "queries": self.queries}


def load_ground_truth(path: Path) -> dict[str, Any]:
    """A ground-truth file (``bench/fixtures.py`` format) with its paths made absolute."""
    data = json.loads(path.read_text())
    for entry in data["references"] + data["queries"]:
        entry["path"] = str((path.parent / entry["path"]).resolve())
    return data


def predicted_boxes(matches: list[dict[str, Any]], names: dict[str, str]) -> dict[str, list[list[float]]]:
    """A query's matches (result JSON) as boxes by the ground truth's reference names, found by video id.

    Not by the match's ``name``: that is only the file name, shared by ``a/x.mp4`` and ``b/x.mp4``.
    Matches of videos the ground truth does not list are dropped (their truth is unknown).
    """
    return {
        names[m["video_id"]]: [[s["query_start"], s["ref_start"], s["query_end"], s["ref_end"]] for s in m["segments"]]
        for m in matches if m["video_id"] in names
    }


def score(gt: dict[str, Any], queries: list[dict[str, Any]], predictions: dict[str, dict[str, list[list[float]]]],
          records: list[dict[str, Any]] | None = None) -> EvaluationReport:
    """Score predicted boxes (by query name, then reference name) against the ground truth."""
    references = [r["name"] for r in gt["references"]]
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    by_transform: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)
    for query in queries:
        truth = {m["reference"]: m["segments"] for m in query["matches"]}
        predicted = predictions.get(query["name"], {})
        for ref in references:
            key = f"{query['name']}|{ref}"
            pair = (_boxes(predicted.get(ref, [])), _boxes(truth.get(ref, [])))
            pairs[key] = pair
            label = query.get("transform", "") if truth else "unrelated"
            if truth.get(ref) or predicted.get(ref):
                by_transform[label][key] = pair
    micro = evaluate_micro(pairs)
    video_p, video_r = video_precision_recall(pairs)
    per_transform = {}
    for label, subset in sorted(by_transform.items()):
        values = [precision_recall(p, g) for p, g in subset.values()]
        per_transform[label] = {"pairs": len(values), "precision": float(np.mean([v[0] for v in values])),
                                "recall": float(np.mean([v[1] for v in values]))}
    return EvaluationReport(
        segment={k: float(v) for k, v in micro.items()},
        video={"precision": float(video_p), "recall": float(video_r)},
        per_transform=per_transform,
        queries=records or [],
    )
