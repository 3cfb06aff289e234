"""An exact, in-memory frame index: what Milvus answers, computed exactly, for unit tests and ``bench/tune.py``.

``MemoryLibrary`` answers ``workers.matching.match_query``'s storage callables (``search``, ``load``,
``searchable``) over a dict of frame matrices, so the product's frame matching runs over arrays with no service
behind it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import numpy as np

from workers.runs import run_starts
from workers.types import SearchHits


class MemoryLibrary:
    """Frame matrices [T, D] by video id, searched exhaustively by inner product."""

    def __init__(self, references: Mapping[str, np.ndarray], *, merge_cosine: float | None = None) -> None:
        """Every frame is searchable, or with ``merge_cosine`` what ``VectorIndex`` indexes (``run_starts``:
        informative frames, one per run of near-identical ones); ``load`` always returns whole matrices."""
        self.references = dict(references)
        dim = next(iter(self.references.values())).shape[1] if self.references else 0
        frames = [np.arange(len(m)) if merge_cosine is None else run_starts(m, merge_cosine)
                  for m in self.references.values()]
        matrices = [m[f] for m, f in zip(self.references.values(), frames, strict=True)]
        self.bank = np.concatenate(matrices).astype(np.float32) if matrices else np.zeros((0, dim), np.float32)
        self.owner = np.concatenate([np.full(len(f), vid, dtype=object) for vid, f in zip(self.references, frames,
                                                                                          strict=True)]
                                    ) if matrices else np.zeros(0, dtype=object)
        self.frame = np.concatenate(frames) if matrices else np.zeros(0, np.int64)
        self.searches = 0

    def search(self, vectors: np.ndarray, limit: int, *, exclude: Collection[str] = (),
               per_video: bool = False) -> SearchHits:
        """Top ``limit`` frames per row of ``vectors`` [N, D] outside ``exclude``'s videos; ties in index order
        (stable). ``per_video``: the top ``limit`` videos per row, each by its best frame (a grouping search)."""
        self.searches += 1
        # float64 products rounded to float32 (Milvus's score type): identical frames score identically
        # wherever they lie in the bank (float32 BLAS kernels differ in the last bits between row blocks).
        sims = (np.asarray(vectors, np.float64) @ self.bank.T.astype(np.float64)).astype(np.float32)
        if exclude:
            sims[:, np.isin(self.owner, list(exclude))] = -np.inf
        if per_video and sims.shape[1]:
            starts = np.flatnonzero(np.r_[True, self.owner[1:] != self.owner[:-1]])
            best = np.maximum.reduceat(sims, starts, axis=1)  # [N, videos]
            arg = np.stack([starts[v] + np.argmax(sims[:, s:e], axis=1) for v, (s, e) in
                            enumerate(zip(starts, np.r_[starts[1:], sims.shape[1]], strict=True))], axis=1)
            order = np.argsort(-best, axis=1, kind="stable")[:, :limit]
            top = np.take_along_axis(arg, order, 1)
        else:
            top = np.argsort(-sims, axis=1, kind="stable")[:, :limit]
        scores = np.take_along_axis(sims, top, 1)
        found = np.isfinite(scores).ravel()
        rows = np.repeat(np.arange(len(vectors)), top.shape[1])
        return SearchHits(rows[found].astype(np.int32), self.owner[top].ravel()[found],
                          self.frame[top].ravel()[found].astype(np.int32), scores.ravel()[found].astype(np.float32))

    def searchable(self, video_ids: list[str]) -> Collection[str]:
        return {vid for vid in video_ids if vid in self.references}

    def load(self, video_ids: list[str]) -> Mapping[str, np.ndarray]:
        return {vid: self.references[vid] for vid in video_ids if vid in self.references}
