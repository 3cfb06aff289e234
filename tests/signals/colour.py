"""A test-only signal: each frame's colour layout (a 4x4 grid of mean colours, centred and unit length).

It shows that a kind of evidence plugs in as one module plus one line in ``workers.signals.registry.SIGNALS``:
it takes small frames from the one decode, keeps its matrix as an object and its vectors in a per-frame
collection of its own, and finds and localises copies with the product's matching and temporal network. It
names no other module's internals, and no other module names it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from typing import ClassVar

import numpy as np

from workers.localise import Localiser
from workers.matching import localise_candidates, match_query
from workers.signals.base import (
    Extraction,
    FrameCollection,
    LocatingSignal,
    Record,
    References,
    SignalContext,
    SignalStores,
    Views,
)
from workers.types import FrameGeometry, Match, QueryParams

GRID, SIZE = 4, 64
DIM = GRID * GRID * 3


def colour_layout(frames: np.ndarray) -> np.ndarray:
    """uint8 [N, SIZE, SIZE, 3] -> float32 [N, DIM]: mean colour per cell, centred, unit length (0 when flat)."""
    cell = SIZE // GRID
    means = frames.astype(np.float32).reshape(len(frames), GRID, cell, GRID, cell, 3).mean(axis=(2, 4))
    vectors = means.reshape(len(frames), DIM)
    vectors -= vectors.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.where(norms > 1.0, vectors / np.maximum(norms, 1e-6), 0.0).astype(np.float32)


class ColourExtraction(Extraction[np.ndarray]):
    timing = "colour_embed"
    geometries = (FrameGeometry(SIZE, "squash"),)

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def add(self, frames: Sequence[np.ndarray]) -> None:
        self.parts.append(colour_layout(frames[0]))

    def finish(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros((0, DIM), np.float32)


class ColourSignal(LocatingSignal[np.ndarray]):
    name: ClassVar[str] = "colour"
    label: ClassVar[str] = "colour"

    def __init__(self, fps: float, localiser: Localiser) -> None:
        self.fps, self.localiser = fps, localiser

    @classmethod
    def create(cls, context: SignalContext) -> ColourSignal:
        return cls(context.settings.decode.fps, context.localiser)

    def extraction(self, views: Views) -> ColourExtraction:
        return ColourExtraction()

    def collection(self, stores: SignalStores) -> FrameCollection:
        return stores.vectors.frames("colour_layout", DIM)

    def save(self, stores: SignalStores, video_id: str, sha256: str, evidence: np.ndarray) -> Record:
        key = self.object_key(video_id, sha256)
        stores.arrays.put(key, evidence)
        return Record(key, {"frames": len(evidence)})

    def load(self, stores: SignalStores, record: Record) -> np.ndarray:
        assert record.key is not None
        return stores.arrays.get(record.key)

    def index(self, stores: SignalStores, video_id: str, evidence: np.ndarray, *,
              known_frames: int | None = None) -> int:
        return self.collection(stores).replace_video(video_id, evidence)

    def forget(self, stores: SignalStores, video_id: str) -> None:
        self.collection(stores).delete_video(video_id)

    def indexed_videos(self, stores: SignalStores) -> dict[str, int]:
        return self.collection(stores).counts_by_video()

    def query_key(self, job_id: str) -> str:
        return f"queries/{self.object_dir}/{job_id}.npy"

    def save_query(self, stores: SignalStores, job_id: str, evidence: np.ndarray) -> None:
        stores.arrays.put(self.query_key(job_id), evidence)

    def load_query(self, stores: SignalStores, job_id: str) -> np.ndarray:
        return stores.arrays.get(self.query_key(job_id))

    def match(self, query: np.ndarray, *, stores: SignalStores, references: References, params: QueryParams,
              exclude: Collection[str], timings: dict[str, float]) -> list[Match]:
        found = match_query(query, fps=self.fps, search=self.collection(stores).search,
                            load_references=lambda ids: self._layouts(stores, references, ids),
                            searchable=references.searchable, localiser=self.localiser, params=params,
                            exclude=exclude)
        return self._labelled(found)

    def localise(self, query: np.ndarray, video_ids: list[str], *, stores: SignalStores, references: References,
                 params: QueryParams) -> list[Match]:
        return self._labelled(localise_candidates(query, video_ids, self._layouts(stores, references, video_ids),
                                                  fps=self.fps, localiser=self.localiser,
                                                  min_score=params.min_score))

    def _layouts(self, stores: SignalStores, references: References, ids: list[str]) -> dict[str, np.ndarray]:
        return {vid: self.load(stores, record) for vid, record in references.records(self.name, ids).items()}

    def _labelled(self, matches: list[Match]) -> list[Match]:
        return [replace(m, segments=[replace(s, signals=(self.label,)) for s in m.segments]) for m in matches]
