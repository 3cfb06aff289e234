"""Video-level near-duplicate groups from DnS coarse vectors.

Two videos are linked when the dot product of their coarse vectors reaches the threshold; a group is a
connected component of those links (single linkage: A~B and B~C put A, B and C together even if A and C
are further apart). Exact and blockwise: O(N^2) dot products, ``block`` rows of the matrix at a time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DuplicateGroup:
    """Videos that are near-duplicates of each other, with the lowest and highest pairwise similarity inside."""

    video_ids: tuple[str, ...]
    min_similarity: float
    max_similarity: float


def duplicate_groups(video_ids: Sequence[str], vectors: np.ndarray, threshold: float,
                     block: int = 2048) -> list[DuplicateGroup]:
    """Groups of two or more videos among ``video_ids`` with coarse ``vectors`` [N, D] (unit L2).

    Groups are sorted largest first, then by their first id; ids inside a group are sorted.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(video_ids):
        raise ValueError(f"expected {len(video_ids)} vectors [N, D], got {vectors.shape}")
    if block < 1:
        raise ValueError(f"block must be at least 1, got {block}")
    parent = list(range(len(video_ids)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for start in range(0, len(video_ids), block):
        sims = vectors[start : start + block] @ vectors.T  # [b, N]
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows + start, cols, strict=True):
            if c > r:
                a, b = root(int(r)), root(int(c))
                if a != b:
                    parent[max(a, b)] = min(a, b)

    members: dict[int, list[int]] = {}
    for i in range(len(video_ids)):
        members.setdefault(root(i), []).append(i)
    groups = []
    for indices in members.values():
        if len(indices) < 2:
            continue
        sims = vectors[indices] @ vectors[indices].T
        pairs = sims[np.triu_indices(len(indices), k=1)]
        groups.append(DuplicateGroup(tuple(sorted(video_ids[i] for i in indices)), float(pairs.min()),
                                     float(pairs.max())))
    return sorted(groups, key=lambda g: (-len(g.video_ids), g.video_ids))
