"""Localisation: which stretch of the query copies which stretch of a reference.

The first (and default) method is the Temporal Network (TN) of Tan et al. (ACM MM 2009) as modified in VCSL
(CVPR 2022). ``TNParams`` holds its parameters, defaulting to the product's. With ``VCSL_TN``, ``tn_boxes``
reproduces the VCSL reference ``vcsl/vta.py::tn`` exactly, quirks included (spec ``specs/temporal-network.md``
§2); the product's defaults switch on the improvements measured in that spec's appendix and on the fixture
benchmark. ``TemporalNetwork`` wraps it behind the one-method ``Localiser`` interface: features in,
``Segment``s in seconds out.

Boxes are ``[q_start, r_start, q_end, r_end]`` of *inclusive* frame indices; ``boxes_to_segments`` turns
them into seconds, with frame ``i`` standing for ``[i / fps, (i + 1) / fps)``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from workers.types import Segment

Box = list[int]
"""``[q_start, r_start, q_end, r_end]``, inclusive frame indices."""

ScoredBox = tuple[Box, float]
"""A box and its towhee ``segment_score`` (path similarity sum / mean span)."""


class _TemporalGraph:
    """The TN DAG of one similarity matrix, laid out for a vectorised longest-path DP.

    Nodes: 0 is the source (pair (-1, -1)); ``1 + q * K + k`` is query frame q with its rank-k reference
    candidate. Regular edges only go from query frame ``qi`` to ``qj = qi + d`` with ``1 <= d < step``, so
    their weights are stored densely as ``weights[qj, r, step - 1 - d, c]`` (edge ``(qi, c) -> (qj, r)``,
    ``-inf`` where there is no edge). Flattening the last two axes lists a node's predecessors in the
    reference's insertion order (``qi`` ascending, then ``c``). The sink (the last node) keeps its own
    predecessor list, because the sink quirk gives it edges from further back and from the source.
    """

    def __init__(self, sim: np.ndarray, step: int, top_k: int, min_sim: float) -> None:
        t_q, t_r = sim.shape
        k = min(top_k, t_r)
        span = step - 1  # how many earlier query frames can reach a frame
        self.k, self.span, self.t_q = k, span, t_q
        self.sink = t_q * k
        # §2.2 candidate nodes, best first.
        self.topk = _stable_top_k(sim, k)
        topk_sim = np.take_along_axis(sim, self.topk, axis=1)

        # §2.3 edges. valid[qi, d - 1, r, c] is the edge (qi, c) -> (qi + d, r).
        valid = np.zeros((t_q, span, k, k), dtype=bool)
        # Reference indices that nearer query frames of each source frame already reached (-1: empty slot).
        reached = np.full((t_q, span * k), -1, dtype=np.int64)
        for d in range(1, min(step, t_q)):
            n = t_q - d
            r_src, r_dst = self.topk[:n], self.topk[d:]  # [n, K] each
            diff = r_dst[:, :, None] - r_src[:, None, :]  # [n, K_dst, K_src]
            ok = (diff > 0) & (diff < step) & (topk_sim[d:, :, None] >= min_sim)
            if d > 1:
                seen = reached[:n, None, None, : (d - 1) * k]
                skips = (seen > r_src[:, None, :, None]) & (seen < r_dst[:, :, None, None])
                ok &= ~skips.any(axis=-1)
            valid[:n, d - 1] = ok
            reached[:n, (d - 1) * k : d * k] = np.where(ok.any(axis=2), r_dst, -1)

        self.weights = np.full((t_q, k, span, k), -np.inf)
        for d in range(1, min(step, t_q)):
            self.weights[d:, :, span - d, :] = np.where(valid[: t_q - d, d - 1], topk_sim[d:, :, None], -np.inf)

        # §2.4 the sink quirk. Sink edges (weight 0) come after all regular edges; a regular edge into the
        # sink that also qualifies is re-weighted to 0 in place.
        node_q = np.concatenate([[-1], np.repeat(np.arange(t_q), k)])
        node_r = np.concatenate([[-1], self.topk.ravel()])
        sink_q, sink_r = node_q[-1], node_r[-1]
        dq, dr = sink_q - node_q[:-1], sink_r - node_r[:-1]
        to_sink = np.flatnonzero((dq > 0) & (dr > 0) & (dq <= step) & (dr <= step))
        into_sink = self.weights[t_q - 1, k - 1].ravel()  # [span * K] in insertion order
        regular = np.flatnonzero(np.isfinite(into_sink))
        regular_ids = self._node_id(t_q - 1, regular)
        extra_ids = np.setdiff1d(to_sink, regular_ids)
        self.sink_src = np.concatenate([regular_ids, extra_ids]).astype(np.int64)
        self.sink_w = np.concatenate(
            [np.where(np.isin(regular_ids, to_sink), 0.0, into_sink[regular]), np.zeros(len(extra_ids))]
        )
        self.sink_slot = {int(u): i for i, u in enumerate(self.sink_src)}
        self.weights[t_q - 1, k - 1] = -np.inf
        # Frames with an incoming regular edge; re-weighting never removes one.
        self.has_pred = np.flatnonzero(np.isfinite(self.weights).reshape(t_q, -1).any(axis=1)).tolist()
        self.position = self._kahn_positions(valid, extra_ids)

    def _node_id(self, q_dst: int | np.ndarray, flat_pred: np.ndarray) -> np.ndarray:
        """Node ids of predecessors given as flat ``(span slot, rank)`` indices of a node in frame q_dst."""
        slot, c = np.divmod(flat_pred, self.k)
        return 1 + (q_dst - self.span + slot) * self.k + c

    def _kahn_positions(self, valid: np.ndarray, extra_ids: np.ndarray) -> np.ndarray:
        """Position of every node in networkx's topological order (Kahn generations), int [N]."""
        n_nodes = self.sink + 1
        qi, c, dm1, r = np.nonzero(valid.transpose(0, 3, 1, 2))  # sorted by source, then insertion order
        src = 1 + qi * self.k + c
        dst = 1 + (qi + dm1 + 1) * self.k + r
        starts = np.searchsorted(src, np.arange(n_nodes + 1)).tolist()
        dst_list = dst.tolist()
        successors = [dst_list[starts[u] : starts[u + 1]] for u in range(n_nodes)]
        for u in extra_ids.tolist():
            successors[u].append(self.sink)
        indegree = np.bincount(dst, minlength=n_nodes)
        indegree[self.sink] += len(extra_ids)
        generation = np.flatnonzero(indegree == 0).tolist()
        remaining = indegree.tolist()
        order: list[int] = []
        while generation:
            order.extend(generation)
            following = []
            for u in generation:
                for v in successors[u]:
                    remaining[v] -= 1
                    if remaining[v] == 0:
                        following.append(v)
            generation = following
        position = np.empty(n_nodes, dtype=np.int64)
        position[order] = np.arange(n_nodes)
        return position

    def longest_path(self) -> list[int]:
        """networkx ``dag_longest_path`` on the current weights: node ids from start to end."""
        k, span, t_q = self.k, self.span, self.t_q
        # dist[(span + q) * K + k] is node (q, k); the first span * K entries pad frames before 0, so that
        # frame q's predecessors are the contiguous window dist[q * K : (q + span) * K].
        dist = np.zeros((t_q + span) * k)
        best = np.full((t_q, k), -np.inf)
        best_at = np.zeros((t_q, k), dtype=np.int64)  # flat (span slot, rank) of the best predecessor
        weights = self.weights.reshape(t_q, k, span * k)
        for q in self.has_pred:
            candidates = dist[q * k : (q + span) * k] + weights[q]  # [K, span * K], insertion order
            best_at[q] = candidates.argmax(axis=1)  # the first maximum
            best[q] = candidates.max(axis=1)
            dist[(q + span) * k : (q + span + 1) * k] = np.maximum(best[q], 0.0)
        pointer = np.where(best >= 0, best_at, -1)
        node_dist = np.concatenate([[0.0], dist[span * k :]])
        sink_pred = self.sink
        if len(self.sink_src):
            candidates = node_dist[self.sink_src] + self.sink_w
            first_best = int(candidates.argmax())
            if candidates[first_best] >= 0:
                node_dist[self.sink] = candidates[first_best]
                sink_pred = int(self.sink_src[first_best])

        # The end is the first node in topological order with the largest distance.
        tied = np.flatnonzero(node_dist == node_dist.max())
        node = int(tied[np.argmin(self.position[tied])])
        pointer = pointer.tolist()
        path = [node]
        while True:
            if node == self.sink:
                pred = sink_pred
            elif node == 0:
                pred = node
            else:
                q, rank = divmod(node - 1, k)
                slot, c = divmod(pointer[q][rank], k)
                pred = node if slot < 0 else 1 + (q - span + slot) * k + c
            if pred == node:
                break
            path.append(pred)
            node = pred
        return path[::-1]

    def zero_path(self, path: Sequence[int]) -> None:
        """Set the weight of every edge along ``path`` to 0 (nodes stay, edges stop contributing)."""
        for u, v in zip(path[:-1], path[1:], strict=True):
            if v == self.sink:
                self.sink_w[self.sink_slot[u]] = 0.0
            else:
                qv, rv = divmod(v - 1, self.k)
                qu, cu = divmod(u - 1, self.k)
                self.weights[qv, rv, self.span - (qv - qu), cu] = 0.0

    def pairs(self, nodes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Query and reference frame index of each (non-source) node, int [P] each."""
        q, rank = np.divmod(np.asarray(nodes, dtype=np.int64) - 1, self.k)
        return q, self.topk[q, rank]


def _stable_top_k(sim: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values, best first, exact ties by lower index: int [T_q, k].

    The same as ``np.argsort(-sim, axis=1, kind="stable")[:, :k]`` but linear in T_r per row: partition
    finds each row's k-th best value, and only entries at least that good are sorted. NaN ranks last, as
    in argsort: compared as NaN it would leave a row with fewer than k entries, and the row would read the
    next row's indices.
    """
    key = np.where(np.isnan(sim), np.inf, -sim)
    kth = np.partition(key, k - 1, axis=1)[:, k - 1 : k]
    rows, cols = np.nonzero(key <= kth)
    order = np.lexsort((cols, key[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    first = np.searchsorted(rows, np.arange(sim.shape[0]))
    return cols[first[:, None] + np.arange(k)]


def _inclusive_iou(box: Box, others: Sequence[Box]) -> float:
    """Largest IoU of ``box`` with any of ``others``, areas counting frames inclusively (0 if none)."""
    best = 0.0
    for other in others:
        w = min(box[2], other[2]) - max(box[0], other[0]) + 1
        h = min(box[3], other[3]) - max(box[1], other[1]) + 1
        inter = max(0, w) * max(0, h)
        area = (box[2] - box[0] + 1) * (box[3] - box[1] + 1)
        other_area = (other[2] - other[0] + 1) * (other[3] - other[1] + 1)
        best = max(best, inter / (area + other_area - inter))
    return best


@dataclass(frozen=True)
class TNParams:
    """The temporal network's parameters; the defaults are what the product runs.

    They were chosen on the fixture benchmark (``bench/tune.py``); ``COPYCAT_LOCALISE__<FIELD>`` sets each
    one (``service.settings.LocaliseSettings`` takes its fields and defaults from here). ``VCSL_TN`` is the
    configuration of VCSL's reference, which ``tn_boxes`` reproduces exactly. ``tn_boxes`` reads the first
    thirteen fields, ``TemporalNetwork`` the rest.
    """

    tn_max_step: int = 10
    """Consecutive path nodes differ by 1 .. tn_max_step - 1 frames on both axes."""
    tn_top_k: int = 10
    """Candidate reference frames kept per query frame."""
    max_path: int = 10
    """Paths extracted = max_path + 1."""
    min_sim: float = 0.2
    """An edge's destination needs this similarity; a box needs score / ave_len above it."""
    min_length: int = 1
    """A box needs both spans (end - start) above it."""
    max_iou: float = 0.3
    """A box is dropped if its inclusive IoU with an accepted box is at least this."""
    trim: bool = True
    """Drop leading and trailing path nodes with similarity < min_sim before scoring the path (TN never
    checks a path's first node, so boxes otherwise start up to tn_max_step - 1 early). The spec's appendix
    measured it raising precision from ~0.81 to ~0.97 at equal recall on real copies."""
    merge_gap: int | None = 2
    """If set, merge accepted boxes on nearly the same diagonal separated by at most this many frames
    (``merge_diagonal``); the result is then sorted by query start."""
    split_jump: int | None = 3
    """If set, cut a path where its diagonal offset ``q - r`` jumps by more than this many frames between
    consecutive nodes of an accepted path, and keep the pieces that pass TN's tests on their own. TN lets a
    path step over up to tn_max_step - 1 frames, so without it footage inserted into a copy (query frames
    4-11 from elsewhere between copied frames 0-3 and 12-17) is swallowed by one box."""
    end_floor: float | None = 0.5
    """If set (with ``trim``), also drop leading and trailing path nodes whose similarity is below
    ``end_floor`` times the median similarity of the path's nodes (``refine_ends``); 0 drops none. TN adds
    every node above ``min_sim`` to a path, so a path through a copy of similarity 0.8 runs on through
    unrelated frames at 0.2-0.3 next to it, often by a jump of several frames."""
    query_overlap: float | None = 0.5
    """If set, drop a box when more than this share of its query span lies inside the span of a box with a
    higher mean path similarity (``suppress_query_overlap``); 1 drops none. A moment of the query copies
    one moment of a reference, and static footage offers TN several near-equal paths at other offsets,
    which ``merge_gap`` would otherwise fold into one over-long box."""
    snap_ends: bool = True
    """With ``trim`` and ``end_floor``, put each path's ends back on the copy's diagonal
    (``snap_ends_to_diagonal``): TN often reaches a copy's first frames by a jump from an unrelated node
    (``(1, 5) -> (6, 6)``), so the box starts off the diagonal and misses the copy's first frames, which lie
    on it (``(5, 5)``)."""
    prefer_stronger: bool = True
    """A later path that TN's IoU test rejects replaces the accepted box it overlaps most when its mean
    similarity is higher and it spans at least ``MIN_REPLACEMENT_COVER`` of that box's query frames
    (``_replace_if_stronger``; paths cut by ``split_jump`` never replace). TN extracts paths by total
    similarity, so on static footage a path of many 0.9 nodes at a wrong offset comes before the copy's own
    diagonal at 0.99."""
    min_segment_score: float = 0.2
    """``TemporalNetwork`` drops segments scoring below this (on the ``score`` scale): each reported segment
    is evidence on its own, not a few frames of unrelated footage at similarity 0.2-0.3 that TN found next
    to a real copy."""
    min_informative: float = 0.5
    """When masks are given, ``TemporalNetwork`` drops segments with a smaller share of informative frames
    on either side (``drop_uninformative``)."""
    score: Literal["bounded", "tn"] = "bounded"
    """The segment score ``TemporalNetwork`` reports: ``bounded_score`` (in [0, 1]) or TN's path score."""
    device: str = "auto"
    """Torch device of the similarity matmul; "auto" picks CUDA when available."""


VCSL_TN = TNParams(tn_top_k=5, min_length=5, trim=False, merge_gap=None, split_jump=None, end_floor=None,
                   query_overlap=None, snap_ends=False, prefer_stronger=False, min_segment_score=0.0, score="tn")
"""VCSL's reference TN (``vcsl/vta.py::tn``: 10/5/10/0.2/5/0.3) with none of the options beyond it: what
``tn_boxes`` reproduces exactly, quirks included. Not what the product runs (``TNParams()``)."""


def tn_boxes(sim: np.ndarray, params: TNParams = TNParams()) -> list[ScoredBox]:
    """Copied segment boxes in a similarity matrix, by the Temporal Network.

    With ``VCSL_TN`` this is exactly VCSL's ``tn`` (boxes in extraction order), with towhee's per-box score
    ``Σ_path S[q, r] / ave_len`` where ``ave_len`` is the mean of the two spans (so an exact copy of n
    frames scores n / (n - 1)). Path lengths are accumulated in float64. ``params`` (``TNParams``, the
    product's by default) says which of the options beyond VCSL's are on.

    Args:
        sim: float [T_q, T_r] frame similarities (cosine; raw values, may be negative).
        params: the TN parameters (their fields from ``tn_max_step`` to ``prefer_stronger``).

    Returns:
        ``(box, score)`` pairs, box = ``[q_start, r_start, q_end, r_end]`` inclusive frame indices.
    """
    p = params
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2:
        raise ValueError(f"sim must be a 2-D [T_q, T_r] matrix, got shape {sim.shape}")
    if p.tn_max_step < 1 or p.tn_top_k < 1 or p.max_path < 0:
        raise ValueError(
            f"need tn_max_step >= 1, tn_top_k >= 1, max_path >= 0; got {p.tn_max_step}, {p.tn_top_k}, {p.max_path}"
        )
    if sim.shape[0] == 0 or sim.shape[1] == 0:
        return []
    graph = _TemporalGraph(sim, p.tn_max_step, p.tn_top_k, p.min_sim)
    accepted: list[ScoredBox] = []
    strength: list[float] = []  # mean path similarity of each accepted box
    for _ in range(p.max_path + 1):
        path = graph.longest_path()
        graph.zero_path(path)
        nodes = [v for v in path if v not in (0, graph.sink)]
        if not nodes:
            break
        q, r = graph.pairs(nodes)
        judged = _judge_path(sim, q, r, p.min_sim, p.min_length, p.trim, p.end_floor, p.snap_ends)
        if judged is None:
            continue
        if _inclusive_iou(judged[0][0], [b for b, _ in accepted]) >= p.max_iou:
            unbroken = p.split_jump is None or not np.any(np.abs(np.diff(q - r)) > p.split_jump)
            if p.prefer_stronger and unbroken:
                _replace_if_stronger(accepted, strength, judged)
            continue
        if p.split_jump is None:
            accepted.append(judged[0])
            strength.append(judged[1])
            continue
        # Only an accepted path is cut: its pieces refine it, they never add a box TN rejected.
        cuts = np.flatnonzero(np.abs(np.diff(q - r)) > p.split_jump) + 1
        others = [b for b, _ in accepted]
        pieces = list(zip(np.split(q, cuts), np.split(r, cuts), strict=True))
        for i, (q_piece, r_piece) in enumerate(pieces):
            claimed = _claimed_frames(pieces, i)
            piece = _judge_path(sim, q_piece, r_piece, p.min_sim, p.min_length, p.trim, p.end_floor, p.snap_ends,
                                claimed)
            if piece is not None and _inclusive_iou(piece[0][0], others) < p.max_iou:
                accepted.append(piece[0])
                strength.append(piece[1])
    if p.query_overlap is not None:
        accepted = suppress_query_overlap(accepted, strength, p.query_overlap)
    if p.merge_gap is not None:
        accepted = merge_diagonal(accepted, p.merge_gap)
    return accepted


MIN_REPLACEMENT_COVER = 0.8
"""Share of an accepted box's query frames a stronger overlapping path must span to replace it, so a short
strong fragment never replaces a whole copy."""


def _replace_if_stronger(accepted: list[ScoredBox], strength: list[float],
                         judged: tuple[ScoredBox, float]) -> None:
    """Put ``judged`` (box, mean path similarity) in place of the accepted box it overlaps most (by
    inclusive IoU) when its mean similarity is higher and it spans ``MIN_REPLACEMENT_COVER`` of that box's
    query frames; ``accepted`` and ``strength`` are parallel and changed in place."""
    box = judged[0][0]
    best = int(np.argmax([_inclusive_iou(box, [other]) for other, _ in accepted]))
    other = accepted[best][0]
    covered = (min(box[2], other[2]) - max(box[0], other[0]) + 1) / (other[2] - other[0] + 1)
    if judged[1] > strength[best] and covered >= MIN_REPLACEMENT_COVER:
        accepted[best], strength[best] = judged


def _claimed_frames(pieces: Sequence[tuple[np.ndarray, np.ndarray]], i: int) -> tuple[int, int]:
    """The query frames piece ``i`` of a cut path may snap its ends into: up to the neighbouring pieces of
    two nodes or more (a lone node is no copy of its own), else to the whole path's ends."""
    start, end = int(pieces[0][0][0]), int(pieces[-1][0][-1])
    before = [p[0] for p in pieces[:i] if len(p[0]) > 1]
    after = [p[0] for p in pieces[i + 1 :] if len(p[0]) > 1]
    return (int(before[-1][-1]) + 1 if before else start, int(after[0][0]) - 1 if after else end)


def _judge_path(sim: np.ndarray, q: np.ndarray, r: np.ndarray, min_sim: float, min_length: int,
                trim: bool, end_floor: float | None = None, snap_ends: bool = False,
                claimed: tuple[int, int] | None = None) -> tuple[ScoredBox, float] | None:
    """The box and score of path nodes (q[i], r[i]) with the nodes' mean similarity, or None when the path
    fails TN's density or length test.

    With ``snap_ends`` a path that passes has its ends put on the copy's diagonal
    (``snap_ends_to_diagonal``, inside ``claimed``: the first and last query frame the ends may reach,
    by default these nodes' own), and keeps that box when it passes the tests too.
    """
    claimed = claimed or (int(q[0]), int(q[-1]))
    floor = min_sim
    if trim:
        strong = np.flatnonzero(sim[q, r] >= min_sim)
        if len(strong) == 0:
            return None
        q, r = q[strong[0] : strong[-1] + 1], r[strong[0] : strong[-1] + 1]
        if end_floor is not None:
            floor = max(floor, end_floor * float(np.median(sim[q, r])))
            q, r = refine_ends(sim[q, r], end_floor, q, r)
    judged = _score_path(sim, q, r, min_sim, min_length)
    if judged is None or not (snap_ends and trim and end_floor is not None):
        return judged
    return _score_path(sim, *snap_ends_to_diagonal(sim, q, r, floor, claimed), min_sim, min_length) or judged


def _score_path(sim: np.ndarray, q: np.ndarray, r: np.ndarray, min_sim: float,
                min_length: int) -> tuple[ScoredBox, float] | None:
    """TN's box, score and tests of path nodes (q[i], r[i]), with the nodes' mean similarity (None: fails)."""
    score = float(np.cumsum(sim[q, r])[-1])  # left-to-right like the reference (not pairwise/compensated)
    box = [int(q.min()), int(r.min()), int(q.max()), int(r.max())] if score > 0 else [0, 0, 0, 0]
    q_span, r_span = box[2] - box[0], box[3] - box[1]
    ave_len = (q_span + r_span) / 2
    if ave_len > 0 and score / ave_len > min_sim and min(q_span, r_span) > min_length:
        return (box, score / ave_len), float(np.mean(sim[q, r]))
    return None


def refine_ends(node_sim: np.ndarray, end_floor: float, *coords: np.ndarray) -> tuple[np.ndarray, ...]:
    """``coords`` of a path without its leading and trailing nodes below ``end_floor`` x the median node
    similarity (``node_sim`` float [P], one per node): where the copied footage starts and ends."""
    floor = end_floor * float(np.median(node_sim))
    strong = np.flatnonzero(node_sim >= floor)
    return tuple(c[strong[0] : strong[-1] + 1] for c in coords)


MAX_END_OFFSET_STEP = 1
"""How far a path's diagonal offset ``q - r`` may change between its last two nodes and still be on the
copy's diagonal: 1 lets speed changes (1.5x steps (1, 1) and (1, 2)) and dropped frames through."""


def snap_ends_to_diagonal(sim: np.ndarray, q: np.ndarray, r: np.ndarray, floor: float,
                          claimed: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Path nodes (q, r) (int [P] each, ascending) with their ends on the copy's diagonal.

    First each end node that joins the rest by a jump of the diagonal offset (more than
    ``MAX_END_OFFSET_STEP``) is dropped, keeping at least two nodes: TN reached the copy from it. Then each
    end is extended frame by frame along its diagonal, ``(q - 1, r - 1)`` before the first node and
    ``(q + 1, r + 1)`` after the last, while ``sim`` (float [T_q, T_r]) there is at least ``floor`` and the
    query frame lies inside ``claimed`` (first, last), the query frames TN's path spanned before its ends
    were cut: the frames a copy shares with its source lie on one diagonal, and an end only moves back
    onto it, never past what TN found (on static footage a diagonal at any offset stays similar).
    Masked frames (``MASKED_SIMILARITY``) stop an extension.
    """
    if len(q) < 2:  # one node shows no diagonal
        return q, r
    offset = q - r
    first, last = 0, len(q) - 1
    while last - first > 1 and abs(offset[first + 1] - offset[first]) > MAX_END_OFFSET_STEP:
        first += 1
    while last - first > 1 and abs(offset[last] - offset[last - 1]) > MAX_END_OFFSET_STEP:
        last -= 1
    q, r = q[first : last + 1], r[first : last + 1]
    on_diagonal = len(q) > 2 or abs(int(offset[last]) - int(offset[first])) <= MAX_END_OFFSET_STEP
    lead = 0
    while (on_diagonal and q[0] - lead - 1 >= claimed[0] and r[0] - lead - 1 >= 0
           and sim[q[0] - lead - 1, r[0] - lead - 1] >= floor):
        lead += 1
    tail = 0
    while (on_diagonal and q[-1] + tail + 1 <= claimed[1] and r[-1] + tail + 1 < sim.shape[1]
           and sim[q[-1] + tail + 1, r[-1] + tail + 1] >= floor):
        tail += 1
    steps_before, steps_after = np.arange(lead, 0, -1), np.arange(1, tail + 1)
    return (np.concatenate([q[0] - steps_before, q, q[-1] + steps_after]),
            np.concatenate([r[0] - steps_before, r, r[-1] + steps_after]))


def suppress_query_overlap(boxes: Sequence[ScoredBox], strength: Sequence[float],
                           max_overlap: float) -> list[ScoredBox]:
    """``boxes`` (in their order) without those whose query span lies more than ``max_overlap`` inside the
    query span of a box of higher ``strength`` (ties: the earlier box wins)."""
    order = sorted(range(len(boxes)), key=lambda i: (-strength[i], i))
    kept: list[int] = []
    for i in order:
        box = boxes[i][0]
        length = box[2] - box[0] + 1
        inside = max((min(box[2], boxes[j][0][2]) - max(box[0], boxes[j][0][0]) + 1 for j in kept), default=0)
        if inside / length <= max_overlap:
            kept.append(i)
    return [boxes[i] for i in sorted(kept)]


def merge_diagonal(boxes: Sequence[ScoredBox], merge_gap: int, diagonal_tol: int = 2) -> list[ScoredBox]:
    """Merge boxes that continue one another along (almost) the same diagonal.

    Boxes are visited by query start. A box joins the group before it when its diagonal offset
    ``q_start - r_start`` is within ``diagonal_tol`` frames of the group's last member's, and at most
    ``merge_gap`` frames lie between them on both axes (overlapping boxes always qualify). A merged box is
    the bounding box of its group; its score is the mean, over the query frames the members cover, of the
    best member score covering each frame. So one copy that TN returned as fragments reads as one segment,
    and a weaker box nested inside a stronger one (TN's second path over the same frames) does not lower it.

    Returns:
        The merged ``(box, score)`` pairs, sorted by query start.
    """
    groups: list[list[ScoredBox]] = []
    for box, score in sorted(boxes, key=lambda b: (b[0][0], b[0][1])):
        if groups:
            bound = _bounding([b for b, _ in groups[-1]])
            last = groups[-1][-1][0]
            offset_change = abs((box[0] - box[1]) - (last[0] - last[1]))
            gap = max(box[0] - bound[2], box[1] - bound[3]) - 1
            if offset_change <= diagonal_tol and gap <= merge_gap:
                groups[-1].append((box, score))
                continue
        groups.append([(box, score)])
    return [(_bounding([b for b, _ in group]), _coverage_score(group)) for group in groups]


def _bounding(boxes: Sequence[Box]) -> Box:
    return [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)]


def _coverage_score(group: Sequence[ScoredBox]) -> float:
    """Mean over covered query frames of the best score among the boxes covering each frame."""
    start = min(b[0] for b, _ in group)
    best = np.full(max(b[2] for b, _ in group) - start + 1, -np.inf)
    for box, score in group:
        best[box[0] - start : box[2] - start + 1] = np.maximum(best[box[0] - start : box[2] - start + 1], score)
    return float(best[np.isfinite(best)].mean())


def boxes_to_segments(boxes: Sequence[ScoredBox], fps: float) -> list[Segment]:
    """Frame-index boxes to ``Segment``s in seconds, sorted by query start.

    Frame i stands for ``[i / fps, (i + 1) / fps)``, so an inclusive end index e becomes ``(e + 1) / fps``.
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    segments = [
        Segment(
            query_start=box[0] / fps,
            query_end=(box[2] + 1) / fps,
            ref_start=box[1] / fps,
            ref_end=(box[3] + 1) / fps,
            score=float(score),
        )
        for box, score in boxes
    ]
    return sorted(segments, key=lambda s: (s.query_start, s.ref_start))


def video_score(segments: Sequence[Segment]) -> float:
    """Pair-level score deciding whether a reference is a match: its strongest segment's score.

    The strongest evidence of copying, independent of how much of the query the copy fills: a 6 s excerpt
    inside a long query is as much a copy as a full re-upload. Measured on the fixture benchmark
    (``bench/tune.py``), true matches scored >= 0.52 (except picture-in-picture, 0.25-0.30) and pairs of
    unrelated footage <= 0.17 even with ``min_sim`` relaxed to 0.1; hence the default threshold 0.35.
    """
    return max((float(s.score) for s in segments), default=0.0)


LENGTH_SCALE_S = 3.0
"""Seconds of copied footage at which ``bounded_score`` gives 63 % (1 - 1/e) of a segment's similarity."""


def bounded_score(segment: Segment, fps: float, length_scale_s: float = LENGTH_SCALE_S) -> float:
    """A segment's score on [0, 1]: how alike the copied frames are, times how much footage supports it.

    TN's score (``tn_boxes``) is the path's similarity sum over the box's mean span, so an exact n-frame
    copy scores n / (n - 1) (1.11 at 10 frames) and a 4-frame copy of mediocre similarity can outscore a
    long, clear one. Here

        similarity = clip(score * mean_span / frames, 0, 1)
        bounded    = similarity * (1 - exp(-seconds / length_scale_s))

    with ``frames`` the shorter side in frames (the most nodes a TN path can have) and ``mean_span`` TN's
    divisor, so ``similarity`` is the mean frame similarity along a dense path: 1.0 for an exact copy of
    any length or speed. The second factor is the evidence of length: an exact copy of 3 s scores 0.63,
    6 s 0.86, 10 s 0.96, 20 s 1.00.

    Measured on the fixture benchmark v3 with the defaults (``bench/tune.py --calibration``): the one match
    scoring below 0.35 was false (0.22; segments below ``min_segment_score`` 0.2 are dropped), 0.35-0.5 all
    true (3), 0.5-0.6 12 of 13 true (a short copy of static footage matched at another time of the scene,
    0.55), 0.6 and above all true (66). The lowest true match scored 0.47 and no false one scored between
    0.22 and 0.55; hence the threshold 0.35.
    """
    query_frames = (segment.query_end - segment.query_start) * fps
    reference_frames = (segment.ref_end - segment.ref_start) * fps
    frames = min(query_frames, reference_frames)
    if frames <= 0 or fps <= 0:
        return 0.0
    mean_span = (query_frames + reference_frames) / 2 - 1
    similarity = min(1.0, max(0.0, segment.score * mean_span / frames))
    return similarity * (1.0 - math.exp(-frames / fps / length_scale_s))


def bounded_video_score(segments: Sequence[Segment], fps: float, length_scale_s: float = LENGTH_SCALE_S) -> float:
    """``video_score`` on the bounded scale: the best ``bounded_score`` of the pair's segments (0 if none)."""
    return max((bounded_score(s, fps, length_scale_s) for s in segments), default=0.0)


def query_coverage(segments: Sequence[Segment], query_duration: float) -> float:
    """Score-weighted share of the query that the segments cover; ranks matches of equal ``video_score``.

    towhee's ``DuplicateFilter``, in seconds: with ``w(t) = max{s.score : s.query_start <= t < s.query_end}``
    (0 where no segment covers t),

        video_score = (1 / query_duration) * ∫_0^query_duration w(t) dt.

    At 1 frame/s with segments from ``boxes_to_segments`` this equals towhee's ``Σ_t w[t] / T_q``. It is 0
    without segments, about the copied fraction of the query for copies scoring ~1, and can slightly
    exceed 1 (towhee scores an exact n-frame copy n / (n - 1)). Short spurious boxes score low.
    """
    if query_duration <= 0:
        raise ValueError(f"query_duration must be positive, got {query_duration}")
    cuts = sorted(
        {0.0, query_duration}
        | {min(max(t, 0.0), query_duration) for s in segments for t in (s.query_start, s.query_end)}
    )
    total = 0.0
    for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
        covering = [s.score for s in segments if s.query_start <= lo and hi <= s.query_end]
        total += (hi - lo) * max(covering, default=0.0)
    return total / query_duration


def similarity(query: np.ndarray, reference: np.ndarray, device: str = "auto", *,
               query_informative: np.ndarray | None = None,
               reference_informative: np.ndarray | None = None) -> np.ndarray:
    """Frame similarity matrix ``S = Q · Rᵀ`` computed in float32 with torch.

    Args:
        query: float [T_q, D] (float16 accepted), assumed L2-normalised; or [V, T_q, D], several views of
            each query frame (the whole frame and crops of it), in which case each entry is the best view's.
        reference: float [T_r, D].
        device: torch device; "auto" picks CUDA when available, else CPU.
        query_informative: optional bool [T_q] or [V, T_q] (``workers/informative.py``); each view of an
            uninformative frame is masked (``mask_similarity``) before the best view is taken.
        reference_informative: optional bool [T_r], the same for reference frames.

    Returns:
        float32 [T_q, T_r].
    """
    if query.ndim not in (2, 3) or reference.ndim != 2 or query.shape[-1] != reference.shape[1]:
        raise ValueError(f"need [T_q, D] or [V, T_q, D] and [T_r, D] features, got {query.shape} and "
                         f"{reference.shape}")
    import torch  # here, not at the top: ingest workers import this module but never compare matrices

    from workers.device import resolve_device

    target = resolve_device(device)
    q = torch.as_tensor(query, device=target).float()
    r = torch.as_tensor(reference, device=target).float()
    sim = q @ r.T
    if query_informative is None and reference_informative is None:
        return (sim.amax(dim=0) if sim.ndim == 3 else sim).cpu().numpy()
    masked = mask_similarity(sim.cpu().numpy(), query_informative, reference_informative)
    return masked.max(axis=0) if masked.ndim == 3 else masked


MASKED_SIMILARITY = -1.0
"""What masked entries become: the lowest cosine, below any ``min_sim``, so TN never steps onto them."""


def mask_similarity(sim: np.ndarray, query_informative: np.ndarray | None,
                    reference_informative: np.ndarray | None) -> np.ndarray:
    """Similarities with rows of uninformative query frames and columns of uninformative reference frames lowered.

    Black, blank and title frames look alike in every video (``workers/informative.py``); a path of them
    links unrelated videos. Setting their entries to ``MASKED_SIMILARITY`` keeps them out of every TN path:
    an edge needs ``min_sim`` at its destination, and ``trim`` drops a path's unchecked first node. A path
    may still step over a few masked frames (a fade inside a copy), since steps span up to ``tn_max_step``.

    Args:
        sim: float [T_q, T_r], or [V, T_q, T_r] per query view.
        query_informative: bool [T_q] (the same for every view) or [V, T_q]; None masks no query frame.
        reference_informative: bool [T_r]; None masks no reference frame.

    Returns:
        A masked copy of ``sim``, same shape and dtype.
    """
    out = np.array(sim, copy=True)
    if query_informative is not None:
        keep = np.asarray(query_informative, dtype=bool)
        if keep.shape not in (out.shape[-2:-1], out.shape[:-1]):
            raise ValueError(f"query mask of shape {keep.shape} does not fit similarities of shape {out.shape}")
        out = np.where(keep[..., None], out, MASKED_SIMILARITY).astype(out.dtype)
    if reference_informative is not None:
        keep = np.asarray(reference_informative, dtype=bool)
        if keep.shape != out.shape[-1:]:
            raise ValueError(f"reference mask of shape {keep.shape} does not fit similarities of shape {out.shape}")
        out = np.where(keep, out, MASKED_SIMILARITY).astype(out.dtype)
    return out


def informative_share(segment: Segment, query_informative: np.ndarray, reference_informative: np.ndarray,
                      fps: float) -> float:
    """The smaller of the two shares of informative frames inside a segment's query and reference spans.

    Frame i stands for ``[i / fps, (i + 1) / fps)`` (``boxes_to_segments``); masks are bool [T_q] (or
    [V, T_q], where a frame counts as informative if any view is) and [T_r].
    """
    query_informative = np.asarray(query_informative, dtype=bool)
    if query_informative.ndim == 2:
        query_informative = query_informative.any(axis=0)
    shares = []
    for mask, start, end in ((query_informative, segment.query_start, segment.query_end),
                             (np.asarray(reference_informative, dtype=bool), segment.ref_start, segment.ref_end)):
        first = max(0, int(np.floor(start * fps + 1e-6)))
        last = min(len(mask), int(np.ceil(end * fps - 1e-6)))
        shares.append(float(mask[first:last].mean()) if last > first else 0.0)
    return min(shares)


def drop_uninformative(segments: Sequence[Segment], query_informative: np.ndarray,
                       reference_informative: np.ndarray, fps: float, min_share: float = 0.5) -> list[Segment]:
    """The segments made mostly of informative frames on both sides (``informative_share >= min_share``).

    A copy is never claimed on black or title frames alone, even where TN bridged a few content frames
    across them; a real copy that contains a fade keeps its segment.
    """
    return [s for s in segments if informative_share(s, query_informative, reference_informative, fps) >= min_share]


class Localiser(ABC):
    """Finds copied segment pairs between a query and one reference video."""

    @abstractmethod
    def localise(self, query: np.ndarray, reference: np.ndarray, fps: float, *,
                 query_informative: np.ndarray | None = None,
                 reference_informative: np.ndarray | None = None) -> list[Segment]:
        """Copied segments between query float [T_q, D] (or views [V, T_q, D]) and reference [T_r, D].

        Both are sampled at ``fps`` frames per second; segments are in seconds, sorted by query start.
        The optional masks (bool [T_q] or [V, T_q], and [T_r]; ``workers/informative.py``) mark frames that
        may carry a copy; without them every frame may.
        """


@dataclass(frozen=True)
class TemporalNetwork(Localiser):
    """TN localisation (``tn_boxes``) on the cosine similarity of the two feature matrices, with ``params``
    (the product's by default).

    When masks are given, uninformative frames are masked in the similarity matrix (``mask_similarity``)
    and segments with less than ``params.min_informative`` informative frames are dropped
    (``drop_uninformative``). ``params.score`` "bounded" reports each segment's ``bounded_score`` (in
    [0, 1]) instead of TN's path score. Segments scoring below ``params.min_segment_score`` are dropped.
    """

    params: TNParams = TNParams()

    def localise(self, query: np.ndarray, reference: np.ndarray, fps: float, *,
                 query_informative: np.ndarray | None = None,
                 reference_informative: np.ndarray | None = None) -> list[Segment]:
        p = self.params
        sim = similarity(query, reference, p.device, query_informative=query_informative,
                         reference_informative=reference_informative)
        segments = boxes_to_segments(tn_boxes(sim, p), fps)
        if query_informative is not None or reference_informative is not None:
            n_query, n_reference = sim.shape
            query_mask = np.ones(n_query, bool) if query_informative is None else query_informative
            reference_mask = np.ones(n_reference, bool) if reference_informative is None else reference_informative
            segments = drop_uninformative(segments, query_mask, reference_mask, fps, p.min_informative)
        if p.score == "bounded":
            segments = [replace(s, score=bounded_score(s, fps)) for s in segments]
        return [s for s in segments if s.score >= p.min_segment_score]
