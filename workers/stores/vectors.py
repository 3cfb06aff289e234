"""Frame vectors in Milvus: one collection per embedding model, inner-product metric.

Rows are keyed ``"<video_id>:<frame>"`` and written with ``upsert``, so running an ingest twice, or two
ingests of the same video at once, can never leave duplicates; frames past a re-ingested video's new end
are deleted. Milvus Lite searches unsealed (growing) rows slowly, ~0.8 s per call at 10k rows against
~0.06 s once sealed, so on Milvus Lite a search first flushes (~2 ms when nothing was written since).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from workers.stores.milvus import VIDEO_ID_MAX, MilvusCollection, MilvusFeatures, call, check_video_id
from workers.types import SearchHits


class VectorIndex(MilvusCollection):
    """The Milvus collection of one frame-embedding model."""

    def __init__(self, uri: str, model: str, dim: int, *, insert_batch: int = 5000, search_batch: int = 256,
                 **options: object) -> None:
        super().__init__(uri, model, dim, **options)  # type: ignore[arg-type]
        self.insert_batch, self.search_batch = insert_batch, search_batch

    def replace_video(self, video_id: str, matrix: np.ndarray) -> int:
        """Make the collection hold exactly the informative rows of ``matrix`` [T, D] for ``video_id`` (zero
        rows mark uninformative frames and are not indexed); returns how many rows it holds."""
        self._check_vectors(matrix)
        check_video_id(video_id)
        self.ensure_collection()
        vectors = np.ascontiguousarray(matrix, dtype=np.float32)
        kept = np.flatnonzero(np.any(vectors != 0, axis=1))
        for start in range(0, len(kept), self.insert_batch):
            # numpy rows: pymilvus converts one row at a time, so a long video's batch never exists as
            # Python floats all at once (5000 x 512 of them are ~80 MB)
            rows = [{"pk": f"{video_id}:{i}", "video_id": video_id, "frame": int(i), "embedding": vectors[i]}
                    for i in kept[start : start + self.insert_batch]]
            call(lambda rows=rows: self.client.upsert(self.collection, rows), "upsert")
        call(lambda: self.client.delete(self.collection, filter=f'video_id == "{video_id}" and frame >= '
                                        f"{vectors.shape[0]}"), "delete stale frames")
        masked = np.setdiff1d(np.arange(vectors.shape[0]), kept)
        for start in range(0, len(masked), self.insert_batch):
            keys = [f"{video_id}:{i}" for i in masked[start : start + self.insert_batch]]
            call(lambda keys=keys: self.client.delete(self.collection, ids=keys), "delete masked frames")
        return int(len(kept))

    def delete_video(self, video_id: str) -> None:
        check_video_id(video_id)
        self.ensure_collection()
        call(lambda: self.client.delete(self.collection, filter=f'video_id == "{video_id}"'), "delete")

    def count(self, video_id: str | None = None) -> int:
        """Rows of one video, or of the whole collection."""
        self.ensure_collection()
        if video_id:
            check_video_id(video_id)
        expr = f'video_id == "{video_id}"' if video_id else ""
        result = call(lambda: self.client.query(self.collection, filter=expr, output_fields=["count(*)"],
                                                   **self.read_options), "count")
        return int(result[0]["count(*)"]) if result else 0

    def counts_by_video(self, batch: int = 16384) -> dict[str, int]:
        """Frame vectors per video over the whole collection (``copycat fsck``; one pass, in pages)."""
        return dict(Counter(self.scan_video_ids(batch)))

    def search(self, vectors: np.ndarray, limit: int, *, exclude_video: str | None = None) -> SearchHits:
        """Top ``limit`` frames for each query row of ``vectors`` [N, D], in batched calls; ``exclude_video``'s own
        frames are filtered out inside Milvus (an indexed video searched against the library would otherwise
        fill its hits with itself)."""
        self._check_vectors(vectors)
        self.ensure_collection()
        where = {}
        if exclude_video:
            check_video_id(exclude_video)
            where = {"filter": f'video_id != "{exclude_video}"'}
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.features.lite:
            call(lambda: self.client.flush(self.collection), "flush")
        q_idx, vids, frames, scores = [], [], [], []
        for start in range(0, queries.shape[0], self.search_batch):
            batch = queries[start : start + self.search_batch]
            results = call(
                lambda batch=batch: self.client.search(
                    self.collection, data=batch.tolist(), limit=limit, output_fields=["video_id", "frame"],
                    search_params=self.search_params(limit), **where, **self.search_options,
                ),
                "search",
            )
            for offset, hits in enumerate(results):
                for hit in hits:
                    entity = hit["entity"]
                    q_idx.append(start + offset)
                    vids.append(entity["video_id"])
                    frames.append(entity["frame"])
                    scores.append(hit["distance"])
        return SearchHits(
            np.asarray(q_idx, np.int32), np.asarray(vids, dtype=object), np.asarray(frames, np.int32),
            np.asarray(scores, np.float32),
        )

    def _add_fields(self, schema, data_type) -> None:  # noqa: ANN001
        schema.add_field("pk", data_type.VARCHAR, is_primary=True, max_length=VIDEO_ID_MAX + 12)
        schema.add_field("video_id", data_type.VARCHAR, max_length=VIDEO_ID_MAX)
        schema.add_field("frame", data_type.INT32)

    def _add_indexes(self, index, features: MilvusFeatures) -> None:  # noqa: ANN001
        index.add_index(field_name="video_id", index_type=features.varchar_index)
