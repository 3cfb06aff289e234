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

from workers.errors import ModelMismatch, VectorStoreUnavailable
from workers.stores.vectors import DIM_PROPERTY, MODEL_PROPERTY, VIDEO_ID_MAX, _call, collection_name

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


class VideoVectorIndex:
    """The Milvus collection of one video-level model (e.g. ``dns_cg_student``, 1024-d)."""

    def __init__(self, uri: str, model: str, dim: int, *, token: str = "", prefix: str = "copycat_frames",
                 index_type: str = "HNSW", hnsw_m: int = 16, hnsw_ef_construction: int = 200,
                 search_ef: int = 128) -> None:
        self.uri = uri
        self.model = model
        self.dim = dim
        self.collection = collection_name(prefix, model)
        self.index_type = index_type
        self.hnsw_m, self.hnsw_ef_construction, self.search_ef = hnsw_m, hnsw_ef_construction, search_ef
        self._token = token
        self._client = None
        self._ready = False

    @property
    def client(self):  # noqa: ANN201 - pymilvus.MilvusClient, imported lazily
        if self._client is None:
            from pymilvus import MilvusClient

            self._client = _call(lambda: MilvusClient(self.uri, token=self._token), f"connect to {self.uri}")
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
            self._ready = False

    def exists(self) -> bool:
        """Whether the collection has been created (without creating it)."""
        return self._ready or bool(_call(lambda: self.client.has_collection(self.collection), "has_collection"))

    def ensure_collection(self) -> None:
        """Create the collection on first use; refuse one built by another model or for another size."""
        if self._ready:
            return
        client = self.client
        if _call(lambda: client.has_collection(self.collection), "has_collection"):
            self._check_model(_call(lambda: client.describe_collection(self.collection), "describe_collection"))
        else:
            self._create()
        _call(lambda: client.load_collection(self.collection), "load_collection")
        self._ready = True

    def upsert(self, video_id: str, vector: np.ndarray) -> None:
        """Store (or replace) the vector [D] of ``video_id``."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        self._check_vectors(vector[None])
        if not video_id or len(video_id) > VIDEO_ID_MAX:
            raise ValueError(f"video id must have 1 to {VIDEO_ID_MAX} characters: {video_id!r}")
        self.ensure_collection()
        row = {"video_id": video_id, "embedding": vector.tolist()}
        _call(lambda: self.client.upsert(self.collection, [row]), "upsert")

    def delete(self, video_id: str) -> None:
        self.ensure_collection()
        _call(lambda: self.client.delete(self.collection, ids=[video_id]), "delete")

    def count(self) -> int:
        self.ensure_collection()
        result = _call(lambda: self.client.query(self.collection, filter="", output_fields=["count(*)"]), "count")
        return int(result[0]["count(*)"]) if result else 0

    def get(self, video_ids: list[str]) -> dict[str, np.ndarray]:
        """The stored vectors [D] of those ``video_ids`` that have one."""
        if not video_ids:
            return {}
        self.ensure_collection()
        rows = _call(lambda: self.client.get(self.collection, ids=list(video_ids),
                                             output_fields=["video_id", "embedding"]), "get")
        return {row["video_id"]: np.asarray(row["embedding"], np.float32) for row in rows}

    def search(self, vector: np.ndarray, limit: int) -> VideoHits:
        """The ``limit`` videos with the largest inner product with ``vector`` [D]."""
        vector = np.asarray(vector, dtype=np.float32).reshape(-1)
        self._check_vectors(vector[None])
        self.ensure_collection()
        params = {"metric_type": "IP", "params": {"ef": max(self.search_ef, limit), "nprobe": 32}}
        results = _call(lambda: self.client.search(self.collection, data=[vector.tolist()], limit=limit,
                                                   output_fields=["video_id"], search_params=params), "search")
        hits = results[0] if results else []
        return VideoHits([hit["entity"]["video_id"] for hit in hits],
                         np.asarray([hit["distance"] for hit in hits], np.float32))

    def iter_all(self, batch_size: int = 1000) -> Iterator[tuple[list[str], np.ndarray]]:
        """Every stored (ids, vectors [n, D]) batch, for library-wide passes such as dedup."""
        self.ensure_collection()
        quiet = _QuietSessionTs()
        _ITERATOR_LOG.addFilter(quiet)
        try:
            iterator = _call(lambda: self.client.query_iterator(self.collection, batch_size=batch_size, filter="",
                                                                output_fields=["video_id", "embedding"]),
                             "query_iterator")
        finally:
            _ITERATOR_LOG.removeFilter(quiet)
        try:
            while rows := _call(iterator.next, "query_iterator.next"):
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

    def _create(self) -> None:
        from pymilvus import DataType

        client = self.client
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("video_id", DataType.VARCHAR, is_primary=True, max_length=VIDEO_ID_MAX)
        schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=self.dim)
        index = client.prepare_index_params()
        params = {"M": self.hnsw_m, "efConstruction": self.hnsw_ef_construction} if self.index_type == "HNSW" else {}
        index.add_index(field_name="embedding", index_type=self.index_type, metric_type="IP", params=params)
        properties = {MODEL_PROPERTY: self.model, DIM_PROPERTY: str(self.dim)}
        try:
            _call(lambda: client.create_collection(self.collection, schema=schema, index_params=index,
                                                   properties=properties), "create_collection")
        except VectorStoreUnavailable:
            if not client.has_collection(self.collection):  # not a lost race with another worker
                raise
        log.info("created Milvus collection %s for video-level model %s (dim %d, %s)", self.collection,
                 self.model, self.dim, self.index_type)

    def _check_model(self, description: dict) -> None:
        props = description.get("properties") or {}
        dims = [f["params"].get("dim") for f in description.get("fields", []) if f.get("name") == "embedding"]
        built_by = props.get(MODEL_PROPERTY)
        if built_by and built_by != self.model:
            raise ModelMismatch(f"Milvus collection {self.collection} was built by model {built_by!r}, not "
                                f"{self.model!r}; use another COPYCAT_MILVUS__COLLECTION_PREFIX")
        if dims and int(dims[0]) != self.dim:
            raise ModelMismatch(f"Milvus collection {self.collection} holds {dims[0]}-d vectors; model "
                                f"{self.model!r} makes {self.dim}-d vectors")

    def _check_vectors(self, matrix: np.ndarray) -> None:
        if matrix.ndim != 2 or matrix.shape[1] != self.dim:
            raise ModelMismatch(f"vectors of shape {matrix.shape} do not fit collection {self.collection} "
                                f"(model {self.model!r}, dim {self.dim})")
