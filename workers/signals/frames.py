"""Frame descriptors: one embedding per sampled frame (SSCD) -> Milvus -> temporal-network localisation.

The product's primary signal. Its object is the video's frame matrix [T, D] (``videos/<model>/<id>/...npy``,
recorded on the video row), which reports and copy detection read too; its vectors are the matrix's
informative rows in the model's frame collection. A query asks for more views of each frame than a
reference keeps: ``crop_grid`` tiles and the extra views of ``workers.views``, stacked as [V, T, D] and
searched together (``workers.matching``).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import numpy as np

from workers.decode import DecodeOptions
from workers.embed.base import FrameEmbedder
from workers.errors import ObjectMissing
from workers.extract import ProgressFn, extract_video
from workers.informative import FrameFilter, pattern_frames
from workers.localise import Localiser
from workers.matching import localise_candidates, match_query
from workers.signals.base import (
    Extraction,
    LocatingSignal,
    Record,
    References,
    SignalContext,
    SignalStores,
    Views,
)
from workers.types import EmbeddedVideo, FrameGeometry, Match, QueryParams, VideoInfo
from workers.views import EXTRA_VIEWS, VIEW_COUNTS, border_box, halves, mirrored, sharp_box, unbordered

LABEL = "video"


@dataclass(frozen=True)
class FrameViews:
    """``features`` float32 [T, D] whole-frame descriptors (row i = seconds ``[i / fps, (i + 1) / fps)``);
    ``crops`` float32 [V, T, D] the other views asked for (tiles, then extra views), or None."""

    features: np.ndarray
    crops: np.ndarray | None = None

    @property
    def views(self) -> np.ndarray:
        """[T, D], or [1 + V, T, D] with the other views after the whole frames (what a query searches)."""
        return self.features if self.crops is None else np.concatenate([self.features[None], self.crops])


def pattern_features(embedder: FrameEmbedder) -> np.ndarray:
    """The embedder's descriptors of drawn test patterns, float32 [P, D] (see ``workers.informative``)."""
    return embedder.embed(pattern_frames(embedder.geometry.size))


