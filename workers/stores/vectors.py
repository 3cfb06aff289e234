"""Frame vectors in Milvus: one collection per embedding model, inner-product metric.

Rows are keyed ``"<video_id>:<frame>"`` and written with ``upsert``, so running an ingest twice, or two
ingests of the same video at once, can never leave duplicates; frames past a re-ingested video's new end
are deleted. Milvus Lite searches unsealed (growing) rows slowly, ~0.8 s per call at 10k rows against
~0.06 s once sealed, so on Milvus Lite a search first flushes (~2 ms when nothing was written since).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection

import numpy as np

from workers.runs import run_starts
from workers.stores.milvus import (
    SEARCH_MAX_BYTES,
    SEARCH_MAX_NQ,
    VIDEO_ID_MAX,
    MilvusCollection,
    MilvusFeatures,
    call,
    check_video_id,
)
from workers.types import SearchHits


class VectorIndex(MilvusCollection):
    """The Milvus collection of one frame-embedding model."""

    def __init__(self, uri: str, model: str, dim: int, *, insert_batch: int = 5000, search_batch: int = 256,
                 grouping: str = "auto", merge_cosine: float = 0.0, **options: object) -> None:
        super().__init__(uri, model, dim, **options)  # type: ignore[arg-type]
        self.insert_batch, self.search_batch = insert_batch, search_batch
        self.grouping, self.merge_cosine = grouping, merge_cosine

    def replace_video(self, video_id: str, matrix: np.ndarray, *, known_frames: int | None = None) -> int:
        """Make the collection hold exactly the informative rows of ``matrix`` [T, D] for ``video_id`` (zero
        rows mark uninformative frames and are not indexed; with ``merge_cosine`` a run of near-identical
        frames is one row, ``workers.runs``); returns how many rows it holds.

        Rows of frames past T (a longer earlier version) are deleted by id up to ``known_frames``, an upper
        bound of the frames this video may have rows for (``videos.vector_frames``), or by a filter when it
        is unknown: Milvus Lite evaluates a filter by materialising every row of the collection (~30 KB
        each, seconds at 30k rows), which a bounded ingest must not do once per video.
        """
        self._check_vectors(matrix)
        check_video_id(video_id)
        self.ensure_collection()
        vectors = np.ascontiguousarray(matrix, dtype=np.float32)
        kept = run_starts(vectors, self.merge_cosine)
        for start in range(0, len(kept), self.insert_batch):
            # numpy rows: pymilvus converts one row at a time, so a long video's batch never exists as
            # Python floats all at once (5000 x 512 of them are ~80 MB)
            rows = [{"pk": f"{video_id}:{i}", "video_id": video_id, "frame": int(i), "embedding": vectors[i]}
                    for i in kept[start : start + self.insert_batch]]
            call(lambda rows=rows: self.client.upsert(self.collection, rows), "upsert")
        frames = vectors.shape[0]
        if known_frames is None:
            call(lambda: self.client.delete(self.collection, filter=f'video_id == "{video_id}" and frame >= '
                                            f"{frames}"), "delete stale frames")
        else:
            self._delete_frames(video_id, np.arange(frames, max(frames, known_frames)), "delete stale frames")
        self._delete_frames(video_id, np.setdiff1d(np.arange(frames), kept), "delete masked frames")
        return int(len(kept))

    def _delete_frames(self, video_id: str, frames: np.ndarray, what: str) -> None:
        """Delete the rows of these frames of ``video_id`` by primary key (absent ones are no-ops)."""
        for start in range(0, len(frames), self.insert_batch):
            keys = [f"{video_id}:{i}" for i in frames[start : start + self.insert_batch]]
            call(lambda keys=keys: self.client.delete(self.collection, ids=keys), what)

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

    def search(self, vectors: np.ndarray, limit: int, *, exclude: Collection[str] = (),
               per_video: bool = False) -> SearchHits:
        """Top ``limit`` frames for each query row of ``vectors`` [N, D], in batched calls (``search_batches``).

        ``exclude``'s frames are filtered out inside Milvus, so they never take a hit slot (an indexed video
        searched against the library would otherwise fill its hits with itself; a video being removed or
        re-indexed would push out the real candidates). With ``per_video`` each row counts a video once, by its
        best frame: Milvus groups the hits by video where it can (``uses_grouping``), otherwise the best hit
        per (row, video) is kept here, which leaves fewer than ``limit`` videos per row when a video has
        several of the row's ``limit`` nearest frames.
        """
        self._check_vectors(vectors)
        self.ensure_collection()
        where = {}
        if exclude:
            for video_id in exclude:
                check_video_id(video_id)
            where = {"filter": "video_id not in [" + ", ".join(f'"{v}"' for v in sorted(exclude)) + "]"}
        grouped = per_video and self.uses_grouping
        if grouped:
            where["group_by_field"] = "video_id"
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        if self.features.lite:
            call(lambda: self.client.flush(self.collection), "flush")
        q_idx, vids, frames, scores = [], [], [], []
        for rows in search_batches(queries.shape[0], self.dim, limit, batch=self.search_batch,
                                   filter_bytes=len(where.get("filter", ""))):
            batch = queries[rows]
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
                    q_idx.append(rows.start + offset)
                    vids.append(entity["video_id"])
                    frames.append(entity["frame"])
                    scores.append(hit["distance"])
        hits = SearchHits(
            np.asarray(q_idx, np.int32), np.asarray(vids, dtype=object), np.asarray(frames, np.int32),
            np.asarray(scores, np.float32),
        )
        return best_per_video(hits) if per_video and not grouped else hits

    @property
    def uses_grouping(self) -> bool:
        """Whether ``search(per_video=True)`` lets Milvus group hits by video (``grouping`` "auto": servers
        from 2.4, not Milvus Lite, whose grouping the project has not measured; "on": wherever offered)."""
        if self.grouping == "off" or not self.features.grouping_search:
            return False
        return self.grouping == "on" or not self.features.lite

    def _add_fields(self, schema, data_type) -> None:  # noqa: ANN001
        schema.add_field("pk", data_type.VARCHAR, is_primary=True, max_length=VIDEO_ID_MAX + 12)
        schema.add_field("video_id", data_type.VARCHAR, max_length=VIDEO_ID_MAX)
        schema.add_field("frame", data_type.INT32)

    def _add_indexes(self, index, features: MilvusFeatures) -> None:  # noqa: ANN001
        index.add_index(field_name="video_id", index_type=features.varchar_index)


HIT_BYTES = 2 * VIDEO_ID_MAX + 48
"""Upper bound of one hit in a search answer: primary key and video id strings, frame, score, ids."""


def search_batches(rows: int, dim: int, limit: int, *, batch: int, filter_bytes: int = 0,
                   max_nq: int = SEARCH_MAX_NQ, max_bytes: int = SEARCH_MAX_BYTES) -> list[slice]:
    """Consecutive slices of ``rows`` query vectors, each one search request within Milvus's limits.

    A request carries at most ``batch`` vectors (the setting), never more than ``max_nq``, and neither the
    request (float32 vectors plus the filter expression) nor its answer (``limit`` hits a vector) exceeds
    ``max_bytes``: Milvus refuses larger messages, and a 2x2-tiled hour-long query is 18 000 vectors.
    """
    per_row = max(dim * 4, limit * HIT_BYTES)
    room = max_bytes - filter_bytes
    if room < per_row:
        raise ValueError(f"one query vector ({per_row} bytes with its hits) and the filter ({filter_bytes} bytes) "
                         f"do not fit in a {max_bytes}-byte Milvus request")
    size = max(1, min(batch, max_nq, room // per_row))
    return [slice(start, min(start + size, rows)) for start in range(0, rows, size)]


def best_per_video(hits: SearchHits) -> SearchHits:
    """The best hit of each (query row, video) pair, rows ascending and best first within a row: what a
    Milvus grouping search by ``video_id`` returns (from the hits at hand)."""
    if len(hits) == 0:
        return hits
    order = np.lexsort((-hits.score, hits.video_id.astype(str), hits.query_frame))
    rows, vids = hits.query_frame[order], hits.video_id[order]
    first = np.ones(len(order), bool)
    first[1:] = (rows[1:] != rows[:-1]) | (vids[1:] != vids[:-1])
    kept = order[first]
    return hits.subset(kept[np.lexsort((-hits.score[kept], hits.query_frame[kept]))])
