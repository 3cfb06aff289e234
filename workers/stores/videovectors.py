"""Video-level vectors in Milvus: one row per video (DnS coarse vectors), inner-product metric.

The primary key is the video id and rows are written with ``upsert``, so re-indexing a video replaces its
vector. Like the frame collections, the collection records the model and dimension that built it and
refuses vectors of another size or from another model.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from workers.stores.milvus import VIDEO_ID_MAX, MilvusCollection, call, check_video_id

log = logging.getLogger(__name__)
_ITERATOR_LOG = logging.getLogger("pymilvus.client.iterator.query_iterator")


class _QuietSessionTs(logging.Filter):
    """Milvus Lite has no server-side session timestamp; pymilvus warns and falls back, which is fine here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "mvccTs" not in record.getMessage()


@dataclass(frozen=True)
class VideoHits:
    """The nearest videos to one query vector, best first: ids and inner products."""

    video_id: list[str]
    score: np.ndarray  # float32 [K]

    def __len__(self) -> int:
        return len(self.video_id)


class VideoVectorIndex(MilvusCollection):
    """The Milvus collection of one video-level model (e.g. ``dns_cg_student``, 1024-d)."""

    def upsert(self, video_id: str, vector: np.ndarray) -> None:
        """Store (or replace) the vector [D] of ``video_id``."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        self._check_vectors(vector[None])
        check_video_id(video_id)
        self.ensure_collection()
        row = {"video_id": video_id, "embedding": vector.tolist()}
        call(lambda: self.client.upsert(self.collection, [row]), "upsert")

    def delete(self, video_id: str) -> None:
        self.ensure_collection()
        call(lambda: self.client.delete(self.collection, ids=[video_id]), "delete")

    def count(self) -> int:
        self.ensure_collection()
        result = call(lambda: self.client.query(self.collection, filter="", output_fields=["count(*)"],
                                                   **self.read_options), "count")
        return int(result[0]["count(*)"]) if result else 0

    def ids(self, batch: int = 16384) -> set[str]:
        """Every video with a vector (``copycat fsck``)."""
        return set(self.scan_video_ids(batch))

    def get(self, video_ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors [D] of those ``video_ids`` that have one."""
        if not video_ids:
            return {}
        self.ensure_collection()
        rows = call(lambda: self.client.get(self.collection, ids=list(video_ids),
                                             output_fields=["video_id", "embedding"], **self.read_options), "get")
        return {row["video_id"]: np.asarray(row["embedding"], np.float32) for row in rows}

    def search(self, vector: np.ndarray, limit: int) -> VideoHits:
        """The ``limit`` videos with the largest inner product with ``vector`` [D]."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        self._check_vectors(vector[None])
        self.ensure_collection()
        results = call(lambda: self.client.search(self.collection, data=[vector.tolist()], limit=limit,
                                                  output_fields=["video_id"], search_params=self.search_params(limit),
                                                  **self.search_options),
                       "search")
        hits = results[0] if results else []
        return VideoHits([hit["entity"]["video_id"] for hit in hits],
                         np.asarray([hit["distance"] for hit in hits], np.float32))

    def iter_all(self, batch_size: int = 1000) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every stored (ids, vectors [n, D]) batch, for library-wide passes such as dedup."""
        self.ensure_collection()
        quiet = _QuietSessionTs()
        _ITERATOR_LOG.addFilter(quiet)
        try:
            iterator = call(lambda: self.client.query_iterator(self.collection, batch_size=batch_size, filter="",
                                                                output_fields=["video_id", "embedding"]),
                             "query_iterator")
        finally:
            _ITERATOR_LOG.removeFilter(quiet)
        try:
            while rows := call(iterator.next, "query_iterator.next"):
                yield ([row["video_id"] for row in rows],
                       np.asarray([row["embedding"] for row in rows], np.float32).reshape(-1, self.dim))
        finally:
            iterator.close()

    def all(self) -> tuple[list[str], np.ndarray]:
        """Every stored video id and its vector: ([N], float32 [N, D])."""
        ids: list[str] = []
        parts = [np.zeros((0, self.dim), np.float32)]
        for batch_ids, batch in self.iter_all():
            ids.extend(batch_ids)
            parts.append(batch)
        return ids, np.concatenate(parts)

    def _add_fields(self, schema, data_type) -> None:  # noqa: ANN001
        schema.add_field("video_id", data_type.VARCHAR, is_primary=True, max_length=VIDEO_ID_MAX)