class FrameExtraction(Extraction[FrameViews]):
    """Whole frames at the model's geometry (always); with ``crop_grid`` > 1 the frames' grid x grid tiles,
    decoded at ``crop_grid`` times the model's size so each tile has the model's size (a copy shown as an
    inset fills a small part of the frame, where whole-frame descriptors barely see it); the extra views
    (``workers.views``, in ``EXTRA_VIEWS`` order): ``flip`` the mirrored frame, ``halves`` its left, right,
    top and bottom halves, ``unborder`` the picture inside a border found in the chunk, ``unfill`` the sharp
    picture inside a blurred fill found in the chunk (9:16 re-uploads; each a zero descriptor, never
    searched, where there is none).

    Views that ``frame_filter`` finds uninformative (black, blank, title cards, test patterns: no evidence of
    copying) get a zero descriptor, which is their mask from here on: they are never indexed nor searched,
    and no temporal path runs through them. ``patterns()`` gives ``pattern_features(embedder)``.
    """

    timing = "embed"

    def __init__(self, embedder: FrameEmbedder, views: Views = Views(), *, frame_filter: FrameFilter = FrameFilter(),
                 patterns: Callable[[], np.ndarray] | None = None) -> None:
        self.embedder, self.frame_filter = embedder, frame_filter
        self.crop_grid = views.crop_grid
        self.extras = [view for view in EXTRA_VIEWS if view in views.extra]
        self._patterns = patterns or (lambda: pattern_features(embedder))
        size = embedder.geometry.size
        big_size = size * max(self.crop_grid, 2 if {"halves", "unborder", "unfill"} & set(self.extras) else 1)
        self.geometries = [embedder.geometry] + ([FrameGeometry(big_size, "squash")] if big_size > size else [])
        n_crops = (self.crop_grid ** 2 if self.crop_grid > 1 else 0) + sum(VIEW_COUNTS[v] for v in self.extras)
        self.whole: list[np.ndarray] = []
        self.tiles: list[list[np.ndarray]] = [[] for _ in range(n_crops)]
        self.patterns: np.ndarray | None = None

    def start(self) -> None:
        self.embedder.load()
        self.patterns = self._patterns() if self.frame_filter.enabled else None

    def add(self, frames: Sequence[np.ndarray]) -> None:
        size = self.embedder.geometry.size
        self.whole.append(self._embed_masked(frames[0]))
        views: list[np.ndarray | None] = []
        if self.crop_grid > 1:
            for row, col in itertools.product(range(self.crop_grid), range(self.crop_grid)):
                views.append(np.ascontiguousarray(frames[1][:, row * size : (row + 1) * size,
                                                            col * size : (col + 1) * size]))
        if "flip" in self.extras:
            views.append(mirrored(frames[0]))
        if "halves" in self.extras:
            views.extend(halves(frames[1] if self.crop_grid == 2 else _resized(frames[1], 2 * size), size))
        if "unborder" in self.extras:
            box = border_box(frames[1])
            views.append(None if box is None else unbordered(frames[1], box, size))
        if "unfill" in self.extras:
            box = sharp_box(frames[1])
            views.append(None if box is None else unbordered(frames[1], box, size))
        for index, view in enumerate(views):
            self.tiles[index].append(self._embed_masked(view) if view is not None
                                     else np.zeros((frames[0].shape[0], self.embedder.dim), np.float32))

    def finish(self) -> FrameViews:
        empty = np.zeros((0, self.embedder.dim), np.float32)
        features = np.concatenate(self.whole) if self.whole else empty
        crops = (np.stack([np.concatenate(parts) if parts else empty for parts in self.tiles])
                 if self.tiles else None)
        return FrameViews(features, crops)

    def _embed_masked(self, frames: np.ndarray) -> np.ndarray:
        features = self.embedder.embed(frames)
        features[~self.frame_filter.keep(frames, features, self.patterns)] = 0.0
        return features


