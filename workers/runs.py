"""Fewer vectors for the same search: a run of near-identical consecutive frames (a static shot, a slide) is
indexed as one vector, its first frame. The localiser still reads every frame from the stored matrix; only
the frame index holds fewer rows, and a hit on a run's first frame stands for the whole run."""

from __future__ import annotations

import numpy as np


def run_starts(matrix: np.ndarray, cosine: float) -> np.ndarray:
    """Indices (int64, ascending) of the frames of ``matrix`` [T, D] (unit rows) to index.

    A frame joins the current run while its inner product with the run's first frame is at least
    ``cosine``; an uninformative (zero) frame is never indexed and ends the run. ``cosine`` <= 0 keeps
    every informative frame (each frame its own run would need a cosine above 1).
    """
    vectors = np.asarray(matrix, np.float32)
    informative = np.any(vectors != 0, axis=1)
    if cosine <= 0:
        return np.flatnonzero(informative)
    kept: list[int] = []
    start = -1
    for i in range(vectors.shape[0]):
        if not informative[i]:
            start = -1
            continue
        if start < 0 or float(vectors[i] @ vectors[start]) < cosine:
            start = i
            kept.append(i)
    return np.asarray(kept, np.int64)
