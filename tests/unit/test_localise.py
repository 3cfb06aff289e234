"""Tests for workers/localise.py: TN boxes (exact VCSL semantics), its options, seconds and the video score."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from workers.localise import (
    MASKED_SIMILARITY,
    VCSL_TN,
    Localiser,
    TemporalNetwork,
    TNParams,
    _stable_top_k,
    bounded_score,
    bounded_video_score,
    boxes_to_segments,
    drop_uninformative,
    informative_share,
    mask_similarity,
    merge_diagonal,
    query_coverage,
    refine_ends,
    similarity,
    snap_ends_to_diagonal,
    suppress_query_overlap,
    tn_boxes,
    video_score,
)
from workers.types import Segment


def vcsl(**changes: object) -> TNParams:
    """VCSL's TN (``VCSL_TN``) with ``changes``: these tests turn on each option beyond it by name."""
    return replace(VCSL_TN, **changes)  # type: ignore[arg-type]


def reference_tn(
    sim: np.ndarray,
    tn_max_step: int = 10,
    tn_top_k: int = 5,
    max_path: int = 10,
    min_sim: float = 0.2,
    min_length: int = 5,
    max_iou: float = 0.3,
) -> list[tuple[list[int], float]]:
    """Slow but obvious TN, written line by line from spec §2 with dicts standing in for networkx.

    ``succ[u]`` / ``pred[v]`` are insertion-ordered dicts of edge weights, as in a networkx DiGraph.
    """
    s = np.asarray(sim, dtype=np.float64).tolist()
    t_q, t_r = len(s), len(s[0])
    k = min(tn_top_k, t_r)
    topk = [sorted(range(t_r), key=lambda j: -s[q][j])[:k] for q in range(t_q)]  # sorted() is stable
    pair = {0: (-1, -1)}
    for q in range(t_q):
        for rank in range(k):
            pair[1 + q * k + rank] = (q, topk[q][rank])
    succ: dict[int, dict[int, float]] = {v: {} for v in pair}
    pred: dict[int, dict[int, float]] = {v: {} for v in pair}

    def add_edge(u: int, v: int, w: float) -> None:
        succ[u][v] = w
        pred[v][u] = w

    for qi in range(t_q):
        reached: set[int] = set()
        for qj in range(qi + 1, min(t_q, qi + tn_max_step)):
            new: set[int] = set()
            for r in range(k):
                for c in range(k):
                    ri, rj = topk[qi][c], topk[qj][r]
                    c2 = 0 < rj - ri < tn_max_step
                    c3 = not any(ri < x < rj for x in reached)
                    if c2 and c3 and s[qj][rj] >= min_sim:
                        add_edge(1 + qi * k + c, 1 + qj * k + r, s[qj][rj])
                        new.add(rj)
            reached |= new
    sink = len(pair) - 1
    qs, rs = pair[sink]
    for i in range(sink):
        qi, ri = pair[i]
        if qs > qi and rs > ri and qs - qi <= tn_max_step and rs - ri <= tn_max_step:
            add_edge(i, sink, 0.0)

    indegree = {v: len(pred[v]) for v in pair}
    generation = [v for v in sorted(pair) if indegree[v] == 0]
    order = []
    while generation:
        order.extend(generation)
        following = []
        for u in generation:
            for v in succ[u]:
                indegree[v] -= 1
                if indegree[v] == 0:
                    following.append(v)
        generation = following

    boxes: list[tuple[list[int], float]] = []
    for _ in range(max_path + 1):
        dist: dict[int, tuple[float, int]] = {}
        for v in order:
            options = [(dist[u][0] + w, u) for u, w in pred[v].items()]
            best = max(options, key=lambda x: x[0]) if options else (0.0, v)
            dist[v] = best if best[0] >= 0 else (0.0, v)
        v = max(dist, key=lambda x: dist[x][0])
        path = [v]
        while dist[v][1] != v:
            v = dist[v][1]
            path.append(v)
        path.reverse()
        for u, v in zip(path, path[1:], strict=False):
            add_edge(u, v, 0.0)
        path = [v for v in path if v not in (0, sink)]
        if not path:
            break
        score = 0.0
        for v in path:
            score += s[pair[v][0]][pair[v][1]]
        qq, rr = [pair[v][0] for v in path], [pair[v][1] for v in path]
        box = [min(qq), min(rr), max(qq), max(rr)] if score > 0 else [0, 0, 0, 0]
        ave_len = ((box[3] - box[1]) + (box[2] - box[0])) / 2
        ious = [0.0]
        for b, _ in boxes:
            inter = max(0, min(box[2], b[2]) - max(box[0], b[0]) + 1) * max(
                0, min(box[3], b[3]) - max(box[1], b[1]) + 1
            )
            areas = (box[2] - box[0] + 1) * (box[3] - box[1] + 1) + (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
            ious.append(inter / (areas - inter))
        if (
            ave_len > 0
            and score / ave_len > min_sim
            and min(box[3] - box[1], box[2] - box[0]) > min_length
            and max(ious) < max_iou
        ):
            boxes.append((box, score / ave_len))
    return boxes


def unit_rows(n: int, dim: int = 256, seed: int = 0) -> np.ndarray:
    """float64 [n, dim] random unit vectors from ``np.random.default_rng(seed)``."""
    x = np.random.default_rng(seed).standard_normal((n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def noise(t_q: int, t_r: int, low: float = -0.1, high: float = 0.1, seed: int = 0) -> np.ndarray:
    """float64 [t_q, t_r] similarities of unrelated frames, all below the default min_sim."""
    return np.random.default_rng(seed).uniform(low, high, (t_q, t_r))


def plant(sim: np.ndarray, q0: int, r0: int, n: int, value: float = 0.9) -> np.ndarray:
    """Copy of n frames: query q0 + i matches reference r0 + i."""
    sim[np.arange(q0, q0 + n), np.arange(r0, r0 + n)] = value
    return sim


def random_case(rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A small matrix with 0-3 planted diagonal copies (ties in 40% of cases) and random hyperparameters."""
    t_q, t_r = int(rng.integers(1, 41)), int(rng.integers(1, 51))
    sim = rng.uniform(-0.3, 0.4, (t_q, t_r))
    for _ in range(rng.integers(0, 4)):
        q0, r0, n = rng.integers(0, t_q), rng.integers(0, t_r), rng.integers(2, 30)
        n = min(n, t_q - q0, t_r - r0)
        sim[np.arange(q0, q0 + n), np.arange(r0, r0 + n)] = rng.uniform(0.3, 1.0, n)
    if rng.random() < 0.4:
        sim = np.round(sim, 1)  # many exact ties: exercises every tie-breaking rule
    params = {
        "tn_max_step": int(rng.integers(1, 13)),
        "tn_top_k": int(rng.integers(1, 9)),
        "max_path": int(rng.integers(0, 13)),
        "min_sim": float(rng.choice([-0.1, 0.0, 0.1, 0.2, 0.3, 0.5])),
        "min_length": int(rng.integers(0, 7)),
        "max_iou": float(rng.choice([0.0, 0.3, 0.5, 1.0])),
    }
    return sim, params


# Hand-built matrices.


def test_identity_is_one_diagonal_box() -> None:
    """Self-similarity of 20 distinct frames: one box over everything, towhee score 20/19."""
    assert tn_boxes(np.eye(20), VCSL_TN) == [([0, 0, 19, 19], 20 / 19)]


def test_offset_copy() -> None:
    """Query 0-19 copies reference 7-26."""
    boxes = tn_boxes(plant(noise(20, 40), 0, 7, 20), VCSL_TN)
    assert [b for b, _ in boxes] == [[0, 7, 19, 26]]
    assert boxes[0][1] == pytest.approx(0.9 * 20 / 19)


def test_two_separated_copies_in_extraction_order() -> None:
    """The longer copy is extracted first; each copy's first node has no possible predecessor."""
    sim = plant(plant(noise(60, 60), 0, 30, 25), 30, 0, 20)
    assert [b for b, _ in tn_boxes(sim, VCSL_TN)] == [[0, 30, 24, 54], [30, 0, 49, 19]]


def test_no_copy_gives_nothing() -> None:
    assert tn_boxes(noise(30, 40), VCSL_TN) == []


def test_single_query_frame_gives_nothing() -> None:
    sim = np.ones((1, 10))
    assert tn_boxes(sim, VCSL_TN) == [] == reference_tn(sim)


def test_empty_matrix_gives_nothing() -> None:
    assert tn_boxes(np.zeros((0, 5)), VCSL_TN) == [] == tn_boxes(np.zeros((5, 0)), VCSL_TN)


def test_fewer_reference_frames_than_top_k() -> None:
    assert tn_boxes(np.eye(3), vcsl(min_length=1)) == [([0, 0, 2, 2], 3 / 2)]
    sim = plant(noise(12, 3), 0, 0, 3)
    assert tn_boxes(sim, vcsl(min_length=0)) == reference_tn(sim, min_length=0)


def test_negative_similarities_are_used_raw() -> None:
    """Strongly negative background changes nothing; only C4 and acceptance threshold similarities."""
    assert tn_boxes(noise(30, 30, -1.0, -0.5), VCSL_TN) == []
    sim = plant(noise(30, 30, -1.0, -0.5), 0, 3, 20)
    assert [b for b, _ in tn_boxes(sim, VCSL_TN)] == [[0, 3, 19, 22]]


def test_nan_similarities_rank_last_within_their_own_row() -> None:
    """A NaN row (a broken frame descriptor) once took the next row's indices, or crashed as the last row."""
    sim = np.random.default_rng(0).random((6, 8))
    sim[2] = np.nan
    sim[4, [1, 5]] = np.nan
    sim[5] = np.nan
    assert np.array_equal(_stable_top_k(sim, 3), np.argsort(-sim, axis=1, kind="stable")[:, :3])
    copy = plant(noise(30, 40), 5, 12, 20)
    broken = copy.copy()
    broken[29] = np.nan
    assert tn_boxes(broken, VCSL_TN) == tn_boxes(np.where(np.isnan(broken), -np.inf, broken), VCSL_TN) != []


def test_not_a_matrix_is_rejected() -> None:
    with pytest.raises(ValueError, match="2-D"):
        tn_boxes(np.ones(5), VCSL_TN)
    with pytest.raises(ValueError, match="tn_max_step"):
        tn_boxes(np.eye(5), vcsl(tn_max_step=0))


# Published behaviour of the reference.


def test_self_match_of_53_random_vectors() -> None:
    """Spec §2.7: [[0,0,52,52],[5,2,24,24]]; the second box reuses nodes of the first path.

    Reproduced by float64 ``np.random.default_rng(0).standard_normal((53, 256))`` with rows normalised.
    The legacy ``np.random.seed(0); np.random.randn`` data (float64 or float32) gives only the first box,
    and float32 default_rng data gives [6, 9, 24, 24] second: the second box depends on the random data.
    """
    x = unit_rows(53)
    assert [b for b, _ in tn_boxes(x @ x.T, VCSL_TN)] == [[0, 0, 52, 52], [5, 2, 24, 24]]


@pytest.mark.parametrize("n", [53, 168, 84])
def test_towhee_scores_of_self_matches(n: int) -> None:
    """towhee published 53/52, 168/167 and 84/83 for self-matches of these lengths (spec §3)."""
    x = unit_rows(n)
    box, score = tn_boxes(x @ x.T, VCSL_TN)[0]
    assert box == [0, 0, n - 1, n - 1]
    assert score == pytest.approx(n / (n - 1), rel=1e-7)


def test_matches_obvious_reference_on_random_cases() -> None:
    rng = np.random.default_rng(2024)
    found = 0
    for _ in range(200):
        sim, params = random_case(rng)
        expected = reference_tn(sim, **params)
        assert tn_boxes(sim, vcsl(**params)) == expected, (sim.shape, params)
        found += bool(expected)
    assert found > 50  # the cases do exercise accepted boxes


def test_a_long_copy_is_one_box() -> None:
    """A 600 x 600 self-similarity (ten minutes at 1 fps) gives its whole diagonal first; its speed is measured by
    ``bench/query_speed.py``, not asserted here."""
    x = unit_rows(600, dim=64)
    sim = (x @ x.T).astype(np.float32)
    boxes = tn_boxes(sim, vcsl(tn_top_k=10))
    assert boxes[0][0] == [0, 0, 599, 599]


# Options beyond the reference.


def late_copy() -> np.ndarray:
    """Query 5-19 copies reference 12-26 over a background of zeros (top-k of those rows: references 0-4)."""
    return plant(np.zeros((20, 40)), 5, 12, 15)


def test_path_starts_before_the_copy_unless_trimmed() -> None:
    """TN never thresholds a path's first node: (0, 3) -> (5, 12) is a valid first edge."""
    assert [b for b, _ in tn_boxes(late_copy(), VCSL_TN)] == [[0, 3, 19, 26]]
    assert tn_boxes(late_copy(), vcsl(trim=True)) == [([5, 12, 19, 26], pytest.approx(0.9 * 15 / 14))]


def test_merge_gap_joins_fragments_of_one_diagonal() -> None:
    """Two 20-frame copies on the same diagonal with 12 frames between: too far apart for one TN path."""
    sim = plant(plant(np.zeros((60, 60)), 0, 0, 20), 32, 32, 20)
    assert [b for b, _ in tn_boxes(sim, VCSL_TN)] == [[0, 0, 19, 19], [32, 32, 51, 51]]
    assert [b for b, _ in tn_boxes(sim, vcsl(merge_gap=11))] == [[0, 0, 19, 19], [32, 32, 51, 51]]
    assert tn_boxes(sim, vcsl(merge_gap=12)) == [([0, 0, 51, 51], pytest.approx(0.9 * 20 / 19))]


def test_merge_diagonal_weights_scores_by_query_length() -> None:
    boxes = [([12, 13, 20, 21], 0.5), ([0, 0, 9, 9], 1.0)]
    assert merge_diagonal(boxes, merge_gap=3) == [([0, 0, 20, 21], pytest.approx((10 * 1.0 + 9 * 0.5) / 19))]
    assert merge_diagonal(boxes, merge_gap=2) == sorted(boxes)


def test_merge_diagonal_keeps_other_diagonals_apart() -> None:
    boxes = [([0, 0, 9, 9], 1.0), ([10, 20, 19, 29], 1.0)]
    assert merge_diagonal(boxes, merge_gap=100) == boxes


# Seconds, video score and the Localiser.


def test_boxes_to_segments_counts_whole_frames() -> None:
    """At 2 frames/s, inclusive frames 2-5 are seconds [1, 3); the result is sorted by query start."""
    segments = boxes_to_segments([([10, 0, 11, 1], 0.5), ([2, 3, 5, 7], 1.0)], fps=2.0)
    assert segments == [Segment(1.0, 3.0, 1.5, 4.0, 1.0), Segment(5.0, 6.0, 0.0, 1.0, 0.5)]


def test_video_score_is_the_best_segment_score() -> None:
    """A short strong copy inside a long query counts as much as a full copy."""
    segments = [Segment(0.0, 10.0, 0.0, 10.0, 0.6), Segment(5.0, 20.0, 30.0, 45.0, 0.9)]
    assert video_score(segments) == pytest.approx(0.9)
    assert video_score([]) == 0.0


def test_query_coverage_is_score_weighted_coverage() -> None:
    segments = [Segment(0.0, 10.0, 0.0, 10.0, 1.0), Segment(5.0, 20.0, 30.0, 45.0, 0.5)]
    assert query_coverage(segments, query_duration=40.0) == pytest.approx((10 * 1.0 + 10 * 0.5) / 40)
    assert query_coverage([], query_duration=40.0) == 0.0


def test_query_coverage_equals_towhee_duplicate_filter_at_one_fps() -> None:
    rng = np.random.default_rng(3)
    t_q = 50
    boxes = []
    for _ in range(4):
        qs, rs = int(rng.integers(0, 40)), int(rng.integers(0, 40))
        boxes.append(([qs, rs, qs + int(rng.integers(0, 10)), rs + 5], float(rng.uniform(0.2, 1.1))))
    w = np.zeros(t_q)
    for (qs, _, qe, _), score in boxes:
        w[qs : qe + 1] = np.maximum(w[qs : qe + 1], score)
    assert query_coverage(boxes_to_segments(boxes, fps=1.0), query_duration=t_q) == pytest.approx(w.sum() / t_q)


def test_temporal_network_localises_a_copy_in_seconds() -> None:
    """The query is reference frames 10-39 sampled at 2 frames/s: query [0, 15) s ~ reference [5, 20) s.

    TN also returns a weaker box inside the copy (a second path reusing the first one's nodes).
    """
    reference = unit_rows(60).astype(np.float32)
    localiser = TemporalNetwork(vcsl(trim=True, device="cpu"))
    assert isinstance(localiser, Localiser)
    segments = localiser.localise(reference[10:40], reference, fps=2.0)
    assert segments[0] == Segment(0.0, 15.0, 5.0, 20.0, pytest.approx(30 / 29, rel=1e-6))
    assert [s.query_start for s in segments] == sorted(s.query_start for s in segments)
    assert all(s.query_start - s.ref_start == -5.0 and s.score < segments[0].score for s in segments[1:])


def test_temporal_network_merge_gap_reads_one_copy_as_one_segment() -> None:
    reference = unit_rows(60).astype(np.float32)
    tn = TemporalNetwork(vcsl(trim=True, merge_gap=0, device="cpu"))
    segments = tn.localise(reference[10:40], reference, fps=2.0)
    assert [(s.query_start, s.query_end, s.ref_start, s.ref_end) for s in segments] == [(0, 15, 5, 20)]


def test_temporal_network_accepts_float16_on_the_auto_device() -> None:
    reference = unit_rows(60)
    tn = TemporalNetwork(vcsl(trim=True))
    full = tn.localise(reference[10:40], reference, 1.0)
    half = tn.localise(reference[10:40].astype(np.float16), reference.astype(np.float16), 1.0)
    assert (half[0].query_start, half[0].query_end, half[0].ref_start, half[0].ref_end) == (0, 30, 10, 40)
    assert half[0].score == pytest.approx(full[0].score, rel=1e-3)


def test_temporal_network_rejects_mismatched_features() -> None:
    with pytest.raises(ValueError, match="T_q, D"):
        TemporalNetwork(TNParams(device="cpu")).localise(np.ones((5, 8)), np.ones((5, 16)), 1.0)


def test_the_product_localiser_differs_from_vcsl_only_by_named_options() -> None:
    """``TemporalNetwork()`` runs the product's parameters; VCSL's six TN parameters are 10/5/10/0.2/5/0.3."""
    assert TemporalNetwork().params == TNParams()
    assert (VCSL_TN.tn_max_step, VCSL_TN.tn_top_k, VCSL_TN.max_path, VCSL_TN.min_sim, VCSL_TN.min_length,
            VCSL_TN.max_iou) == (10, 5, 10, 0.2, 5, 0.3)
    reference = unit_rows(60, seed=12).astype(np.float32)
    [segment] = TemporalNetwork(TNParams(device="cpu")).localise(reference[10:40], reference, fps=1.0)
    assert (segment.query_start, segment.query_end, segment.ref_start, segment.ref_end) == (0, 30, 10, 40)
    assert 0 < segment.score <= 1  # bounded


def test_split_jump_separates_footage_inserted_into_a_copy() -> None:
    """Query = reference frames 0-3, then 8 frames from elsewhere, then reference frames 4-11.

    TN may step over the 8 inserted frames (a jump < tn_max_step), claiming they are copied too; with
    ``split_jump`` the path is cut where its time offset jumps and each piece stands on its own.
    """
    reference = unit_rows(12, seed=1)
    elsewhere = unit_rows(8, seed=2)
    query = np.concatenate([reference[:4], elsewhere, reference[4:]])
    sim = query @ reference.T
    whole = tn_boxes(sim, vcsl(min_length=2, trim=True))
    assert [box for box, _ in whole][0] == [0, 0, 19, 11]
    split = tn_boxes(sim, vcsl(min_length=2, trim=True, split_jump=3))
    assert sorted(box for box, _ in split) == [[0, 0, 3, 3], [12, 4, 19, 11]]


# Low-information frames (black, blank, title cards) kept out of localisation.


def blank_and_content(n_blank: int, content: np.ndarray, black: np.ndarray) -> np.ndarray:
    """``n_blank`` copies of the one 'black frame' descriptor, then ``content`` rows: float32 [n_blank + T, D]."""
    return np.concatenate([np.repeat(black[None], n_blank, axis=0), content]).astype(np.float32)


def test_mask_similarity_lowers_masked_rows_and_columns() -> None:
    sim = np.arange(12, dtype=np.float32).reshape(3, 4) / 12
    masked = mask_similarity(sim, np.array([True, False, True]), np.array([True, True, False, True]))

    expected = sim.copy()
    expected[1, :] = MASKED_SIMILARITY
    expected[:, 2] = MASKED_SIMILARITY
    np.testing.assert_array_equal(masked, expected)
    assert masked.dtype == sim.dtype
    np.testing.assert_array_equal(mask_similarity(sim, None, None), sim)


def test_mask_similarity_per_view_or_for_all_views() -> None:
    sim = np.ones((2, 3, 4), dtype=np.float32)  # [V, T_q, T_r]
    per_view = mask_similarity(sim, np.array([[True, True, True], [False, True, True]]), None)
    all_views = mask_similarity(sim, np.array([True, False, True]), None)

    assert per_view[0].min() == 1 and (per_view[1, 0] == MASKED_SIMILARITY).all() and per_view[1, 1:].min() == 1
    assert (all_views[:, 1] == MASKED_SIMILARITY).all() and all_views[:, [0, 2]].min() == 1
    with pytest.raises(ValueError, match="query mask"):
        mask_similarity(sim, np.ones(4, bool), None)
    with pytest.raises(ValueError, match="reference mask"):
        mask_similarity(sim, None, np.ones(3, bool))


def test_similarity_masks_each_view_before_taking_the_best() -> None:
    """A blank tile of an informative frame does not lend its similarity to the frame."""
    reference = unit_rows(4, seed=3)
    views = np.stack([reference[:2], reference[2:]])  # view 1 of frame 0 equals reference frame 2
    sim = similarity(views, reference, "cpu", query_informative=np.array([[True, True], [False, True]]))

    assert sim[0, 2] < 0.9  # view 1 (masked) would have scored 1.0 there
    assert sim[0, 0] == pytest.approx(1.0)
    assert sim[1, 3] == pytest.approx(1.0)


def test_black_on_black_is_no_copy_once_masked() -> None:
    """An 8 s black query against a 20 s black reference: a 'copy' scoring above 1 unless masked."""
    black = unit_rows(1, seed=4)[0]
    nothing = np.zeros((0, black.shape[0]))
    query, reference = blank_and_content(8, nothing, black), blank_and_content(20, nothing, black)
    tn = TemporalNetwork(vcsl(trim=True, min_length=3, merge_gap=2, device="cpu"))

    assert tn.localise(query, reference, 1.0)[0].score > 1
    assert tn.localise(query, reference, 1.0, query_informative=np.zeros(8, bool),
                       reference_informative=np.zeros(20, bool)) == []


def test_a_black_intro_is_left_out_of_the_copied_segment() -> None:
    """Query: 6 black frames, then reference content 5-14; reference: 3 black frames, then 20 content frames.

    Unmasked, the black frames of both videos form a segment of their own (or extend the copy's);
    masked, exactly the content is reported: query [6, 16) ~ reference [8, 18).
    """
    black = unit_rows(1, seed=5)[0]
    content = unit_rows(20, seed=6)
    query = blank_and_content(6, content[5:15], black)
    reference = blank_and_content(3, content, black)
    query_mask, reference_mask = np.arange(16) >= 6, np.arange(23) >= 3
    tn = TemporalNetwork(vcsl(trim=True, min_length=3, merge_gap=2, split_jump=3, device="cpu"))

    unmasked = tn.localise(query, reference, 1.0)
    masked = tn.localise(query, reference, 1.0, query_informative=query_mask, reference_informative=reference_mask)

    assert any(s.query_start < 6 for s in unmasked)
    assert [(s.query_start, s.query_end, s.ref_start, s.ref_end) for s in masked] == [(6, 16, 8, 18)]


def test_a_fade_through_black_inside_a_copy_keeps_the_copy() -> None:
    """Query = reference 0-19 with frames 8-10 faded to black: the copy is still one segment around the fade."""
    black = unit_rows(1, seed=7)[0]
    reference = unit_rows(20, seed=8).astype(np.float32)
    query = reference.copy()
    query[8:11] = black
    mask = np.ones(20, bool)
    mask[8:11] = False
    tn = TemporalNetwork(vcsl(trim=True, min_length=3, merge_gap=2, device="cpu"))

    [segment] = tn.localise(query, reference, 1.0, query_informative=mask, reference_informative=np.ones(20, bool))

    assert (segment.query_start, segment.query_end, segment.ref_start, segment.ref_end) == (0, 20, 0, 20)


def test_masks_that_keep_everything_change_nothing() -> None:
    reference = unit_rows(40, seed=9).astype(np.float32)
    tn = TemporalNetwork(vcsl(trim=True, merge_gap=2, device="cpu"))
    plain = tn.localise(reference[5:30], reference, 1.0)
    masked = tn.localise(reference[5:30], reference, 1.0, query_informative=np.ones(25, bool),
                         reference_informative=np.ones(40, bool))
    assert masked == plain


def test_segments_made_mostly_of_masked_frames_are_dropped() -> None:
    """Informative share is the smaller of the two sides; a frame counts if any of its views is informative."""
    segment = Segment(0.0, 10.0, 0.0, 5.0, 0.9)  # query frames 0-9 at 1 fps, reference frames 0-4
    query_mask = np.arange(12) < 3  # 3 of the segment's 10 query frames
    reference_mask = np.ones(5, bool)

    assert informative_share(segment, query_mask, reference_mask, 1.0) == pytest.approx(0.3)
    assert drop_uninformative([segment], query_mask, reference_mask, 1.0, min_share=0.5) == []
    assert drop_uninformative([segment], query_mask, reference_mask, 1.0, min_share=0.3) == [segment]
    views = np.stack([query_mask, np.arange(12) >= 3])
    assert informative_share(segment, views, reference_mask, 1.0) == 1.0
    # At 2 fps the same seconds cover frames 0-19 and 0-9.
    assert informative_share(segment, np.arange(20) < 10, np.ones(10, bool), 2.0) == pytest.approx(0.5)


# Scores bounded to [0, 1].


def test_bounded_score_of_an_exact_copy_depends_only_on_its_length() -> None:
    """TN scores an exact n-frame copy n / (n - 1); bounded, it is 1 - exp(-seconds / 3)."""
    reference = unit_rows(60, seed=10).astype(np.float32)
    for n, fps in ((4, 1.0), (10, 1.0), (20, 2.0)):
        tn = TemporalNetwork(vcsl(trim=True, min_length=1, merge_gap=0, device="cpu"))
        [segment] = tn.localise(reference[5 : 5 + n], reference, fps)
        assert segment.score == pytest.approx(n / (n - 1))
        assert bounded_score(segment, fps) == pytest.approx(1 - np.exp(-n / fps / 3))
    assert bounded_score(Segment(0, 3, 0, 3, 1.5), 1.0) == pytest.approx(0.632, abs=1e-3)
    assert bounded_score(Segment(0, 6, 0, 6, 1.2), 1.0) == pytest.approx(0.865, abs=1e-3)


def test_bounded_score_rises_with_similarity_and_length_and_stays_in_range() -> None:
    rng = np.random.default_rng(11)
    for _ in range(200):
        q0, length, r0, stretch = rng.uniform(0, 50), rng.uniform(0.5, 60), rng.uniform(0, 50), rng.uniform(0.5, 2)
        raw = rng.uniform(-1, 2)
        value = bounded_score(Segment(q0, q0 + length, r0, r0 + length * stretch, raw), 1.0)
        assert 0.0 <= value <= 1.0
    short, long = Segment(0, 4, 0, 4, 0.8), Segment(0, 12, 0, 12, 0.8)
    weak, strong = Segment(0, 8, 0, 8, 0.4), Segment(0, 8, 0, 8, 0.9)
    assert bounded_score(short, 1.0) < bounded_score(long, 1.0)
    assert bounded_score(weak, 1.0) < bounded_score(strong, 1.0)
    assert bounded_score(Segment(0, 8, 0, 8, -0.3), 1.0) == 0.0
    assert bounded_score(Segment(3, 3, 3, 3, 1.0), 1.0) == 0.0


def test_bounded_score_treats_a_faster_copy_like_any_other() -> None:
    """A 1.5x copy on a dense path: 10 query frames, 15 reference frames, each pair similarity 1."""
    sim = np.full((10, 40), -0.2)
    for q in range(10):
        sim[q, 5 + (q * 3) // 2] = 1.0
    [(box, score)] = [b for b in tn_boxes(sim, vcsl(min_length=3, trim=True, max_path=0))]
    [segment] = boxes_to_segments([(box, score)], 1.0)
    assert bounded_score(segment, 1.0) == pytest.approx(1 - np.exp(-10 / 3), abs=1e-6)


def test_bounded_video_score_is_the_best_bounded_segment() -> None:
    segments = [Segment(0, 4, 0, 4, 1.3), Segment(10, 30, 10, 30, 0.7)]
    assert bounded_video_score(segments, 1.0) == pytest.approx(max(bounded_score(s, 1.0) for s in segments))
    assert bounded_video_score([], 1.0) == 0.0


def test_end_floor_trims_weak_path_ends_next_to_a_copy() -> None:
    """A copy at 0.8 (query 10-15 = reference 3-8) with unrelated frames at 0.25 around it: TN (and trim,
    whose floor is min_sim 0.2) keep the 0.25 nodes; end_floor 0.5 cuts where the copied footage ends."""
    sim = np.full((25, 15), 0.05)
    sim[np.arange(5, 10), np.arange(0, 5) % 3] = 0.25
    sim = plant(sim, 10, 3, 6, 0.8)
    sim[16, 9], sim[18, 11] = 0.25, 0.25
    loose = tn_boxes(sim, vcsl(trim=True, min_length=1))
    assert loose[0][0][0] < 10 or loose[0][0][2] > 15
    assert [b for b, _ in tn_boxes(sim, vcsl(trim=True, min_length=1, end_floor=0.5))][0] == [10, 3, 15, 8]


def test_refine_ends_keeps_the_inside_of_a_path() -> None:
    node_sim = np.array([0.21, 0.8, 0.3, 0.9, 0.85, 0.22])
    q = np.arange(6)
    assert refine_ends(node_sim, 0.5, q)[0].tolist() == [1, 2, 3, 4]  # 0.3 inside stays
    assert refine_ends(node_sim, 0.0, q)[0].tolist() == q.tolist()


def test_suppress_query_overlap_keeps_one_reference_moment_per_query_moment() -> None:
    strong, weak, elsewhere = ([4, 2, 8, 6], 1.2), ([5, 20, 8, 23], 0.9), ([12, 30, 16, 34], 0.5)
    kept = suppress_query_overlap([weak, strong, elsewhere], [0.6, 0.9, 0.5], 0.5)
    assert kept == [strong, elsewhere]
    assert suppress_query_overlap([weak, strong], [0.6, 0.9], 1.0) == [weak, strong]


def test_query_overlap_stops_merge_from_stretching_a_static_copy() -> None:
    """Static footage (3 s of clip12 in the fixture compilation, its similarities): query 14-16 copies
    reference 1-3, and reference 4-6 looks alike, so TN's second path (14-16 ~ 2-7) lies on a diagonal within
    merge's tolerance; merged, the reference side doubles. A query moment copies one reference moment."""
    sim = np.zeros((20, 10))
    sim[14:17] = [[0.56, 0.83, 0.72, 0.70, 0.61, 0.64, 0.64, 0.23, 0.17, 0.17],
                  [0.49, 0.70, 0.79, 0.75, 0.62, 0.67, 0.64, 0.28, 0.04, 0.04],
                  [0.48, 0.67, 0.74, 0.79, 0.60, 0.64, 0.62, 0.22, 0.09, 0.08]]
    options = {"tn_top_k": 10, "min_length": 1, "trim": True, "merge_gap": 2, "split_jump": 3}
    assert [b for b, _ in tn_boxes(sim, vcsl(**options))] == [[14, 1, 16, 7]]
    assert [b for b, _ in tn_boxes(sim, vcsl(**options, query_overlap=0.5))] == [[14, 1, 16, 3]]


def test_snap_ends_moves_a_copys_start_back_onto_its_diagonal() -> None:
    """A framed reference (first 5 frames masked) and a query whose first 5 frames look a little like
    reference frame 5 (the fixture's clip16 in bars, re-encoded): TN reaches the copy from (3, 5) and its
    box starts 2 query frames early; the copy's first frames lie on the diagonal, at (5, 5)."""
    sim = np.full((20, 20), 0.3)
    sim[:, :5] = MASKED_SIMILARITY
    sim[0:5, 5:] = 0.8
    sim[5:, 5:] = 0.88
    sim[np.arange(5, 20), np.arange(5, 20)] = 0.97
    sim[0:5, 5] = [0.77, 0.78, 0.75, 0.83, 0.83]
    options = {"tn_top_k": 10, "min_length": 1, "trim": True, "merge_gap": 2, "split_jump": 3,
               "end_floor": 0.5, "query_overlap": 0.5}
    assert [b for b, _ in tn_boxes(sim, vcsl(**options))] == [[3, 5, 19, 19]]
    assert [b for b, _ in tn_boxes(sim, vcsl(**options, snap_ends=True))] == [[5, 5, 19, 19]]


def test_snap_ends_to_diagonal_drops_jumps_and_extends_inside_the_claimed_frames() -> None:
    sim = np.full((12, 12), 0.1)
    sim[np.arange(12), np.arange(12)] = 0.9
    q, r = np.array([1, 6, 7, 8, 11]), np.array([5, 6, 7, 8, 9])  # ends reached by jumps of the offset
    snapped = snap_ends_to_diagonal(sim, q, r, 0.45, (1, 11))
    assert [a.tolist() for a in snapped] == [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]] * 2
    snapped = snap_ends_to_diagonal(sim, q, r, 0.45, (4, 9))  # never past the frames TN's path spanned
    assert [a.tolist() for a in snapped] == [[4, 5, 6, 7, 8, 9]] * 2
    sim[3, 3] = MASKED_SIMILARITY  # a masked frame stops the extension
    assert snap_ends_to_diagonal(sim, q, r, 0.45, (1, 11))[0].tolist()[0] == 4


def test_snap_ends_to_diagonal_leaves_what_shows_no_diagonal() -> None:
    """One node, or two joined by a jump, give no diagonal to extend along (static footage is alike on
    every diagonal)."""
    sim = np.full((12, 12), 0.9)
    one = (np.array([3]), np.array([5]))
    assert [a.tolist() for a in snap_ends_to_diagonal(sim, *one, 0.45, (0, 11))] == [[3], [5]]
    two = (np.array([3, 8]), np.array([5, 6]))
    assert [a.tolist() for a in snap_ends_to_diagonal(sim, *two, 0.45, (0, 11))] == [[3, 8], [5, 6]]


def test_snap_ends_never_admits_a_path_that_tn_rejects() -> None:
    """A weak path wandering across unrelated footage (0.2-0.21, offset jumps of 4) into 2 copied frames
    fails TN's density test; without its wandering start it would pass, so snapping only refines boxes
    that pass as they are."""
    sim = np.full((24, 14), 0.1)
    for q, r, value in [(3, 3, 0.21), (8, 4, 0.21), (13, 5, 0.21), (16, 7, 0.2), (19, 8, 0.6), (20, 9, 0.43)]:
        sim[q, r] = value
    options = {"tn_top_k": 10, "min_length": 1, "trim": True, "split_jump": 3, "end_floor": 0.5}
    assert tn_boxes(sim, vcsl(**options)) == []
    assert tn_boxes(sim, vcsl(**options, snap_ends=True)) == []


def test_snap_ends_reaches_past_a_lone_node_that_split_jump_cut_off() -> None:
    """Static footage in the last query frame (the fixture grid's parking-lot cell): TN ends its path with a
    jump to a look-alike frame (6, 19), split_jump cuts that lone node off, and the copy's last frame
    (6, 11), on the diagonal, is recovered; a lone node is no piece that bounds the snap."""
    sim = np.full((10, 24), 0.3)
    sim[np.arange(6), np.arange(5, 11)] = 0.95
    sim[6, :] = 0.85
    sim[6, 19] = 0.91
    options = {"tn_top_k": 10, "min_length": 1, "trim": True, "merge_gap": 2, "split_jump": 3,
               "end_floor": 0.5, "query_overlap": 0.5}
    assert [b for b, _ in tn_boxes(sim, vcsl(**options))] == [[0, 5, 5, 10]]
    assert [b for b, _ in tn_boxes(sim, vcsl(**options, snap_ends=True))] == [[0, 5, 6, 11]]


def test_min_segment_score_drops_weak_segments_next_to_a_copy() -> None:
    """A 4 s copy at 0.95 and, elsewhere in the query, 4 frames of unrelated footage at 0.25 on a diagonal:
    TN reports both; the weak one (bounded score ~0.18) is no evidence of a copy on its own."""
    rng = np.random.default_rng(3)
    query, reference = rng.normal(size=(40, 256)), rng.normal(size=(20, 256))
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    query[30:35] = 0.95 * reference[2:7] + np.sqrt(1 - 0.95**2) * query[30:35]
    query[10:14] = 0.25 * reference[12:16] + np.sqrt(1 - 0.25**2) * query[10:14]
    options = {"tn_top_k": 10, "min_length": 1, "score": "bounded", "device": "cpu"}
    loose = TemporalNetwork(vcsl(trim=True, **options)).localise(query, reference, 1.0)
    assert any(s.query_start == 10 and s.score < 0.2 for s in loose)
    strict = TemporalNetwork(vcsl(trim=True, **options, min_segment_score=0.2)).localise(query, reference, 1.0)
    assert [(s.query_start, s.ref_start) for s in strict] == [(30, 2)]


def test_prefer_stronger_puts_a_static_copy_on_its_own_diagonal() -> None:
    """Static footage (the fixture's highway inserted into other footage): every frame pair of query 2-9 and
    reference 5-19 looks alike (0.9) and the copy itself is the diagonal (4, 5)-(9, 10) at 0.99. TN's first
    path collects more 0.9 nodes at other offsets; the copy's diagonal comes later, overlapping it."""
    sim = np.full((12, 23), 0.1)
    sim[:, :5] = MASKED_SIMILARITY
    sim[:, 20:] = MASKED_SIMILARITY
    sim[2:10, 5:20] = 0.9
    sim[np.arange(4, 10), np.arange(5, 11)] = 0.99
    options = {"tn_top_k": 10, "min_length": 1, "trim": True, "merge_gap": 2, "split_jump": 3,
               "end_floor": 0.5, "query_overlap": 0.5, "snap_ends": True}
    assert [b for b, _ in tn_boxes(sim, vcsl(**options))] == [[2, 6, 9, 13]]
    assert [b for b, _ in tn_boxes(sim, vcsl(**options, prefer_stronger=True))] == [[4, 5, 9, 10]]


def test_prefer_stronger_never_swaps_a_copy_for_a_short_fragment() -> None:
    """A 10-frame copy at 0.8 with 3 frames at 0.99 inside: TN's second path over those 3 frames is
    stronger but spans under MIN_REPLACEMENT_COVER of the copy, so the whole copy stays."""
    sim = np.full((15, 15), 0.1)
    sim[np.arange(10), np.arange(10)] = 0.8
    sim[np.arange(3, 6), np.arange(3, 6)] = 0.99
    sim[np.arange(3, 6), np.arange(4, 7)] = 0.98
    options = {"tn_top_k": 10, "min_length": 1, "trim": True, "end_floor": 0.5, "prefer_stronger": True}
    assert [b for b, _ in tn_boxes(sim, vcsl(**options))][0] == [0, 0, 9, 9]