def _resized(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [N, H, W, 3] squashed to [N, size, size, 3] (halves from a tile decode of another grid)."""
    return unbordered(frames, (0, frames.shape[1], 0, frames.shape[2]), size)


def embed_video(path: Path, embedder: FrameEmbedder, options: DecodeOptions = DecodeOptions(), *,
                crop_grid: int = 1, extra_views: Sequence[str] = (), frame_filter: FrameFilter = FrameFilter(),
                patterns: np.ndarray | None = None, progress: ProgressFn | None = None, label: str | None = None,
                info: VideoInfo | None = None, feed: Callable[[], Iterator[bytes]] | None = None) -> EmbeddedVideo:
    """The frame descriptors of one file, decoded once (benches, tests and the library use of the model)."""
    views = Views(crop_grid, tuple(extra_views))
    given = None if patterns is None else (lambda: patterns)

    def extraction() -> FrameExtraction:
        return FrameExtraction(embedder, views, frame_filter=frame_filter, patterns=given)

    done = extract_video(path, {FrameSignal.name: extraction}, options, progress=progress, label=label, info=info,
                         feed=feed)
    frames: FrameViews = done.evidence[FrameSignal.name]
    return EmbeddedVideo(done.info, frames.features, done.fps, crops=frames.crops, timings=done.timings)


class FrameSignal(LocatingSignal[FrameViews]):
    """Frame descriptors of the configured embedding model, localised by the temporal network."""

    name: ClassVar[str] = "frames"
    label: ClassVar[str] = LABEL

    def __init__(self, embedder: FrameEmbedder, localiser: Localiser, *, fps: float, matrix_dtype: str = "float16",
                 frame_filter: FrameFilter = FrameFilter()) -> None:
        self.embedder, self.localiser, self.fps, self.matrix_dtype = embedder, localiser, fps, matrix_dtype
        self.frame_filter = frame_filter
        self._patterns: np.ndarray | None = None
        self._lock = threading.Lock()

    @classmethod
    def create(cls, context: SignalContext) -> FrameSignal:
        cfg = context.settings
        return cls(context.embedder, context.localiser, fps=cfg.decode.fps, matrix_dtype=cfg.embed.matrix_dtype,
                   frame_filter=cfg.frame_filter())

    def warm_up(self) -> None:
        self.patterns()

    def patterns(self) -> np.ndarray:
        """``pattern_features`` of the embedder, computed once per process (frames like them are not evidence)."""
        with self._lock:
            if self._patterns is None:
                self._patterns = pattern_features(self.embedder)
            return self._patterns

    @property
    def object_dir(self) -> str:
        return self.embedder.name

    def extraction(self, views: Views) -> FrameExtraction:
        return FrameExtraction(self.embedder, views, frame_filter=self.frame_filter, patterns=self.patterns)

    def save(self, stores: SignalStores, video_id: str, sha256: str, evidence: FrameViews) -> Record:
        key = self.object_key(video_id, sha256)
        stores.arrays.put(key, evidence.features.astype(self.matrix_dtype))
        return Record(key, {"dtype": self.matrix_dtype, "frames": int(evidence.features.shape[0])})

    def load(self, stores: SignalStores, record: Record) -> FrameViews:
        assert record.key is not None
        return FrameViews(stores.arrays.get(record.key).astype(np.float32))

    def index(self, stores: SignalStores, video_id: str, evidence: FrameViews, *,
              known_frames: int | None = None) -> int:
        return stores.vectors.frames().replace_video(video_id, evidence.features, known_frames=known_frames)

    def forget(self, stores: SignalStores, video_id: str) -> None:
        stores.vectors.frames().delete_video(video_id)

    def indexed_videos(self, stores: SignalStores) -> dict[str, int]:
        return stores.vectors.frames().counts_by_video()

    def query_key(self, job_id: str) -> str:
        return f"queries/{self.object_dir}/{job_id}.npy"

    def save_query(self, stores: SignalStores, job_id: str, evidence: FrameViews) -> None:
        stores.arrays.put(self.query_key(job_id), evidence.views.astype(self.matrix_dtype))

    def load_query(self, stores: SignalStores, job_id: str) -> FrameViews:
        views = stores.arrays.get(self.query_key(job_id)).astype(np.float32)
        return FrameViews(views) if views.ndim == 2 else FrameViews(views[0], views[1:])

    def match(self, query: FrameViews, *, stores: SignalStores, references: References, params: QueryParams,
              exclude: Collection[str], timings: dict[str, float]) -> list[Match]:
        matches = match_query(query.views, fps=self.fps, search=stores.vectors.frames().search,
                              load_references=lambda ids: self.matrices(stores, references, ids),
                              searchable=references.searchable, localiser=self.localiser, params=params,
                              exclude=exclude, timings=timings)
        return labelled(matches)

    def localise(self, query: FrameViews, video_ids: list[str], *, stores: SignalStores, references: References,
                 params: QueryParams) -> list[Match]:
        matrices = self.matrices(stores, references, video_ids) if video_ids else {}
        return labelled(localise_candidates(query.views, video_ids, matrices, fps=self.fps, localiser=self.localiser,
                                            min_score=params.min_score))

    def matrices(self, stores: SignalStores, references: References, video_ids: list[str]) -> dict[str, np.ndarray]:
        """Frame matrices of the candidates; one removed since its row was read is left out."""
        found = {}
        for video_id, record in references.records(self.name, video_ids).items():
            if record.key is None:
                continue
            try:
                found[video_id] = stores.arrays.get(record.key)
            except ObjectMissing:
                continue
        return found


def labelled(matches: list[Match]) -> list[Match]:
    """The matches with every segment marked as found by this signal."""
    return [replace(m, segments=[replace(s, signals=(LABEL,)) for s in m.segments]) for m in matches]

