"""The query's frame search on every Milvus Copycat talks to (Lite file, Lite server, 2.3.5 standalone):
unreportable videos never hold hit slots, batched requests, per-video hits (grouped by Milvus where offered)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from workers.localise import TemporalNetwork, TNParams
from workers.matching import match_query
from workers.stores.vectors import VectorIndex
from workers.types import QueryParams

pytestmark = pytest.mark.every_milvus  # the store contract: on each backend (tests/conftest.py)
DIM = 64


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(frames: np.ndarray, seed: int, cosine: float) -> np.ndarray:
    x = cosine * frames + np.sqrt(1 - cosine**2) * unit(frames.shape[0], seed)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def library(milvus_uri: str) -> tuple[VectorIndex, dict[str, np.ndarray], np.ndarray]:
    """A collection where a video being re-indexed holds every query frame's 4 nearest frames."""
    source = unit(20, 4)
    references = {"reindexing": np.concatenate([near(source, s, 0.99) for s in range(10, 14)]),
                  "copy": near(source, 5, 0.9), "noise": unit(60, 6)}
    index = VectorIndex(milvus_uri, "test", DIM, prefix=f"t{uuid.uuid4().hex[:8]}", search_batch=7)
    for video_id, matrix in references.items():
        index.replace_video(video_id, matrix)
    index.count()  # a Strong read: every row is visible to the (Bounded) searches that follow
    yield index, references, source
    index.client.drop_collection(index.collection)
    index.close()


def test_refused_videos_are_searched_around_not_filtered_after(library) -> None:  # noqa: ANN001
    index, references, source = library
    hits = index.search(source, 4)
    assert len(hits) == 20 * 4 and set(hits.video_id) == {"reindexing"}  # batched: 7 + 7 + 6 rows
    assert sorted(set(hits.query_frame.tolist())) == list(range(20))
    assert "reindexing" not in set(index.search(source, 4, exclude={"reindexing"}).video_id)
    kwargs = {"fps": 1.0, "search": index.search, "localiser": TemporalNetwork(TNParams(device="cpu")),
              "load_references": lambda ids: {v: references[v] for v in ids},
              "params": QueryParams(top_k=1, search_limit=4, min_score=0.35)}
    [match] = match_query(source, searchable=lambda ids: set(ids) - {"reindexing"}, **kwargs)
    assert match.video_id == "copy"


def test_per_video_hits_on_every_server(library, request: pytest.FixtureRequest) -> None:  # noqa: ANN001
    """2.3.5 ignores grouping silently, so it gets the numpy reduction; Milvus Lite groups when asked ("on")."""
    index, _, source = library
    backend = request.node.callspec.params["milvus_uri"]
    assert not index.uses_grouping  # auto: servers from 2.4 only
    reduced = index.search(source, 4, per_video=True)
    assert len(reduced) == 20 and set(reduced.video_id) == {"reindexing"}  # the 4 frames were all its own
    index.grouping = "on"
    grouped = index.search(source, 4, per_video=True)
    if backend == "standalone":
        assert not index.uses_grouping
        assert len(grouped) == 20
    else:  # Milvus groups: each row gets its 3 nearest videos, each once
        assert index.uses_grouping
        rows = [set(grouped.video_id[grouped.query_frame == r]) for r in range(20)]
        assert all(r == {"reindexing", "copy", "noise"} for r in rows)
        assert len(grouped) == 60
        best = np.max(source @ np.concatenate([near(source, s, 0.99) for s in range(10, 14)]).T, axis=1)
        np.testing.assert_allclose(grouped.score[grouped.video_id == "reindexing"], best, atol=1e-4)


def test_merged_runs_hold_one_row_each_and_re_ingest_drops_the_rest(milvus_uri: str) -> None:
    """With ``merge_cosine`` a static shot is one row; re-indexing the same video without merging and then
    with it again leaves exactly the rows of the last run (no stale frame rows)."""
    shot = unit(1, 21)
    matrix = np.concatenate([near(np.repeat(shot, 30, 0), 22, 0.995), unit(10, 23)])
    index = VectorIndex(milvus_uri, "test", DIM, prefix=f"t{uuid.uuid4().hex[:8]}", merge_cosine=0.95)
    try:
        assert index.replace_video("v", matrix) == 11
        assert index.count("v") == 11
        index.merge_cosine = 0.0
        assert index.replace_video("v", matrix) == 40 and index.count("v") == 40
        index.merge_cosine = 0.95
        assert index.replace_video("v", matrix) == 11 and index.count("v") == 11
        hits = index.search(shot, 3)
        assert hits.video_id[0] == "v" and hits.frame[0] == 0  # the run's first frame stands for the shot
    finally:
        index.client.drop_collection(index.collection)
        index.close()


def test_a_shorter_version_drops_its_stale_rows_by_id_when_the_bound_is_known(milvus_uri: str) -> None:
    """Re-indexing a video with fewer frames leaves exactly the new rows; with the bound of what it may hold
    (``videos.vector_frames``) no delete evaluates a filter (Milvus Lite materialises every row of the
    collection for one); without it the filter still removes them."""
    index = VectorIndex(milvus_uri, "test", DIM, prefix=f"t{uuid.uuid4().hex[:8]}")
    deletes: list[dict[str, object]] = []
    delete = index.client.delete
    index.client.delete = lambda *args, **kwargs: deletes.append(kwargs) or delete(*args, **kwargs)
    try:
        long, short = unit(40, 31), unit(11, 32)
        assert index.replace_video("v", long, known_frames=0) == 40
        assert index.replace_video("v", short, known_frames=40) == 11 and index.count("v") == 11
        assert deletes and all("filter" not in d for d in deletes)
        assert index.replace_video("v", long, known_frames=11) == 40
        deletes.clear()
        assert index.replace_video("v", short) == 11 and index.count("v") == 11
        assert any("filter" in d for d in deletes)
    finally:
        index.client.drop_collection(index.collection)
        index.close()
