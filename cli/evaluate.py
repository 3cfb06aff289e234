"""``copycat evaluate``: run a labelled query set through the product and score it with the VCSL metric.

The ground-truth file (format in ``bench/fixtures.py``) lists reference videos and queries with their
copied segments. References are ingested under the ``eval/`` prefix (skipped when already indexed with
the same bytes), every query runs as a normal query job, and each (query, reference) pair of the file is
scored: segment-level precision, recall and F1 (VCSL micro average), and video-level precision/recall
(a pair is predicted positive when the query job returned that reference). Matches against videos that
the file does not list are ignored: their truth is unknown.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workers.evaluate import evaluate_micro, precision_recall, video_precision_recall


@dataclass
class EvaluationReport:
    segment: dict[str, float]
    video: dict[str, float]
    per_transform: dict[str, dict[str, float]]
    queries: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"segment": self.segment, "video": self.video, "per_transform": self.per_transform,
                "queries": self.queries}


def load_ground_truth(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    for entry in data["references"] + data["queries"]:
        entry["path"] = str((path.parent / entry["path"]).resolve())
    return data


def run_evaluation(gt_path: Path, params: dict[str, Any], *, include_hard: bool = True,
                   on_step: Any = None) -> EvaluationReport:
    """Ingest the references, run every query, score the pairs."""
    from cli import client

    gt = load_ground_truth(gt_path)
    names: dict[str, str] = {}  # video id -> the reference's name in the ground truth
    for ref in gt["references"]:
        names[client.ingest_file(Path(ref["path"]), f"eval/{ref['name']}")] = ref["name"]
        if on_step:
            on_step(f"indexed {ref['name']}")
    client.wait_for_videos(list(names))
    queries = [q for q in gt["queries"] if include_hard or not q.get("hard")]
    predictions: dict[str, dict[str, list[list[float]]]] = {}
    records = []
    for query in queries:
        result = client.wait_for_job(client.submit_query(query["path"], params))
        if result["status"] != "done":
            raise RuntimeError(f"query {query['name']} failed: {result['error']}")
        predictions[query["name"]] = predicted_boxes(result["matches"], names)
        records.append({"query": query["name"], "transform": query.get("transform", ""),
                        "job_id": result["job_id"], "matches": result["matches"], "timings": result["timings"]})
        if on_step:
            on_step(f"queried {query['name']}")
    return score(gt, queries, predictions, records)


def predicted_boxes(matches: list[dict[str, Any]], names: dict[str, str]) -> dict[str, list[list[float]]]:
    """A query's matches as boxes by the ground truth's reference names, found by video id.

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


def _boxes(boxes: list[list[float]]) -> np.ndarray:
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
