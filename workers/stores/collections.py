"""``workers.signals.base.VectorCollections`` over Milvus: the model's frame collection, and the other signals'
collections (per frame or per video, by name), opened on first use and closed together."""

from __future__ import annotations

import threading
from collections.abc import Callable

from workers.stores.vectors import VectorIndex
from workers.stores.videovectors import VideoVectorIndex


class MilvusCollections:
    """The model's frame collection (``model_frames()``), and the collections ``open_frames(name, dim)`` and
    ``open_videos(name, dim)`` make, once each."""

    def __init__(self, model_frames: Callable[[], VectorIndex], open_frames: Callable[[str, int], VectorIndex],
                 open_videos: Callable[[str, int], VideoVectorIndex]) -> None:
        self._model_frames, self._open_frames, self._open_videos = model_frames, open_frames, open_videos
        self._opened: dict[tuple[str, str], VectorIndex | VideoVectorIndex] = {}
        self._lock = threading.Lock()

    def frames(self, name: str | None = None, dim: int = 0) -> VectorIndex:
        if name is None:
            return self._model_frames()
        return self._open("frames", name, dim, self._open_frames)  # type: ignore[return-value]

    def videos(self, name: str, dim: int) -> VideoVectorIndex:
        return self._open("videos", name, dim, self._open_videos)  # type: ignore[return-value]

    def _open(self, kind: str, name: str, dim: int,
              opener: Callable[[str, int], VectorIndex | VideoVectorIndex]) -> VectorIndex | VideoVectorIndex:
        with self._lock:
            if (kind, name) not in self._opened:
                self._opened[kind, name] = opener(name, dim)
            return self._opened[kind, name]

    def close(self) -> None:
        """Close what was opened here (the model's frame collection belongs to its owner)."""
        with self._lock:
            collections, self._opened = list(self._opened.values()), {}
        for collection in collections:
            collection.close()
