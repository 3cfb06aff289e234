"""``copycat evaluate``: run a labelled query set through the product and score it with the VCSL metric.

The ground-truth file (format in ``bench/fixtures.py``) lists reference videos and queries with their
copied segments. References are ingested under the ``eval/`` prefix (skipped when already indexed with
the same bytes), every query runs as a normal query job, and each (query, reference) pair of the file is
scored: segment-level precision, recall and F1 (VCSL micro average), and video-level precision/recall
(a pair is predicted positive when the query job returned that reference). Matches against videos that
the file does not list are ignored: their truth is unknown.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.evaluate import EvaluationReport, load_ground_truth, predicted_boxes, score
from workers.types import QueryParams

if TYPE_CHECKING:
    from service.resources import Resources


def run_evaluation(res: Resources, gt_path: Path, params: QueryParams, *, include_hard: bool = True,
                   on_step: Any = None) -> EvaluationReport:
    """Ingest the references, run every query, score the pairs."""
    from cli import client

    gt = load_ground_truth(gt_path)
    names: dict[str, str] = {}  # video id -> the reference's name in the ground truth
    for ref in gt["references"]:
        names[client.ingest_file(res, Path(ref["path"]), f"eval/{ref['name']}")] = ref["name"]
        if on_step:
            on_step(f"indexed {ref['name']}")
    client.wait_for_videos(res, list(names))
    queries = [q for q in gt["queries"] if include_hard or not q.get("hard")]
    predictions: dict[str, dict[str, list[list[float]]]] = {}
    records = []
    for query in queries:
        result = client.wait_for_job(res, client.submit_query(res, query["path"], params))
        if result["status"] != "done":
            raise RuntimeError(f"query {query['name']} failed: {result['error']}")
        predictions[query["name"]] = predicted_boxes(result["matches"], names)
        records.append({"query": query["name"], "transform": query.get("transform", ""),
                        "job_id": result["job_id"], "matches": result["matches"], "timings": result["timings"]})
        if on_step:
            on_step(f"queried {query['name']}")
    return score(gt, queries, predictions, records)
