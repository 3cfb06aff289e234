"""The query's search at scale: requests within Milvus's limits, per-video hits, unreportable videos held
out of the hit slots (``workers.matching.search_reportable``), over the exact in-memory index."""

from __future__ import annotations

import numpy as np
import pytest

from workers.localise import TemporalNetwork, TNParams
from workers.matching import MAX_SEARCH_ROUNDS, match_query, search_reportable
from workers.stores.memory import MemoryLibrary
from workers.stores.milvus import SEARCH_MAX_BYTES, SEARCH_MAX_NQ
from workers.stores.vectors import HIT_BYTES, best_per_video, search_batches
from workers.types import QueryParams, SearchHits


def unit(n: int, seed: int, dim: int = 64) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def near(frames: np.ndarray, seed: int, cosine: float = 0.9) -> np.ndarray:
    noise = unit(frames.shape[0], seed, frames.shape[1])
    x = cosine * frames + np.sqrt(1 - cosine**2) * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_batches_cover_every_row_once_within_the_limits() -> None:
    for rows, dim, limit, batch in [(18000, 512, 64, 100_000), (300, 512, 64, 256), (1, 512, 64, 256),
                                    (40000, 4096, 16384, 100_000), (0, 512, 64, 256)]:
        slices = search_batches(rows, dim, limit, batch=batch)
        assert [i for s in slices for i in range(s.start, s.stop)] == list(range(rows))
        for s in slices:
            nq = s.stop - s.start
            assert 1 <= nq <= min(batch, SEARCH_MAX_NQ)
            assert nq * dim * 4 <= SEARCH_MAX_BYTES and nq * limit * HIT_BYTES <= SEARCH_MAX_BYTES
    assert len(search_batches(300, 512, 64, batch=256)) == 2  # the setting still decides when it is smaller
    # an hour-long tiled query at 1 fps: 18000 vectors, the answer (64 hits each) sets the batch size
    assert max(s.stop - s.start for s in search_batches(18000, 512, 64, batch=100_000)) == SEARCH_MAX_BYTES // (
        64 * HIT_BYTES)
    # a large filter leaves less room; one that leaves none is refused with a clear message
    assert len(search_batches(5000, 512, 64, batch=100_000, filter_bytes=SEARCH_MAX_BYTES // 2)) > len(
        search_batches(5000, 512, 64, batch=100_000))
    with pytest.raises(ValueError, match="do not fit"):
        search_batches(10, 512, 64, batch=10, filter_bytes=SEARCH_MAX_BYTES)


def test_best_per_video_keeps_each_video_once_per_row() -> None:
    hits = SearchHits(np.array([0, 0, 0, 1, 1, 1], np.int32), np.array(["a", "b", "a", "b", "b", "a"], object),
                      np.array([1, 2, 3, 4, 5, 6], np.int32), np.array([0.5, 0.7, 0.9, 0.2, 0.8, 0.1], np.float32))
    best = best_per_video(hits)
    assert best.query_frame.tolist() == [0, 0, 1, 1]
    assert best.video_id.tolist() == ["a", "b", "b", "a"]
    assert best.frame.tolist() == [3, 2, 5, 6]
    np.testing.assert_allclose(best.score, [0.9, 0.7, 0.8, 0.1])
    assert len(best_per_video(hits.subset(np.zeros(6, bool)))) == 0


def test_memory_grouping_returns_distinct_videos_and_honours_exclude() -> None:
    shot = unit(1, 1)
    references = {"static": np.repeat(shot, 50, 0), "other": near(np.repeat(shot, 5, 0), 2), "far": unit(5, 3)}
    library = MemoryLibrary(references)
    plain = library.search(shot, 3)
    assert set(plain.video_id) == {"static"}  # one static shot fills every slot
    grouped = library.search(shot, 3, per_video=True)
    assert grouped.video_id.tolist() == ["static", "other", "far"]
    np.testing.assert_allclose(grouped.score[1], (references["other"] @ shot[0]).max(), rtol=1e-6)
    assert "static" not in set(library.search(shot, 3, exclude={"static"}).video_id)


def test_unreportable_videos_give_their_hit_slots_to_real_candidates() -> None:
    """A video being re-indexed holds many frames like the query's: with the hit slots left to it, the real
    copy would not be among any frame's hits, and no filter after the search could bring it back."""
    source = unit(20, 4)
    references = {"reindexing": np.concatenate([near(source, s, 0.99) for s in range(10, 14)]),
                  "copy": near(source, 5, 0.9), "noise": unit(60, 6)}
    library = MemoryLibrary(references)
    params = QueryParams(top_k=1, search_limit=4, min_score=0.35)
    kwargs = {"fps": 1.0, "search": library.search, "load_references": library.load, "params": params,
              "localiser": TemporalNetwork(TNParams(device="cpu"))}
    assert "copy" not in set(library.search(source, 4).video_id)  # the 4 slots of every frame are taken
    asked: list[list[str]] = []

    def searchable(ids: list[str]) -> set[str]:
        asked.append(list(ids))
        return set(ids) - {"reindexing"}

    [match] = match_query(source, searchable=searchable, **kwargs)
    assert match.video_id == "copy"
    assert library.searches == 1 + 2 and len(asked) == 2  # one plain search, one without the refused video


def test_search_rounds_are_bounded_and_never_report_a_refused_video() -> None:
    """Each round may reveal another unreportable video; after MAX_SEARCH_ROUNDS the rest are dropped."""
    base = unit(3, 7)
    references = {f"bad-{i}": near(base, 20 + i, 0.999 - i * 0.01) for i in range(MAX_SEARCH_ROUNDS + 2)}
    references["good"] = near(base, 40, 0.5)
    library = MemoryLibrary(references)
    hits = search_reportable(library.search, base, QueryParams(search_limit=3),
                             searchable=lambda ids: {v for v in ids if v == "good"})
    assert library.searches == MAX_SEARCH_ROUNDS
    assert not any(v.startswith("bad-") for v in hits.video_id)


def test_per_video_selection_counts_query_frames_not_static_frames() -> None:
    """With per-video hits a long static shot no longer outweighs a video matching many query frames."""
    query = unit(10, 8)
    static = np.repeat(near(query[:1], 9, 0.8), 64, 0)  # one frame like query frame 0, 64 times
    copy = near(query, 10, 0.6)  # every query frame, less alike
    library = MemoryLibrary({"static": static, "copy": copy})
    kwargs = {"fps": 1.0, "search": library.search, "load_references": library.load,
              "localiser": TemporalNetwork(TNParams(device="cpu"))}
    from workers.selection import select_candidates

    plain = library.search(query, 64)
    assert select_candidates(plain.video_id, plain.score, top_k=1)[0].video_id == "static"
    [match] = match_query(query, params=QueryParams(top_k=1, per_video=True, min_score=0.1), **kwargs)
    assert match.video_id == "copy"


def test_runs_of_near_identical_frames_are_indexed_once() -> None:
    from workers.runs import run_starts

    shot_a, shot_b = unit(1, 11), unit(1, 12)
    matrix = np.concatenate([near(np.repeat(shot_a, 5, 0), 13, 0.99), np.zeros((2, 64), np.float32),
                             near(np.repeat(shot_a, 3, 0), 14, 0.99), near(np.repeat(shot_b, 4, 0), 15, 0.99)])
    assert run_starts(matrix, 0.95).tolist() == [0, 7, 10]  # a zero frame ends a run; a new shot starts one
    assert run_starts(matrix, 0.0).tolist() == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13]
    assert run_starts(matrix, 1.0).tolist() == [0, 1, 2, 3, 4, 7, 8, 9, 10, 11, 12, 13]
    library = MemoryLibrary({"v": matrix}, merge_cosine=0.95)
    assert library.frame.tolist() == [0, 7, 10] and library.load(["v"])["v"].shape == matrix.shape
