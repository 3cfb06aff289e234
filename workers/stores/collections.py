"""``workers.signals.base.VectorCollections`` over Milvus: the model's frame collection, and one collection per
video-level vector kind, opened on first use and closed together."""

from __future__ import annotations

import threading
from collections.abc import Callable

from workers.stores.vectors import VectorIndex
from workers.stores.videovectors import VideoVectorIndex


class MilvusCollections:
    """The frame collection, and per-video collections made by ``open_videos(name, dim)`` on demand."""

    def __init__(self, frames: Callable[[], VectorIndex], open_videos: Callable[[str, int], VideoVectorIndex]) -> None:
        self._frames, self._open_videos = frames, open_videos
        self._videos: dict[str, VideoVectorIndex] = {}
        self._lock = threading.Lock()

    def frames(self) -> VectorIndex:
        return self._frames()

    def videos(self, name: str, dim: int) -> VideoVectorIndex:
        with self._lock:
            if name not in self._videos:
                self._videos[name] = self._open_videos(name, dim)
            return self._videos[name]

    def close(self) -> None:
        with self._lock:
            collections, self._videos = list(self._videos.values()), {}
        for collection in collections:
            collection.close()
