"""From upload to segments in PostgreSQL: the fixture benchmark through the real product path.

References are uploaded to SeaweedFS S3 and indexed in Milvus; each query runs as a query job; results
are read back from PostgreSQL and scored with the VCSL metric. The floors are what the defaults reach
on these fixtures (bench/tune.py) minus a small margin.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.fixtures import build_fixtures
from cli.evaluate import run_evaluation
from db import jobs
from db.session import session_scope
from tasks import context
from tasks.query import default_params

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture(scope="session")
def quick_fixtures(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixtures(clips_dir, tmp_path_factory.mktemp("fixtures-quick"), quick=True)


@pytest.fixture(scope="session")
def full_fixtures(clips_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixtures(clips_dir, tmp_path_factory.mktemp("fixtures-full"))


@pytest.mark.parametrize(("milvus_uri", "crop_grid"), [("lite", 2), ("lite", 1), ("standalone", 2)],
                         indirect=["milvus_uri"])
def test_quick_set_end_to_end(services_env: dict[str, str], quick_fixtures: Path, crop_grid: int) -> None:
    """With tiles (the default) every copy is found; with whole frames only, all but picture-in-picture."""
    report = run_evaluation(quick_fixtures, {**default_params(), "crop_grid": crop_grid})
    assert report.segment["f1"] >= (0.93 if crop_grid > 1 else 0.85), report.segment
    assert report.video["precision"] == 1.0, report.video
    gt = json.loads(quick_fixtures.read_text())
    by_query = {r["query"]: r for r in report.queries}
    for query in gt["queries"]:
        found = {m["name"] for m in by_query[query["name"]]["matches"]}
        expected = {m["reference"] for m in query["matches"]}
        if query.get("hard") and crop_grid == 1:  # an inset is invisible to whole-frame descriptors
            assert found <= expected, query["name"]
        else:
            assert found == expected, query["name"]

    # The rows behind the report are in PostgreSQL, in the documented JSON shape.
    insert = by_query["q_clip05_2-8_in_clip09_at2.mp4"]
    with session_scope(context.engine()) as session:
        stored = jobs.result_json(jobs.get_job(session, insert["job_id"]))
    assert stored["status"] == "done" and stored["error"] is None
    assert set(stored) == {"job_id", "query", "status", "error", "timings", "matches"}
    [match] = stored["matches"]
    assert match["name"] == "clip05_bikes.mp4"
    assert set(match) == {"video_id", "name", "score", "segments"}
    [segment] = match["segments"]
    assert segment["query_start"] == pytest.approx(2, abs=1.01)
    assert segment["ref_start"] == pytest.approx(2, abs=1.01)
    assert segment["query_end"] - segment["query_start"] == pytest.approx(6, abs=1.5)
    assert {"search", "select", "load_candidates", "localise", "decode_embed"} <= set(stored["timings"])


@pytest.mark.parametrize("milvus_uri", ["lite"], indirect=True)
def test_full_benchmark_keeps_its_accuracy(services_env: dict[str, str], full_fixtures: Path) -> None:
    report = run_evaluation(full_fixtures, default_params())
    assert report.segment["f1"] >= 0.96, report.segment
    assert report.video == {"precision": 1.0, "recall": 1.0}, report.video
    gt = json.loads(full_fixtures.read_text())
    unrelated = {q["name"] for q in gt["queries"] if not q["matches"]}
    assert len(unrelated) >= 5
    assert all(r["matches"] == [] for r in report.queries if r["query"] in unrelated)
